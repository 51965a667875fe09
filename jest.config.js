/** Three projects: `unit` (no I/O), `integration` (real Redis and the MongoDB-compatible server) and `browser` (the live page in Chromium). */
const transform = { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] };

module.exports = {
  // Integration files start an API and workers against real services; jobs take a moment.
  testTimeout: 60_000,
  // Every test closes what it opens, but the main process was once left holding one Redis connection after all
  // workers had ended (source not found), which kept CI waiting for good: end the run when the tests end.
  forceExit: true,
  projects: [
    { displayName: 'unit', testEnvironment: 'node', transform, testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      displayName: 'integration',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/test/global-setup.ts',
    },
    {
      displayName: 'browser',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/browser/**/*.test.ts'],
      globalSetup: '<rootDir>/test/browser/global-setup.ts',
    },
  ],
};
