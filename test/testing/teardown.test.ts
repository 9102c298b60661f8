// test/setup.ts: a test that times out with its loop running does not fail the tests
// after it (they would otherwise throw LoopRunningError).
import { describe, expect, it } from 'vitest';
import { getRunningLoop, run } from '../../src/index.ts';

describe('a timed-out test tears its loop down', () => {
  let finished: unknown = 'pending';

  it.fails('a test that times out while its run() waits forever on a future', { timeout: 300 }, async () => {
    await run(async () => {
      try {
        await getRunningLoop().createFuture<void>('never settled');
      } finally {
        finished = 'main was cancelled';
      }
    });
  });

  it('the next test can run a loop, and the timed-out one was unwound', async () => {
    expect(await run(async () => 42)).toBe(42);
    expect(finished).toBe('main was cancelled');
  });

  it.fails('a test that times out while main awaits a foreign promise that never settles', { timeout: 300 }, async () => {
    await run(async () => {
      await new Promise<void>(() => {});
    });
  });

  it('after that one too', async () => {
    expect(await run(async () => 'ok')).toBe('ok');
  });
});
