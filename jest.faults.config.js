/**
 * The fault-injection suite (`npm run test:faults`): real API and worker processes, a Redis and a FerretDB of its
 * own, killed and restarted under load. Separate from jest.config.js so `npm test` never runs it; it takes minutes.
 */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testMatch: ['<rootDir>/test/faults/**/*.test.ts'],
  // Each scenario sets its own timeout; this covers hooks.
  testTimeout: 10 * 60_000,
};
