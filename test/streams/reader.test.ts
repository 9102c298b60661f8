// StreamReader on its own, fed by hand as a protocol would feed it: asyncio's
// read/readLine/readExactly/readUntil semantics, limits, EOF, errors, cancellation
// and the pause/resume backpressure it applies to its transport.
import { describe, expect, it } from 'vitest';
import {
  CancelledError,
  IncompleteReadError,
  InvalidArgumentError,
  LimitOverrunError,
  Loop,
  ResourceBusyError,
  StreamReader,
  TimeoutError,
  ensureFuture,
  gather,
  getRunningLoop,
  run,
  sleep,
  waitFor,
} from '../../src/index.ts';
import type { ReadTransport } from '../../src/index.ts';
import { VirtualClock } from '../../src/testing/index.ts';

/**
 * The reader is pure loop logic: every test runs on virtual time (a wait costs no wall
 * time and cannot race the machine's load) and strictly (it must leave nothing open).
 */
function vrun<T>(main: () => Promise<T>): Promise<T> {
  return run(main, { clock: new VirtualClock({ autojump: 0 }), strict: true });
}

/** A transport stand-in that only records pause/resume calls (the reader's whole use of it). */
function pausable(): ReadTransport & { calls: string[] } {
  const calls: string[] = [];
  let reading = true;
  return {
    calls,
    isReading: () => reading,
    pauseReading: () => { reading = false; calls.push('pause'); },
    resumeReading: () => { reading = true; calls.push('resume'); },
    getExtraInfo: () => undefined,
    isClosing: () => false,
    close: () => {},
    setProtocol: () => {},
    getProtocol: () => { throw new Error('unused'); },
  };
}

const b = (s: string): Buffer => Buffer.from(s);

describe('StreamReader', () => {
  it('read(n) returns what is there, up to n, and empty at EOF', async () => {
    await vrun(async () => {
      const r = new StreamReader();
      r.feedData(b('hello '));
      r.feedData(b('world'));
      expect((await r.read(3)).toString()).toBe('hel');
      expect((await r.read(100)).toString()).toBe('lo world');
      expect((await r.read(0)).length).toBe(0);
      r.feedEof();
      expect((await r.read(10)).length).toBe(0);
      expect(r.atEof()).toBe(true);
    });
  });

  it('read() waits for data fed later and read(-1) reads to EOF', async () => {
    await vrun(async () => {
      const r = new StreamReader({ limit: 4 });
      const loop = getRunningLoop();
      loop.callLater(5, () => r.feedData(b('abc')));
      expect((await r.read(10)).toString()).toBe('abc');
      loop.callLater(5, () => { r.feedData(b('0123456789')); r.feedData(b('xyz')); r.feedEof(); });
      expect((await r.read()).toString()).toBe('0123456789xyz');
      expect(r.atEof()).toBe(true);
    });
  });

  it('readLine() returns lines with their newline, the partial last one, then empty', async () => {
    await vrun(async () => {
      const r = new StreamReader();
      r.feedData(b('one\ntw'));
      r.feedData(b('o\nthree'));
      r.feedEof();
      expect((await r.readLine()).toString()).toBe('one\n');
      expect((await r.readLine()).toString()).toBe('two\n');
      expect((await r.readLine()).toString()).toBe('three');
      expect((await r.readLine()).length).toBe(0);
    });
  });

  it('iterates over lines with for await', async () => {
    await vrun(async () => {
      const r = new StreamReader();
      const loop = getRunningLoop();
      loop.callLater(2, () => { r.feedData(b('a\nb\n')); });
      loop.callLater(6, () => { r.feedData(b('c')); r.feedEof(); });
      const lines: string[] = [];
      for await (const line of r) lines.push(line.toString());
      expect(lines).toEqual(['a\n', 'b\n', 'c']);
    });
  });

  it('readExactly() waits for n bytes and throws IncompleteReadError with the partial data at EOF', async () => {
    await vrun(async () => {
      const r = new StreamReader();
      const loop = getRunningLoop();
      loop.callLater(2, () => r.feedData(b('12')));
      loop.callLater(4, () => r.feedData(b('345678')));
      expect((await r.readExactly(5)).toString()).toBe('12345');
      r.feedEof();
      const err = await r.readExactly(5).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IncompleteReadError);
      expect((err as IncompleteReadError).partial.toString()).toBe('678');
      expect((err as IncompleteReadError).expected).toBe(5);
      expect((err as IncompleteReadError).code).toBe('ERR_PROTOLOOP_INCOMPLETE_READ');
      expect(r.atEof()).toBe(true);
      await expect(r.readExactly(-1)).rejects.toBeInstanceOf(InvalidArgumentError);
    });
  });

  it('readUntil() finds a separator split across chunks, and the earliest of several', async () => {
    await vrun(async () => {
      const r = new StreamReader();
      const loop = getRunningLoop();
      r.feedData(b('abc\r'));
      loop.callLater(3, () => r.feedData(b('\ndef;ghi\r\n')));
      expect((await r.readUntil('\r\n')).toString()).toBe('abc\r\n');
      expect((await r.readUntil(['\r\n', ';'])).toString()).toBe('def;');
      expect((await r.readUntil([b('i\r\n'), b('\n')])).toString()).toBe('ghi\r\n');
      r.feedData(b('tail'));
      r.feedEof();
      const err = await r.readUntil('\n').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IncompleteReadError);
      expect((err as IncompleteReadError).partial.toString()).toBe('tail');
      expect((err as IncompleteReadError).expected).toBe(null);
      await expect(r.readUntil('')).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(r.readUntil([])).rejects.toBeInstanceOf(InvalidArgumentError);
    });
  });

  it('readUntil() over the limit throws LimitOverrunError and leaves the data in the buffer', async () => {
    await vrun(async () => {
      const r = new StreamReader({ limit: 8 });
      r.feedData(b('0123456789abcdef'));
      const err = await r.readUntil('\n').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LimitOverrunError);
      expect((err as LimitOverrunError).code).toBe('ERR_PROTOLOOP_LIMIT_OVERRUN');
      expect((err as LimitOverrunError).consumed).toBeGreaterThan(8);
      // Found, but too long: consumed is where the separator starts.
      r.feedData(b('\n'));
      const err2 = await r.readUntil('\n').catch((e: unknown) => e);
      expect(err2).toBeInstanceOf(LimitOverrunError);
      expect((err2 as LimitOverrunError).consumed).toBe(16);
      // Nothing was lost: the caller can still take the bytes.
      expect((await r.readExactly(17)).toString()).toBe('0123456789abcdef\n');
    });
  });

  it('readLine() over the limit throws LimitOverrunError and skips that line', async () => {
    await vrun(async () => {
      const r = new StreamReader({ limit: 4 });
      r.feedData(b('toolongline\nok\n'));
      await expect(r.readLine()).rejects.toBeInstanceOf(LimitOverrunError);
      expect((await r.readLine()).toString()).toBe('ok\n');
    });
  });

  it('a second concurrent read throws ResourceBusyError; the first one still gets the data', async () => {
    await vrun(async () => {
      const r = new StreamReader();
      const loop = getRunningLoop();
      const first = loop.createTask(() => r.readLine());
      await sleep(1);
      const err = await r.read(1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ResourceBusyError);
      expect((err as ResourceBusyError).code).toBe('ERR_PROTOLOOP_BUSY');
      r.feedData(b('line\n'));
      expect((await first).toString()).toBe('line\n');
    });
  });

  it('cancelling a waiting read interrupts it and loses no data', async () => {
    await vrun(async () => {
      const r = new StreamReader();
      const loop = getRunningLoop();
      const t = loop.createTask(() => r.readExactly(10));
      await sleep(1);
      r.feedData(b('12345'));
      await sleep(1);
      t.cancel();
      await expect(t).rejects.toBeInstanceOf(CancelledError);
      expect(t.cancelled()).toBe(true);
      // The reader is free again and the 5 bytes are still there.
      r.feedData(b('67890'));
      expect((await r.readExactly(10)).toString()).toBe('1234567890');
    });
  });

  it('read(n): a task cancelled while it waits, or after the data came but before it resumed, leaves the bytes buffered', async () => {
    await vrun(async () => {
      const r = new StreamReader();
      const loop = getRunningLoop();
      // Cancelled while waiting: the reader is free for the next read.
      const waiting = loop.createTask(() => r.read(100));
      await sleep(1);
      waiting.cancel();
      await expect(waiting).rejects.toBeInstanceOf(CancelledError);
      // Cancelled after feedData() woke it, in the same callback: asyncio's rule is that
      // the cancellation wins, and the bytes must still be there for the next read.
      const woken = loop.createTask(() => r.read(100));
      await sleep(1);
      r.feedData(b('abc'));
      woken.cancel();
      await expect(woken).rejects.toBeInstanceOf(CancelledError);
      expect(r.bufferedSize).toBe(3);
      expect((await r.read(100)).toString()).toBe('abc');
      // A read that resumes takes what arrived up to then, not only the first chunk.
      const late = loop.createTask(() => r.read(100));
      await sleep(1);
      r.feedData(b('de'));
      r.feedData(b('f'));
      expect((await late).toString()).toBe('def');
      expect(r.bufferedSize).toBe(0);
    });
  });

  it("a waiting read's promise is a native Promise; waitFor(), ensureFuture() and gather() given it in its task work on the read itself", async () => {
    await vrun(async () => {
      const r = new StreamReader();
      const p = r.read(100);
      expect(p).toBeInstanceOf(Promise);
      expect(Object.getPrototypeOf(p)).toBe(Promise.prototype);
      // waitFor(): the deadline cancels the read, so the reader is free at once and no
      // byte that comes later is lost to an abandoned read.
      await expect(waitFor(p, 5)).rejects.toBeInstanceOf(TimeoutError);
      await expect(p).rejects.toBeInstanceOf(CancelledError);
      r.feedData(b('one'));
      expect((await r.read(100)).toString()).toBe('one');
      // ensureFuture(): the read's own future; cancelling it frees the reader. Nobody
      // awaits the promise here: its rejection must not go unhandled.
      const fut = ensureFuture(r.read(100));
      expect(fut.description).toBe('StreamReader.read()');
      expect(fut.cancel()).toBe(true);
      await sleep(1);
      r.feedData(b('two'));
      expect((await r.read(100)).toString()).toBe('two');
      // gather(): the result comes through the read's future.
      const both = gather([r.read(100), sleep(1).then(() => 'slept')]);
      r.feedData(b('three'));
      expect((await both).map(String)).toEqual(['three', 'slept']);
      // Cancelling a gather() of many reads cancels every read: each reader is free again.
      const readers = Array.from({ length: 50 }, () => new StreamReader());
      const all = gather(readers.map((x) => x.read(10)));
      await sleep(1);
      expect(all.cancel()).toBe(true);
      await expect(all).rejects.toBeInstanceOf(CancelledError);
      for (const x of readers) {
        x.feedData(b('z'));
        expect((await x.read(10)).toString()).toBe('z');
      }
      // readLine() is an async function: given as a function, it runs in the deadline's scope.
      await expect(waitFor(() => r.readLine(), 5)).rejects.toBeInstanceOf(TimeoutError);
      r.feedData(b('line\n'));
      expect((await r.readLine()).toString()).toBe('line\n');
      // A read's promise from another task is a promise like any other: followed, not taken over.
      const elsewhere = await getRunningLoop().createTask(async () => ({ p: r.read(100) }));
      const followed = ensureFuture(elsewhere.p);
      expect(followed.description).not.toBe('StreamReader.read()');
      r.feedData(b('four'));
      expect((await followed).toString()).toBe('four');
    });
  });

  it('a read made outside the loop: runUntilComplete() and ensureFuture() take its promise as the read', async () => {
    const loop = new Loop({ clock: new VirtualClock({ autojump: 0 }) });
    try {
      // runUntilComplete()'s type names futures and task targets; a read's promise is
      // taken at run time (JavaScript callers, code ported from asyncio's tests).
      const untilRead = (p: Promise<Buffer>): Promise<Buffer> => loop.runUntilComplete(p as never);
      const r = new StreamReader({ loop });
      const p = r.read(100);
      loop.callLater(5, () => r.feedData(b('early')));
      expect((await untilRead(p)).toString()).toBe('early');
      // Cancelled through the future ensureFuture() returns: the reader is free again.
      const fut = ensureFuture(r.read(100), { loop });
      expect(fut.description).toBe('StreamReader.read()');
      fut.cancel();
      await expect(loop.runUntilComplete(fut)).rejects.toBeInstanceOf(CancelledError);
      const late = r.read(100);
      r.feedData(b('late'));
      expect((await untilRead(late)).toString()).toBe('late');
      // Any other promise is still refused: it runs already and cannot be cancelled.
      await expect(loop.runUntilComplete(Promise.resolve(1) as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    } finally {
      loop.close();
    }
  });

  it('setException() fails the waiting read and every later one', async () => {
    await vrun(async () => {
      const r = new StreamReader();
      const loop = getRunningLoop();
      const boom = new Error('boom');
      loop.callLater(2, () => r.setException(boom));
      await expect(r.readLine()).rejects.toBe(boom);
      await expect(r.read(1)).rejects.toBe(boom);
      expect(r.exception()).toBe(boom);
    });
  });

  it('pauses the transport above 2*limit and resumes at limit, or when a read must wait', async () => {
    await vrun(async () => {
      const r = new StreamReader({ limit: 10 });
      const t = pausable();
      r.setTransport(t);
      r.feedData(Buffer.alloc(15));
      r.feedData(Buffer.alloc(6));
      expect(t.calls).toEqual(['pause']);
      await r.read(5);
      expect(t.calls).toEqual(['pause']);
      await r.read(6);
      expect(t.calls).toEqual(['pause', 'resume']);
      r.feedData(Buffer.alloc(30));
      expect(t.calls).toEqual(['pause', 'resume', 'pause']);
      // readExactly(100) needs more than the limit allows: waiting resumes reading.
      const loop = getRunningLoop();
      loop.callLater(2, () => r.feedData(Buffer.alloc(70)));
      expect((await r.readExactly(100)).length).toBe(100);
      expect(t.calls.slice(3)).toEqual(['resume', 'pause', 'resume']);
    });
  });

  it('returned buffers never change when more data arrives', async () => {
    await vrun(async () => {
      const r = new StreamReader();
      r.feedData(b('ab'));
      r.feedData(b('cd\n'));
      const first = await r.readUntil('b');
      for (let i = 0; i < 100; i++) r.feedData(b(`chunk-${i};`));
      expect(first.toString()).toBe('ab');
      expect((await r.readLine()).toString()).toBe('cd\n');
      expect((await r.readUntil(';')).toString()).toBe('chunk-0;');
    });
  });

  it('validates its arguments with typed errors', async () => {
    await vrun(async () => {
      expect(() => new StreamReader({ limit: 0 })).toThrow(InvalidArgumentError);
      expect(() => new StreamReader({ limit: 1.5 })).toThrow(InvalidArgumentError);
      const r = new StreamReader();
      expect(() => r.feedData(42 as unknown as Buffer)).toThrow(InvalidArgumentError);
      r.feedEof();
      expect(() => r.feedData(b('x'))).toThrow(InvalidArgumentError);
      expect(String(r)).toContain('StreamReader eof');
    });
  });
});
