// `npm run openapi`: writes docs/openapi.json from the routes' zod schemas (src/http/openapi.ts); CI lints it.
import fs from 'node:fs';
import path from 'node:path';
import { openApiDocument } from '../src/http/openapi';

export const OPENAPI_FILE = path.join(__dirname, '..', 'docs', 'openapi.json');

if (require.main === module) {
  fs.writeFileSync(OPENAPI_FILE, `${JSON.stringify(openApiDocument(), null, 2)}\n`);
  process.stdout.write(`wrote ${path.relative(process.cwd(), OPENAPI_FILE)}\n`);
}
