import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createSubprocessExec,
  createSubprocessShell,
  DEVNULL,
  getRunningLoop,
  InvalidArgumentError,
  InvalidSignalError,
  PIPE,
  run,
  STDOUT,
  SubprocessProtocol,
  type SubprocessTransport,
} from '../../src/index.ts';

class Recorder extends SubprocessProtocol {
  events: string[] = [];
  out: Buffer[] = [];
  transport: SubprocessTransport | null = null;
  #done: () => void = () => {};
  readonly finished = new Promise<void>((r) => {
    this.#done = r;
  });
  override connectionMade(transport: SubprocessTransport): void {
    this.transport = transport;
    this.events.push('connectionMade');
  }
  override pipeDataReceived(fd: number, data: Buffer): void {
    if (this.events.at(-1) !== `data${fd}`) this.events.push(`data${fd}`);
    if (fd === 1) this.out.push(data);
  }
  override pipeConnectionLost(fd: number, exc: Error | undefined): void {
    this.events.push(`pipeConnectionLost${fd}${exc ? ':' + exc.name : ''}`);
  }
  override processExited(): void {
    this.events.push('processExited');
  }
  override connectionLost(exc: Error | undefined): void {
    this.events.push(`connectionLost${exc ? ':' + exc.name : ''}`);
    this.#done();
  }
}

describe('createSubprocessExec / createSubprocessShell', () => {
  it('passes arguments as they are, never through a shell', async () => {
    const tricky = ['a b', '$(echo injected)', '; rm -rf /', "'quoted'", '*', ''];
    const [out, rc] = await run(async () => {
      const proc = await createSubprocessExec('printf', ['%s|', ...tricky], { stdout: PIPE });
      const [o] = await proc.communicate();
      return [o!.toString(), proc.returncode];
    });
    expect(out).toBe(tricky.map((a) => `${a}|`).join(''));
    expect(rc).toBe(0);
  });

  it('communicate() feeds stdin and collects stdout and stderr; returncode is the exit code', async () => {
    const result = await run(async () => {
      const proc = await createSubprocessExec('sh', ['-c', 'read x; echo "got $x"; echo oops >&2; exit 7'], { stdin: PIPE, stdout: PIPE, stderr: PIPE });
      expect(proc.pid).toBeGreaterThan(0);
      expect(proc.returncode).toBeNull();
      const [out, err] = await proc.communicate('hello\n');
      return { out: out!.toString(), err: err!.toString(), rc: proc.returncode, signal: proc.signal, waited: await proc.wait() };
    });
    expect(result).toEqual({ out: 'got hello\n', err: 'oops\n', rc: 7, signal: null, waited: 7 });
  });

  it('runs a shell command with the shell variant; STDOUT merges stderr into stdout; DEVNULL discards', async () => {
    const result = await run(async () => {
      const sh = await createSubprocessShell('echo one; echo two >&2; echo three', { stdout: PIPE, stderr: STDOUT });
      expect(sh.stderr).toBeNull();
      const [merged, none] = await sh.communicate();
      const quiet = await createSubprocessShell('echo hidden; echo shown >&2', { stdout: DEVNULL, stderr: PIPE });
      const [o, e] = await quiet.communicate();
      return { merged: merged!.toString().split('\n').sort().join(','), none, o, e: e!.toString() };
    });
    expect(result).toEqual({ merged: ',one,three,two', none: null, o: null, e: 'shown\n' });
  });

  it('reads lines from stdout as a stream and honours cwd and env', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'protoloop-cwd-')));
    try {
      const lines = await run(async () => {
        const proc = await createSubprocessExec('sh', ['-c', 'pwd; echo "$FOO"; echo "${HOME-unset}"'], { stdout: PIPE, cwd: dir, env: { FOO: 'bar', PATH: process.env.PATH } });
        const got: string[] = [];
        for await (const line of proc.stdout!) got.push(line.toString().trimEnd());
        await proc.wait();
        return got;
      });
      // env replaces the environment (HOME is not inherited), as in Node and asyncio.
      expect(lines).toEqual([dir, 'bar', 'unset']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad input at once with typed errors', async () => {
    await run(async () => {
      expect(() => createSubprocessExec('', [])).toThrow(InvalidArgumentError);
      expect(() => createSubprocessExec('echo', 'a b' as unknown as string[])).toThrow(InvalidArgumentError);
      expect(() => createSubprocessExec('echo', [1 as unknown as string])).toThrow(InvalidArgumentError);
      expect(() => createSubprocessExec('echo', ['a\0b'])).toThrow(InvalidArgumentError);
      expect(() => createSubprocessExec('echo', [], { stdout: 'bogus' as never })).toThrow(InvalidArgumentError);
      expect(() => createSubprocessExec('echo', [], { timeout: -1 })).toThrow(InvalidArgumentError);
      expect(() => createSubprocessExec('echo', [], { limit: 0 })).toThrow(InvalidArgumentError);
      expect(() => createSubprocessExec('echo', [], { nope: 1 } as never)).toThrow(/unknown subprocess option 'nope'/);
      expect(() => createSubprocessExec('echo', [], { killSignal: 'SIGNOPE' as never })).toThrow(InvalidSignalError);
      expect(() => createSubprocessShell(42 as unknown as string)).toThrow(InvalidArgumentError);
      const proc = await createSubprocessExec('true');
      await proc.wait();
      expect(() => proc.sendSignal('SIGWHAT' as never)).toThrow(InvalidSignalError);
      await expect(proc.communicate('x')).rejects.toThrow(InvalidArgumentError);
    });
  });

  it('does not start anything when the AbortSignal is already aborted', async () => {
    const reason = new Error('stop before start');
    await run(async () => {
      await expect(createSubprocessExec('sleep', ['5'], { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      expect(getRunningLoop().stats().openResources['subprocess transport']).toBeUndefined();
    });
  });
});

describe('loop.subprocessExec / subprocessShell (low level)', () => {
  it('calls the protocol in order: connectionMade, data, pipe losses and exit, then connectionLost once', async () => {
    const [proto, rc] = await run(async () => {
      const loop = getRunningLoop();
      const [transport, p] = await loop.subprocessExec(() => new Recorder(), 'sh', ['-c', 'echo out; echo err >&2']);
      expect(p.events[0]).toBe('connectionMade');
      expect(p.transport).toBe(transport);
      expect(transport.getPid()).toBeGreaterThan(0);
      expect(transport.getPipeTransport(0)).not.toBeNull();
      await p.finished;
      return [p, transport.getReturncode()];
    });
    const ev = proto.events;
    expect(rc).toBe(0);
    expect(ev[0]).toBe('connectionMade');
    expect(ev.at(-1)).toBe('connectionLost');
    expect(ev.filter((e) => e.startsWith('connectionLost'))).toHaveLength(1);
    expect(new Set(ev.slice(1, -1))).toEqual(new Set(['data1', 'data2', 'pipeConnectionLost0', 'pipeConnectionLost1', 'pipeConnectionLost2', 'processExited']));
    expect(Buffer.concat(proto.out).toString()).toBe('out\n');
  });

  it('subprocessShell runs a command line; pipes that are not PIPE have no transport', async () => {
    await run(async () => {
      const [transport, p] = await getRunningLoop().subprocessShell(() => new Recorder(), 'echo $((6 * 7))', { stdin: DEVNULL, stderr: DEVNULL });
      expect(transport.getPipeTransport(0)).toBeNull();
      expect(transport.getPipeTransport(2)).toBeNull();
      await p.finished;
      expect(Buffer.concat(p.out).toString()).toBe('42\n');
      expect(transport.getExitInfo()).toEqual({ returncode: 0, signal: null, timedOut: false, cancelled: false, forcefullyTerminated: false });
    });
  });

  it('an exception in a protocol callback goes to the exception handler and kills the child', async () => {
    const seen: string[] = [];
    await run(async () => {
      const loop = getRunningLoop();
      loop.setExceptionHandler((_l, ctx) => seen.push(ctx.message));
      class Bad extends Recorder {
        override pipeDataReceived(): void {
          throw new Error('bug in the protocol');
        }
      }
      const [transport, p] = await loop.subprocessExec(() => new Bad(), 'sh', ['-c', 'echo hi; exec sleep 30']);
      await p.finished;
      expect(transport.getReturncode()).toBe(-9);
    });
    expect(seen).toEqual([expect.stringContaining('Exception in pipeDataReceived() of the subprocess protocol')]);
  });

  it('close() kills a running child; connectionLost still comes once it is reaped', async () => {
    await run(async () => {
      const [transport, p] = await getRunningLoop().subprocessExec(() => new Recorder(), 'sleep', ['30']);
      transport.close();
      transport.close();
      expect(transport.isClosing()).toBe(true);
      await p.finished;
      expect(transport.getReturncode()).toBe(-9);
      expect(() => transport.terminate()).toThrow(/closed/);
    });
  });
});
