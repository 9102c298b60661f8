import { describe, expect, it } from 'vitest';
import { CancelledError, InvalidStateError, Loop, type ExceptionContext } from '../../src/index.ts';

describe('Future', () => {
  it('raises InvalidStateError on result()/exception() while pending and on a second set', async () => {
    const loop = new Loop();
    const f = loop.createFuture<number>();
    expect(f.done()).toBe(false);
    expect(() => f.result()).toThrow(InvalidStateError);
    expect(() => f.exception()).toThrow(/Exception is not set/);
    f.setResult(1);
    expect(() => f.setResult(2)).toThrow(InvalidStateError);
    expect(() => f.setException(new Error('x'))).toThrow(InvalidStateError);
    expect(f.cancel()).toBe(false);
    expect(f.result()).toBe(1);
    expect(f.exception()).toBeNull();
    loop.close();
  });

  it('holds an exception: result() throws it, exception() returns it', () => {
    const loop = new Loop();
    const f = loop.createFuture();
    const e = new RangeError('r');
    f.setException(e);
    expect(() => f.result()).toThrow(e);
    expect(f.exception()).toBe(e);
    loop.close();
  });

  it('cancel() makes result()/exception() throw CancelledError carrying the message', () => {
    const loop = new Loop();
    const f = loop.createFuture();
    expect(f.cancel('because')).toBe(true);
    expect(f.cancelled()).toBe(true);
    expect(f.done()).toBe(true);
    expect(f.cancel()).toBe(false);
    expect(() => f.result()).toThrow(CancelledError);
    expect(() => f.exception()).toThrow('because');
    loop.close();
  });

  it('schedules done callbacks with callSoon, in order, never synchronously', async () => {
    const loop = new Loop();
    const f = loop.createFuture<string>();
    const calls: string[] = [];
    f.addDoneCallback((x) => calls.push(`a:${x.result()}`));
    f.addDoneCallback((x) => calls.push(`b:${x.result()}`));
    loop.callSoon(() => {
      f.setResult('v');
      calls.push('after setResult');
      loop.callSoon(() => loop.stop());
    });
    await loop.runForever();
    expect(calls).toEqual(['after setResult', 'a:v', 'b:v']);
    loop.close();
  });

  it('calls a callback added after completion soon, not at once', async () => {
    const loop = new Loop();
    const f = loop.createFuture();
    f.setResult(null);
    const calls: string[] = [];
    f.addDoneCallback(() => calls.push('cb'));
    expect(calls).toEqual([]);
    loop.callSoon(() => loop.stop());
    await loop.runForever();
    expect(calls).toEqual(['cb']);
    loop.close();
  });

  it('removeDoneCallback() removes every registration and returns the count', async () => {
    const loop = new Loop();
    const f = loop.createFuture();
    const calls: string[] = [];
    const cb = (): void => {
      calls.push('removed');
    };
    f.addDoneCallback(cb);
    f.addDoneCallback(() => calls.push('kept'));
    f.addDoneCallback(cb);
    expect(f.removeDoneCallback(cb)).toBe(2);
    expect(f.removeDoneCallback(cb)).toBe(0);
    f.setResult(1);
    await loop.runUntilComplete(f);
    loop.callSoon(() => loop.stop());
    await loop.runForever();
    expect(calls).toEqual(['kept']);
    loop.close();
  });

  it('is awaitable and chains like a promise', async () => {
    const loop = new Loop();
    const f = loop.createFuture<number>();
    const result = await loop.runUntilComplete(async () => {
      loop.callLater(1, () => f.setResult(20));
      const doubled = await f.then((v) => v * 2);
      const direct = await f;
      return doubled + direct;
    });
    expect(result).toBe(60);
    loop.close();
  });

  it('rejects the await of a cancelled future with CancelledError', async () => {
    const loop = new Loop();
    const f = loop.createFuture();
    const err = await loop.runUntilComplete(async () => {
      loop.callSoon(() => f.cancel('stop it'));
      try {
        await f;
        return null;
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(CancelledError);
    expect((err as Error).message).toBe('stop it');
    loop.close();
  });

  it('reports an exception never retrieved when the loop closes, and not one that was retrieved', async () => {
    const loop = new Loop();
    const seen: ExceptionContext[] = [];
    loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
    const lost = loop.createFuture('lost');
    lost.setException(new Error('nobody looked'));
    const seenOne = loop.createFuture('seen');
    seenOne.setException(new Error('looked at'));
    expect(seenOne.exception()).toBeInstanceOf(Error);
    loop.close();
    expect(seen.map((c) => c.message)).toEqual(['Future exception was never retrieved']);
    expect((seen[0]!.exception as Error).message).toBe('nobody looked');
    expect(String(seen[0]!.future)).toMatch(/Future lost finished/);
  });

  it('prints its live state', () => {
    const loop = new Loop();
    const f = loop.createFuture('read()');
    expect(String(f)).toBe('<Future read() pending>');
    f.setResult(3);
    expect(String(f)).toBe('<Future read() finished result=3>');
    loop.close();
  });
});

describe('Future after its loop closed', () => {
  it('a done future can still be awaited once its loop is closed', async () => {
    const loop = new Loop();
    const t = loop.createTask(async () => 'kept');
    await loop.runUntilComplete(t);
    loop.close();
    expect(await t).toBe('kept');
  });
});
