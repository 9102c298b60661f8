import { describe, expect, it } from 'vitest';
import { run, sleep } from '../../src/index.ts';

describe('run()', () => {
  it('runs main as a task and returns its result', async () => {
    expect(await run(async () => { await sleep(1); return 42; })).toBe(42);
  });
});
