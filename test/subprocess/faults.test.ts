import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execaLib } from '../../src/loop/lazy.ts';
import { describe, expect, it } from 'vitest';
import {
  BrokenPipeError,
  createSubprocessExec,
  getRunningLoop,
  PIPE,
  Process,
  run,
  sleep,
  SubprocessError,
  SubprocessProtocol,
} from '../../src/index.ts';
import { procState } from './helpers.ts';

/** The pipes and child-process handles keeping this process alive. */
function activeResources(): string[] {
  return process
    .getActiveResourcesInfo()
    .filter((r) => r === 'PipeWrap' || r === 'ProcessWrap')
    .sort();
}

describe('subprocess faults', () => {
  it('executable not found: SubprocessError with the code ENOENT, nothing leaked', async () => {
    // execa loads on the first spawn and its import opens the stdio handles once: not a leak.
    await execaLib.load();
    const before = activeResources();
    await run(async () => {
      const loop = getRunningLoop();
      for (const stdio of [PIPE, null] as const) {
        const err = await createSubprocessExec('/nonexistent/protoloop-no-such-program', ['x'], { stdin: stdio, stdout: stdio, stderr: stdio }).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(SubprocessError);
        expect(err).toMatchObject({ code: 'ENOENT', errno: -constants.errno.ENOENT });
        expect((err as Error).message).toContain('/nonexistent/protoloop-no-such-program');
      }
      const lowLevel = loop.subprocessExec(() => new SubprocessProtocol(), 'protoloop-no-such-program-on-path');
      await expect(lowLevel).rejects.toMatchObject({ code: 'ENOENT' });
      expect(loop.stats().openResources['subprocess transport']).toBeUndefined();
    });
    // Pipes and process handles Node opened for the failed spawns are all gone.
    await new Promise((r) => setTimeout(r, 50));
    expect(activeResources()).toEqual(before);
  });

  it('permission denied: SubprocessError with the code EACCES', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'protoloop-eacces-'));
    const script = join(dir, 'script.sh');
    writeFileSync(script, '#!/bin/sh\necho should not run\n');
    chmodSync(script, 0o644);
    try {
      await run(async () => {
        await expect(createSubprocessExec(script, [], { stdout: PIPE })).rejects.toMatchObject({ name: 'SubprocessError', code: 'EACCES' });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a child flooding 1 GiB to a slow reader is paused through its pipe: memory stays bounded', async () => {
    const result = await run(async () => {
      const proc = await createSubprocessExec('head', ['-c', String(1024 ** 3), '/dev/zero'], { stdout: PIPE });
      const rss0 = process.memoryUsage().rss;
      let got = 0;
      // Read 4 KiB every 2 ms for about a second: far slower than the child writes.
      const end = Date.now() + 1000;
      while (Date.now() < end) {
        got += (await proc.stdout!.read(4096)).length;
        await sleep(2);
      }
      const rss1 = process.memoryUsage().rss;
      const running = proc.returncode === null && procState(proc.pid) !== null;
      proc.kill();
      const rc = await proc.wait();
      return { got, grew: rss1 - rss0, running, rc, signal: proc.signal };
    });
    expect(result.running).toBe(true);
    expect(result.got).toBeGreaterThan(0);
    expect(result.got).toBeLessThan(64 * 1024 * 1024);
    // The child wrote nothing more than the pipe and the reader's limit can hold.
    expect(result.grew).toBeLessThan(48 * 1024 * 1024);
    expect(result.rc).toBe(-9);
    expect(result.signal).toBe('SIGKILL');
  });

  it('a child killed by a signal: returncode is minus the signal number, signal its name', async () => {
    const result = await run(async () => {
      const a = await createSubprocessExec('sleep', ['30']);
      a.sendSignal('SIGINT');
      const b = await createSubprocessExec('sleep', ['30']);
      b.terminate();
      const c = await createSubprocessExec('sh', ['-c', 'kill -USR1 $$']);
      return [await a.wait(), a.signal, await b.wait(), b.signal, await c.wait(), c.signal];
    });
    expect(result).toEqual([-2, 'SIGINT', -15, 'SIGTERM', -10, 'SIGUSR1']);
  });

  it('a child that ignores SIGTERM is SIGKILLed after the grace period (timeout)', async () => {
    const result = await run(async () => {
      const proc = await createSubprocessExec('sh', ['-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'], {
        stdout: PIPE,
        timeout: 100,
        forceKillAfterDelay: 200,
      });
      await proc.stdout!.readLine();
      const t0 = Date.now();
      const rc = await proc.wait();
      return { rc, signal: proc.signal, timedOut: proc.timedOut, forced: proc.transport.getExitInfo()!.forcefullyTerminated, ms: Date.now() - t0 };
    });
    expect(result).toMatchObject({ rc: -9, signal: 'SIGKILL', timedOut: true, forced: true });
    expect(result.ms).toBeGreaterThanOrEqual(200);
  });

  it('a timeout terminates the child with killSignal', async () => {
    const result = await run(async () => {
      const proc = await createSubprocessExec('sleep', ['30'], { timeout: 100, killSignal: 'SIGINT' });
      const rc = await proc.wait();
      return { rc, signal: proc.signal, timedOut: proc.timedOut, cancelled: proc.cancelled };
    });
    expect(result).toEqual({ rc: -2, signal: 'SIGINT', timedOut: true, cancelled: false });
  });

  it('aborting the signal option stops the child', async () => {
    const result = await run(async () => {
      const ac = new AbortController();
      const proc = await createSubprocessExec('sleep', ['30'], { signal: ac.signal });
      ac.abort();
      const rc = await proc.wait();
      return { rc, cancelled: proc.cancelled, timedOut: proc.timedOut };
    });
    expect(result).toEqual({ rc: -15, cancelled: true, timedOut: false });
  });

  it('a child that closes stdin early while we write: BrokenPipeError, no crash', async () => {
    const result = await run(async () => {
      const proc = await createSubprocessExec('sh', ['-c', 'exec 0<&-; echo closed; exec sleep 30'], { stdin: PIPE, stdout: PIPE });
      await proc.stdout!.readLine();
      const chunk = Buffer.alloc(256 * 1024, 0x61);
      let error: unknown = null;
      try {
        for (let i = 0; i < 64; i++) {
          proc.stdin!.write(chunk);
          await proc.stdin!.drain();
        }
      } catch (e) {
        error = e;
      }
      // Writing again is refused with the same kind of error, synchronously.
      let again: unknown = null;
      try {
        proc.stdin!.write('more');
      } catch (e) {
        again = e;
      }
      proc.kill();
      await proc.wait();
      return { error, again };
    });
    expect(result.error).toBeInstanceOf(BrokenPipeError);
    expect(result.error).toMatchObject({ code: 'EPIPE' });
    expect(result.again).toBeInstanceOf(BrokenPipeError);
  });

  it('communicate() with large input and output at once does not deadlock', async () => {
    const input = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < input.length; i += 4) input.writeUInt32LE(i, i);
    const [out, err, rc] = await run(async () => {
      // cat writes back while we write: both pipes fill up if either side waits for the other.
      const proc: Process = await createSubprocessExec('sh', ['-c', 'cat; cat /dev/null >&2'], { stdin: PIPE, stdout: PIPE, stderr: PIPE });
      const [o, e] = await proc.communicate(input);
      return [o!, e!, proc.returncode];
    });
    expect(out.length).toBe(input.length);
    expect(out.equals(input)).toBe(true);
    expect(err.length).toBe(0);
    expect(rc).toBe(0);
  });

  it('communicate() ignores a child that exits without reading its input', async () => {
    const [out, rc] = await run(async () => {
      const proc = await createSubprocessExec('sh', ['-c', 'echo bye'], { stdin: PIPE, stdout: PIPE });
      const [o] = await proc.communicate(Buffer.alloc(4 * 1024 * 1024));
      return [o!.toString(), proc.returncode];
    });
    expect(out).toBe('bye\n');
    expect(rc).toBe(0);
  });
});
