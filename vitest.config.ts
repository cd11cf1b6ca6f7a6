import { defineConfig } from 'vitest/config';

// Tests import sibling packages through their "@power-meter/source" export condition,
// so they run against src/*.ts and need no build. Tests that spawn the real programs
// use the built dist/ (npm test builds first).
export default defineConfig({
  resolve: { conditions: ['@power-meter/source'] },
  ssr: { resolve: { conditions: ['@power-meter/source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
