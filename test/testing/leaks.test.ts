// run(main, { strict: true }): what main left open is listed in a LeakError (after the
// usual cleanup) instead of being closed quietly.
import { describe, expect, it } from 'vitest';
import { LeakError, Protocol, getRunningLoop, run, sleep } from '../../src/index.ts';
import { MemoryNetwork, VirtualClock, createMemoryConnection, memoryStreamPair } from '../../src/testing/index.ts';

describe('strict runs', () => {
  it('a clean main passes and returns its result', async () => {
    const r = await run(async () => {
      const [[, w1], [, w2]] = await memoryStreamPair();
      w1.close();
      w2.close();
      await Promise.all([w1.waitClosed(), w2.waitClosed()]);
      return 42;
    }, { strict: true, clock: new VirtualClock({ autojump: 0 }) });
    expect(r).toBe(42);
  });

  it('lists tasks, transports, servers and timers left open', async () => {
    const err = await run(async () => {
      const loop = getRunningLoop();
      loop.createTask(() => sleep(60_000), { name: 'forgotten' });
      loop.callLater(1000, () => {});
      const network = new MemoryNetwork();
      await loop.createServer(() => new Protocol(), { network, host: 'left', port: 7 });
      await createMemoryConnection(() => new Protocol(), () => new Protocol(), { network });
    }, { strict: true, clock: new VirtualClock({ autojump: 0 }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeakError);
    const leak = err as LeakError;
    expect(leak.code).toBe('ERR_PROTOLOOP_LEAK');
    const text = leak.leaks.join('\n');
    expect(text).toMatch(/^task .*forgotten/m);
    expect(text).toMatch(/^server .*left:7/m);
    expect(text).toMatch(/^timer /m);
    expect(text).toMatch(/^transport <MemoryTransport/m);
    expect(leak.message).toMatch(/left \d+ things open/);
  });

  it('lists the transports of a pair never closed', async () => {
    const err = await run(async () => {
      await memoryStreamPair();
    }, { strict: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeakError);
    expect((err as LeakError).leaks.filter((l) => l.startsWith('transport <MemoryTransport'))).toHaveLength(2);
  });

  it('main failing keeps its own error', async () => {
    await expect(
      run(async () => {
        getRunningLoop().callLater(10, () => {});
        throw new Error('boom');
      }, { strict: true }),
    ).rejects.toThrow('boom');
  });
});
