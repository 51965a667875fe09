import fs from 'node:fs';
import path from 'node:path';
import { CONFIG_VARIABLES } from '../../src/config/config';

const compose = fs.readFileSync(path.join(__dirname, '..', '..', 'docker-compose.yml'), 'utf8');
// Set by the file itself: the services' own addresses and the API's port inside its container.
const FIXED = ['MONGODB_URI', 'REDIS_URL', 'PORT'];

describe('docker-compose.yml', () => {
  it.each(CONFIG_VARIABLES.filter((name) => !FIXED.includes(name)))(
    'when %s is set in the shell or .env, then compose passes it to the API and the worker',
    (name) => {
      expect(compose).toMatch(new RegExp(`^    ${name}: \\$\\{${name}(:-[^}]*)?\\}$`, 'm'));
    },
  );

  it.each(FIXED)('when the file sets %s itself, then it is set for the processes', (name) => {
    expect(compose).toMatch(new RegExp(`^ {4,6}${name}: `, 'm'));
  });
});
