/** The loop hooks API (HookList) and lazy loading (Lazy): disposers, order, shared loads. */
import { describe, expect, it } from 'vitest';
import { Loop } from '../../src/index.ts';
import { HookList } from '../../src/loop/hooks.ts';
import { Lazy } from '../../src/loop/lazy.ts';
import { kCloseHooks } from '../../src/loop/symbols.ts';

describe('HookList', () => {
  it('runs hooks in order; a disposer removes only its own hook, idempotently', () => {
    const hooks = new HookList<() => void>();
    const ran: string[] = [];
    const a = (): void => void ran.push('a');
    hooks.add(a);
    const disposeSecondA = hooks.add(a);
    hooks.add(() => void ran.push('b'));
    disposeSecondA();
    disposeSecondA();
    expect(hooks.size).toBe(2);
    for (const h of hooks.take()) h();
    expect(ran).toEqual(['a', 'b']);
    expect(hooks.size).toBe(0);
  });

  it('loop.close() runs the close hooks once; a disposed one does not run', () => {
    const loop = new Loop();
    const ran: string[] = [];
    loop[kCloseHooks].add(() => void ran.push('kept'));
    const dispose = loop[kCloseHooks].add(() => void ran.push('disposed'));
    dispose();
    loop.close();
    loop.close();
    expect(ran).toEqual(['kept']);
  });
});

describe('Lazy', () => {
  it('loads once, shares the load between concurrent callers, then calls synchronously', async () => {
    let loads = 0;
    const lazy = new Lazy(async () => ({ n: ++loads }));
    expect(lazy.value).toBeUndefined();
    const [x, y] = await Promise.all([lazy.load(), lazy.load()]);
    expect(x).toBe(y);
    expect(loads).toBe(1);
    expect(lazy.value).toBe(x);
    await expect(lazy.use((m) => m.n)).resolves.toBe(1);
  });

  it('use() turns a throw into a rejection and retries a failed load', async () => {
    let fail = true;
    const lazy = new Lazy(async () => {
      if (fail) throw new Error('cannot load');
      return { ok: true };
    });
    await expect(lazy.use((m) => m.ok)).rejects.toThrow('cannot load');
    fail = false;
    await expect(lazy.use((m) => m.ok)).resolves.toBe(true);
    await expect(
      lazy.use(() => {
        throw new Error('sync throw');
      }),
    ).rejects.toThrow('sync throw');
  });
});
