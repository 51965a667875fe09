import fs from 'node:fs';
import path from 'node:path';
import { ERROR_CODES, openApiDocument } from '../../src/http/openapi';

const ROOT = path.join(__dirname, '..', '..');
const apiDoc = fs.readFileSync(path.join(ROOT, 'docs', 'api.md'), 'utf8');
const openApi = openApiDocument() as unknown as { paths: Record<string, Record<string, unknown>> };

/** `METHOD /path` of every operation in the OpenAPI document, with `{name}` parameters. */
const operations = new Set(
  Object.entries(openApi.paths).flatMap(([route, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${route}`)),
);

describe('the OpenAPI document', () => {
  it('when docs/openapi.json is read, then it is the document the code generates (npm run openapi rewrites it)', () => {
    expect(JSON.parse(fs.readFileSync(path.join(ROOT, 'docs', 'openapi.json'), 'utf8'))).toEqual(
      JSON.parse(JSON.stringify(openApiDocument())),
    );
  });

  it('when docs/api.md names an endpoint, then the OpenAPI document has it, and the other way round', () => {
    const documented = new Set(
      [...apiDoc.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`\s?]*)`/g)].map(
        ([, method, route]) => `${method} ${route?.replace(/:(\w+)/g, '{$1}')}`,
      ),
    );
    expect([...documented].filter((operation) => !operations.has(operation))).toEqual([]);
    expect([...operations].filter((operation) => !documented.has(operation))).toEqual([]);
  });

  it('when docs/api.md lists the error codes, then they are the codes of the OpenAPI Error schema', () => {
    const table = apiDoc.slice(apiDoc.indexOf('## Errors'), apiDoc.indexOf('## Data point'));
    const documented = [...table.matchAll(/^\| \d{3} +\| `([A-Z_]+)`/gm)].map(([, code]) => code);
    expect(new Set(documented)).toEqual(new Set(ERROR_CODES));
  });
});
