// Shared by the CLI tests: the inspection fixture started as a child process (its
// "ready <pid>" line is the event waited for), and the protoloop command run to its end.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach } from 'vitest';

const execFileP = promisify(execFile);
/** The fixture: a protoloop process with inspection on and a known set of tasks. */
export const target = fileURLToPath(new URL('../fixtures/inspect/target.ts', import.meta.url));
/** The protoloop command. */
export const cli = fileURLToPath(new URL('../../bin/protoloop.js', import.meta.url));
const children: ChildProcess[] = [];

/** Kills `child` after the test if it is still running. */
export function track<C extends ChildProcess>(child: C): C {
  children.push(child);
  return child;
}

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Starts the fixture (with extra `env`, as user `uid`); resolves once it printed `ready <pid>`. */
export function startTarget(env: Record<string, string> = {}, uid?: number): Promise<{ pid: number; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [target], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
      ...(uid !== undefined ? { uid, gid: uid } : {}),
    });
    children.push(child);
    let out = '';
    const timer = setTimeout(() => reject(new Error(`target did not start: ${out}`)), 15_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ pid: Number(m[1]), child });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`target exited early with ${code}: ${out}`));
    });
  });
}

/** Sends SIGTERM; resolves with the exit code. */
export function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

/** Runs `protoloop <args>` to its end (15 s at most). */
export async function protoloop(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await execFileP(process.execPath, [cli, ...args], { timeout: 15_000 });
    return { ...r, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}
