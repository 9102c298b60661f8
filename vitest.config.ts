import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real sockets, processes and workers: run files in separate forks, two at a time
    // on the 2-core machines we target, and never retry a failure away.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    teardownTimeout: 10_000,
    // A test that timed out tears its loop down (test/setup.ts).
    setupFiles: ['test/setup.ts'],
  },
});
