import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  createSubprocessExec,
  getRunningLoop,
  PIPE,
  run,
  Runner,
  sleep,
  SubprocessProtocol,
  type ReadTransport,
  type SubprocessTransport,
  type WriteTransport,
} from '../../src/index.ts';
import { BACKLOG_LIMIT } from '../../src/subprocess/transport.ts';
import { within } from '../helpers.ts';

const MiB = 1024 * 1024;

class Counter extends SubprocessProtocol {
  bytes = 0;
  events: string[] = [];
  transport: SubprocessTransport | null = null;
  pauseAt = Infinity;
  #done: () => void = () => {};
  readonly finished = new Promise<void>((r) => {
    this.#done = r;
  });
  override connectionMade(transport: SubprocessTransport): void {
    this.transport = transport;
  }
  override pipeDataReceived(_fd: number, data: Buffer): void {
    this.bytes += data.length;
    if (this.bytes >= this.pauseAt) {
      this.pauseAt = Infinity;
      (this.transport!.getPipeTransport(1) as ReadTransport).pauseReading();
    }
  }
  override pauseWriting(): void {
    this.events.push('pauseWriting');
  }
  override resumeWriting(): void {
    this.events.push('resumeWriting');
  }
  override connectionLost(): void {
    this.#done();
  }
}

describe('subprocess flow control', () => {
  it('pauseReading() on stdout makes a fast child block on its writes; resumeReading() lets it finish', async () => {
    const total = 16 * MiB;
    const result = await run(async () => {
      const [transport, p] = await getRunningLoop().subprocessExec(() => Object.assign(new Counter(), { pauseAt: 1 }), 'head', ['-c', String(total), '/dev/zero'], {
        stdin: null,
        stderr: null,
      });
      const stdout = transport.getPipeTransport(1)!;
      await sleep(300);
      const whilePaused = p.bytes;
      const blocked = transport.getReturncode() === null && !stdout.isReading();
      stdout.resumeReading();
      await p.finished;
      return { whilePaused, blocked, bytes: p.bytes, rc: transport.getReturncode() };
    });
    expect(result.blocked).toBe(true);
    // What the pipe and Node's small read buffer hold, not the 16 MiB the child wanted to write.
    expect(result.whilePaused).toBeLessThan(MiB);
    expect(result.bytes).toBe(total);
    expect(result.rc).toBe(0);
  });

  it('stdin: pauseWriting() past the high-water mark, resumeWriting() once a slow child drained it', async () => {
    const result = await run(async () => {
      const [transport, p] = await getRunningLoop().subprocessExec(() => new Counter(), 'sh', ['-c', 'sleep 0.2; exec cat >/dev/null'], { stdout: null, stderr: null });
      const stdin = transport.getPipeTransport(0) as WriteTransport;
      expect(stdin.getWriteBufferLimits()).toEqual([16 * 1024, 64 * 1024]);
      stdin.write(Buffer.alloc(MiB));
      const buffered = stdin.getWriteBufferSize();
      const eventsAfterWrite = [...p.events];
      while (!p.events.includes('resumeWriting')) await sleep(10);
      const bufferedAfterResume = stdin.getWriteBufferSize();
      stdin.writeEof();
      await p.finished;
      return { buffered, eventsAfterWrite, bufferedAfterResume, events: p.events, rc: transport.getReturncode() };
    });
    expect(result.buffered).toBeGreaterThan(64 * 1024);
    expect(result.eventsAfterWrite).toEqual(['pauseWriting']);
    expect(result.bufferedAfterResume).toBeLessThanOrEqual(16 * 1024);
    expect(result.events).toEqual(['pauseWriting', 'resumeWriting']);
    expect(result.rc).toBe(0);
  });

  it('write() copies: the caller may reuse its buffer at once, even while the pipe is full', async () => {
    const out = await run(async () => {
      const proc = await createSubprocessExec('sh', ['-c', 'sleep 0.1; exec cat'], { stdin: PIPE, stdout: PIPE });
      const reading = getRunningLoop().createTask(() => proc.stdout!.read());
      const buf = Buffer.alloc(256 * 1024);
      for (let i = 0; i < 16; i++) {
        buf.fill(0x41 + i);
        proc.stdin!.write(buf);
        // Overwrite at once: what is still queued must not change.
        buf.fill(0x3f);
        if (i % 4 === 3) await proc.stdin!.drain();
      }
      proc.stdin!.close();
      const data = await reading;
      await proc.wait();
      return data;
    });
    expect(out.length).toBe(16 * 256 * 1024);
    for (let i = 0; i < 16; i++) {
      const part = out.subarray(i * 256 * 1024, (i + 1) * 256 * 1024);
      expect(part.every((b) => b === 0x41 + i), `chunk ${i}`).toBe(true);
    }
  });

  it('Process.stdin.drain() waits for a slow reader', async () => {
    const sizes = await run(async () => {
      const proc = await createSubprocessExec('sh', ['-c', 'sleep 0.1; exec cat >/dev/null'], { stdin: PIPE });
      const after: number[] = [];
      const chunk = Buffer.alloc(512 * 1024, 1);
      for (let i = 0; i < 4; i++) {
        proc.stdin!.write(chunk);
        await proc.stdin!.drain();
        after.push(proc.stdin!.transport.getWriteBufferSize());
      }
      proc.stdin!.close();
      await proc.wait();
      return after;
    });
    for (const s of sizes) expect(s).toBeLessThanOrEqual(16 * 1024);
  });

  it('while the loop is not running, a child output backlog stays bounded (the pipes are held)', async () => {
    const total = 32 * MiB;
    const runner = new Runner();
    try {
      const { p, pipe } = await runner.run(async () => {
        const [t, proto] = await getRunningLoop().subprocessExec(() => new Counter(), 'head', ['-c', String(total), '/dev/zero'], { stdin: null, stderr: null });
        return { p: proto, pipe: t.getPipeTransport(1)!.getExtraInfo<Socket>('pipe')! };
      });
      // The loop is idle now: Node still reads the pipe and the protocol calls queue up
      // until more than BACKLOG_LIMIT bytes wait undelivered; then the pipe is paused.
      if (!pipe.isPaused()) await within(10_000, once(pipe, 'pause'), 'the pipe to be held');
      // Undelivered: what Node read beyond what the protocol got while the loop ran.
      // At most the limit and the reads in flight when it was crossed, not 32 MiB.
      expect(pipe.bytesRead - p.bytes).toBeLessThanOrEqual(BACKLOG_LIMIT + 256 * 1024);
      expect(pipe.bytesRead).toBeLessThan(total);
      await runner.run(async () => {
        await p.finished;
      });
      expect(p.bytes).toBe(total);
    } finally {
      await runner.close();
    }
  });
});
