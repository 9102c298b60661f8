// Shared helpers of the executor tests.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { workerTask } from '../../src/index.ts';
import type * as Tasks from '../fixtures/executors/tasks.ts';

export const TASKS = new URL('../fixtures/executors/tasks.ts', import.meta.url);

type T = typeof Tasks;
export const tasks = {
  add: workerTask<T['add']>(TASKS, 'add'),
  echo: workerTask<T['echo']>(TASKS, 'echo'),
  sha256: workerTask<T['sha256']>(TASKS, 'sha256'),
  where: workerTask<T['where']>(TASKS, 'where'),
  throwType: workerTask<T['throwType']>(TASKS, 'throwType'),
  throwSystem: workerTask<T['throwSystem']>(TASKS, 'throwSystem'),
  throwCustom: workerTask<T['throwCustom']>(TASKS, 'throwCustom'),
  throwUnnamed: workerTask<T['throwUnnamed']>(TASKS, 'throwUnnamed'),
  exitNow: workerTask<T['exitNow']>(TASKS, 'exitNow'),
  crashLater: workerTask<T['crashLater']>(TASKS, 'crashLater'),
  killSelf: workerTask<T['killSelf']>(TASKS, 'killSelf'),
  sleepMs: workerTask<T['sleepMs']>(TASKS, 'sleepMs'),
  spin: workerTask<T['spin']>(TASKS, 'spin'),
  sleepMarked: workerTask<T['sleepMarked']>(TASKS, 'sleepMarked'),
  spinMarked: workerTask<T['spinMarked']>(TASKS, 'spinMarked'),
  holdMarked: workerTask<T['holdMarked']>(TASKS, 'holdMarked'),
  byteLength: workerTask<T['byteLength']>(TASKS, 'byteLength'),
  exhaustHeap: workerTask<T['exhaustHeap']>(TASKS, 'exhaustHeap'),
  throwAfterAnswer: workerTask<T['throwAfterAnswer']>(TASKS, 'throwAfterAnswer'),
  markLater: workerTask<T['markLater']>(TASKS, 'markLater'),
  holdThenExit: workerTask<T['holdThenExit']>(TASKS, 'holdThenExit'),
  fillAndReturn: workerTask<typeof import('../fixtures/executors/transfer-tasks.ts').fillAndReturn>(new URL('../fixtures/executors/transfer-tasks.ts', import.meta.url), 'fillAndReturn'),
  returnFunction: workerTask<T['returnFunction']>(TASKS, 'returnFunction'),
  missingExport: workerTask(TASKS, 'noSuchExport'),
  notAFunction: workerTask(TASKS, 'notAFunction'),
  missingModule: workerTask(new URL('../fixtures/executors/does-not-exist.ts', import.meta.url), 'f'),
  brokenModule: workerTask(new URL('../fixtures/executors/broken.ts', import.meta.url), 'f'),
};

/** Captures what a promise (or future) rejects with. */
export async function rejection(p: PromiseLike<unknown>): Promise<any> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** Captures what a call throws synchronously. */
export function thrown(fn: () => unknown): any {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

/** Runs a .ts script in a child Node process; resolves with its exit code, signal and output. Bounded by `timeoutMs`. */
export function runScript(file: URL, args: string[] = [], timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [fileURLToPath(file), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** Whether a process with `pid` exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}


import { pollOrThrow } from '../helpers.ts';
export { pollUntil } from '../helpers.ts';

/**
 * A fresh path for a `*Marked` job to create when it starts, and a wait for it (bounded,
 * polling) that removes it again (which lets a `holdMarked` job finish): the test then
 * knows the job runs, instead of sleeping a while.
 */
export function startMarker(): { path: string; started: () => Promise<void> } {
  const path = join(tmpdir(), `protoloop-job-${process.pid}-${randomUUID()}`);
  return {
    path,
    started: async () => {
      await pollOrThrow(() => existsSync(path), 10_000, 'the job to start');
      rmSync(path, { force: true });
    },
  };
}
