import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CancelledError, InvalidArgumentError, InvalidSignalError, LoopRunningError, Runner, getRunningLoop, run, sleep, type ExceptionContext } from '../../src/index.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/runner/${name}`, import.meta.url));

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function runScript(file: string, args: string[], onStdout?: (text: string, child: ReturnType<typeof spawn>) => void): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      onStdout?.(stdout, child);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - start });
    });
  });
}

describe('run()', () => {
  it('returns main’s result and throws main’s error', async () => {
    expect(await run(async () => 'ok')).toBe('ok');
    await expect(
      run(async () => {
        await sleep(1);
        throw new URIError('main failed');
      }),
    ).rejects.toThrow(URIError);
  });

  it('cancels the tasks still pending when main returns, and waits for them', async () => {
    const events: string[] = [];
    await run(async () => {
      getRunningLoop().createTask(async () => {
        try {
          await sleep(60_000);
        } catch (e) {
          events.push(e instanceof CancelledError ? 'leftover cancelled' : 'other');
          await sleep(1);
          events.push('leftover cleaned up');
          throw e;
        }
      });
      await sleep(1);
    });
    expect(events).toEqual(['leftover cancelled', 'leftover cleaned up']);
  });

  it('reports a leftover that fails during shutdown through the exception handler', async () => {
    const seen: ExceptionContext[] = [];
    await run(async () => {
      const loop = getRunningLoop();
      loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
      loop.createTask(async () => {
        try {
          await sleep(60_000);
        } catch {
          throw new Error('failed while cancelled');
        }
      });
      await sleep(1);
    });
    expect(seen.map((c) => c.message)).toEqual(['unhandled exception during run() shutdown']);
  });

  it('refuses to nest', async () => {
    await run(async () => {
      await expect(run(async () => 1)).rejects.toBeInstanceOf(LoopRunningError);
    });
  });

  it('a Runner runs several calls on one loop, then closes it', async () => {
    const runner = new Runner();
    const loop = runner.getLoop();
    expect(await runner.run(async () => getRunningLoop())).toBe(loop);
    expect(await runner.run(async () => 2)).toBe(2);
    await runner.close();
    expect(loop.isClosed()).toBe(true);
    await runner.close();
  });

  it('a script exits by itself once run() has returned', async () => {
    const r = await runScript(fixture('exits.ts'), []);
    expect(r.stdout).toBe('done\n');
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(15_000);
  });

  it('the first SIGINT cancels main and the process exits with 130, printing one line and no stack', async () => {
    const r = await runScript(fixture('sigint.ts'), [], (out, child) => {
      if (out === 'ready\n') child.kill('SIGINT');
    });
    expect(r.stdout).toBe('ready\nmain saw CancelledError\n');
    expect(r.stderr).toBe('protoloop: SIGINT stopped main; shut down gracefully (KeyboardInterrupt, exit code 130)\n');
    expect(r.code).toBe(130);
  });

  it('a second SIGINT exits at once when main ignores the first', async () => {
    let sent = 0;
    const r = await runScript(fixture('sigint.ts'), ['stubborn'], (out, child) => {
      if (out === 'ready\n' && sent === 0) {
        sent++;
        child.kill('SIGINT');
      } else if (out.includes('main saw') && sent === 1) {
        sent++;
        child.kill('SIGINT');
      }
    });
    expect(sent).toBe(2);
    expect(r.code).toBe(130);
    expect(r.stderr).toBe('protoloop: second signal (SIGINT) during the graceful shutdown: exiting at once\n');
    expect(r.ms).toBeLessThan(15_000);
  });

  it('the first SIGTERM shuts down in order (main, servers, leftovers, children, loop) and exits 0 with one line', async () => {
    const r = await runScript(fixture('graceful.ts'), [], (out, child) => {
      if (out === 'ready\n') child.kill('SIGTERM');
    });
    expect(r.stdout).toBe(
      'ready\nmain saw CancelledError\nservers drained\nleftover saw CancelledError\nexit 0: child returncode=-15 loop closed=true\n',
    );
    expect(r.stderr).toBe('protoloop: SIGTERM stopped main; shut down gracefully (SystemExit, exit code 0)\n');
    expect(r.code).toBe(0);
  });

  it('SIGINT takes the same graceful path and exits 130', async () => {
    const r = await runScript(fixture('graceful.ts'), [], (out, child) => {
      if (out === 'ready\n') child.kill('SIGINT');
    });
    expect(r.stdout).toBe(
      'ready\nmain saw CancelledError\nservers drained\nleftover saw CancelledError\nexit 130: child returncode=-15 loop closed=true\n',
    );
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(r.code).toBe(130);
  });

  it('a second SIGTERM exits at once with 143', async () => {
    let sent = 0;
    const r = await runScript(fixture('sigint.ts'), ['stubborn'], (out, child) => {
      if (out === 'ready\n' && sent === 0) {
        sent++;
        child.kill('SIGTERM');
      } else if (out.includes('main saw') && sent === 1) {
        sent++;
        child.kill('SIGTERM');
      }
    });
    expect(sent).toBe(2);
    expect(r.code).toBe(143);
  });

  it('a program that catches run()’s rejection gets SystemExit and keeps its exit code; nothing is printed', async () => {
    const r = await runScript(fixture('graceful.ts'), ['catch'], (out, child) => {
      if (out === 'ready\n') child.kill('SIGTERM');
    });
    expect(r.stdout).toMatch(/\ncaught SystemExit 0\nexit 0: child returncode=-15 loop closed=true\n$/);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('signals: [] handles none: SIGTERM’s default action ends the process', async () => {
    const r = await runScript(fixture('options.ts'), ['none'], (out, child) => {
      if (out === 'ready\n') child.kill('SIGTERM');
    });
    expect(r.signal).toBe('SIGTERM');
    expect(r.stderr).toBe('');
  });

  it('leaves a signal the program handles itself to the program', async () => {
    const r = await runScript(fixture('options.ts'), ['own'], (out, child) => {
      if (out === 'ready\n') child.kill('SIGTERM');
    });
    expect(r.stdout).toBe('ready\nown handler\nmain returned\n');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('refuses signals that are not catchable signal names', () => {
    expect(() => new Runner({ signals: 'SIGTERM' as never })).toThrow(InvalidArgumentError);
    expect(() => new Runner({ signals: ['SIGNOPE' as never] })).toThrow(InvalidSignalError);
    expect(() => new Runner({ signals: ['SIGKILL'] })).toThrow(InvalidSignalError);
    expect(() => new Runner({ signals: [] })).not.toThrow();
  });
});
