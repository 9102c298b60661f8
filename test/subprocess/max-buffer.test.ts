// communicate()'s maxBuffer: the output kept is bounded, the child is stopped and reaped.
import { describe, expect, it } from 'vitest';
import { createSubprocessExec, InvalidArgumentError, MaxBufferError, PIPE, run } from '../../src/index.ts';
import { isDead } from './helpers.ts';

// 64 MiB of zeros on stdout, then exit: the child ends by itself if the limit failed.
const FLOOD = 'exec head -c 67108864 /dev/zero';

describe('communicate() maxBuffer', () => {
  it('past maxBuffer: MaxBufferError with the output so far (at most the limit), the child stopped and reaped', async () => {
    const limit = 256 * 1024;
    const result = await run(async () => {
      const proc = await createSubprocessExec('sh', ['-c', `printf partial >&2; ${FLOOD}`], { stdout: PIPE, stderr: PIPE });
      const error: unknown = await proc.communicate({ maxBuffer: limit }).then(
        () => null,
        (e: unknown) => e,
      );
      return { error, pid: proc.pid, returncode: proc.returncode, signal: proc.signal };
    });
    expect(result.error).toBeInstanceOf(MaxBufferError);
    const e = result.error as MaxBufferError;
    expect(e.code).toBe('ERR_PROTOLOOP_MAX_BUFFER');
    expect(e.stream).toBe('stdout');
    expect(e.maxBuffer).toBe(limit);
    // Exactly the limit is kept: the rest of the 64 MiB was never stored.
    expect(e.stdout!.length).toBe(limit);
    expect(e.stdout!.every((b) => b === 0)).toBe(true);
    expect(e.stderr!.toString()).toBe('partial');
    // Stopped with its killSignal (SIGTERM) and reaped before communicate() rejected.
    expect(result.signal).toBe('SIGTERM');
    expect(result.returncode).toBe(-15);
    expect(isDead(result.pid)).toBe(true);
  });

  it('a child that ignores killSignal is SIGKILLed after forceKillAfterDelay; stderr can be the stream over the limit', async () => {
    const result = await run(async () => {
      // The ignored SIGTERM is inherited through exec.
      const proc = await createSubprocessExec('sh', ['-c', `trap "" TERM; printf out; ${FLOOD} >&2`], { stdout: PIPE, stderr: PIPE, forceKillAfterDelay: 200 });
      const error: unknown = await proc.communicate(undefined, { maxBuffer: 1000 }).then(
        () => null,
        (e: unknown) => e,
      );
      return { error, pid: proc.pid, returncode: proc.returncode };
    });
    expect(result.error).toBeInstanceOf(MaxBufferError);
    const e = result.error as MaxBufferError;
    expect(e.stream).toBe('stderr');
    expect(e.stderr!.length).toBe(1000);
    expect(e.stdout!.toString()).toBe('out');
    expect(result.returncode).toBe(-9);
    expect(isDead(result.pid)).toBe(true);
  });

  it('output up to maxBuffer is returned; Infinity keeps everything; the default (100 MB) is far above 64 MiB', async () => {
    const result = await run(async () => {
      const exact = await createSubprocessExec('head', ['-c', '5000', '/dev/zero'], { stdout: PIPE });
      const [a] = await exact.communicate({ maxBuffer: 5000 });
      const unbounded = await createSubprocessExec('sh', ['-c', FLOOD], { stdout: PIPE });
      const [b] = await unbounded.communicate({ maxBuffer: Infinity });
      const byDefault = await createSubprocessExec('sh', ['-c', FLOOD], { stdout: PIPE });
      const [c] = await byDefault.communicate();
      return [a!.length, b!.length, c!.length, exact.returncode, unbounded.returncode, byDefault.returncode];
    });
    expect(result).toEqual([5000, 64 * 1024 * 1024, 64 * 1024 * 1024, 0, 0, 0]);
  });

  it('a bad maxBuffer or an unknown option is an InvalidArgumentError at once; the child is left alone', async () => {
    await run(async () => {
      const proc = await createSubprocessExec('sh', ['-c', 'printf ok'], { stdout: PIPE });
      for (const bad of [-1, 1.5, NaN, '10', null]) {
        await expect(proc.communicate({ maxBuffer: bad as number })).rejects.toThrow(InvalidArgumentError);
      }
      await expect(proc.communicate({ maxbuffer: 10 } as never)).rejects.toThrow(/unknown communicate\(\) option 'maxbuffer'/);
      const [out] = await proc.communicate({ maxBuffer: 2 });
      expect(out!.toString()).toBe('ok');
    });
  });
});
