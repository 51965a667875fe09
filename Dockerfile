# syntax=docker/dockerfile:1
# One image for both processes: the API (`node dist/server.js`, the default) and the worker (`node dist/worker.js`).

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-slim AS build
WORKDIR /app
# Dependencies first, so that a source change does not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:${NODE_VERSION}-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
# The API serves the live page from the project root (dist/http/app.js resolves ../../test-socket.html).
COPY test-socket.html test-socket.js ./
# Files stay owned by root: the app only reads them.
USER node
EXPOSE 3000
CMD ["node", "dist/server.js"]
