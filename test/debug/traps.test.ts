// Every script of examples/traps/ run as a real child process, buggy and fixed, with
// and without debug mode: the report a person would read is on stderr.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
// The scripts run on the Node that runs the tests (the pinned 24, or 22 in CI's Node 22 run).
const node = process.execPath;
// Each script loads the whole library (type stripping included): share Node's compile
// cache between the runs, and run two at a time, so the suite stays quick on 2 cores.
const compileCache = mkdtempSync(join(tmpdir(), 'protoloop-traps-'));
afterAll(() => rmSync(compileCache, { recursive: true, force: true }));
const MAX_RUNNING = 2;
let running = 0;
const waiting: Array<() => void> = [];

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function trap(name: string, mode: 'bug' | 'fixed', debug: boolean): Promise<Exit> {
  if (running >= MAX_RUNNING) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await spawnTrap(name, mode, debug);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function spawnTrap(name: string, mode: 'bug' | 'fixed', debug: boolean): Promise<Exit> {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_COMPILE_CACHE: compileCache };
  delete env.PROTOLOOP_DEBUG;
  delete env.NODE_OPTIONS;
  if (debug) env.PROTOLOOP_DEBUG = '1';
  return new Promise((resolve, reject) => {
    const child = spawn(node, ['--expose-gc', `examples/traps/${name}.ts`, mode], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} ${mode} did not exit within 60 s\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * The report lines protoloop wrote (Node's own warnings are not ours to judge). Slow
 * callback warnings are left out except for the blocking trap: on a loaded machine any
 * step of a debug-mode run may take 100 ms.
 */
function reports(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^(ERROR|WARN|INFO) protoloop: /.test(l) && !l.startsWith('WARN protoloop: Executing '));
}

function slowReports(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('WARN protoloop: Executing '));
}

describe.concurrent('examples/traps', { timeout: 180_000 }, () => {
  it('never-awaited: the coroutine is reported, with its creation site in debug mode', async () => {
    const plain = await trap('never-awaited', 'bug', false);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe('');
    expect(plain.stderr).toContain('ERROR protoloop: Coroutine saveReport() was never awaited\n');
    expect(plain.stderr).toContain('hint: await it, or schedule it with loop.createTask()');
    expect(plain.stderr).toContain('PROTOLOOP_DEBUG=1 shows where it was created');
    expect(plain.stderr).not.toContain('created at');

    const debug = await trap('never-awaited', 'bug', true);
    expect(debug.code).toBe(0);
    expect(debug.stderr).toMatch(/Coroutine saveReport\(\) was never awaited\n {2}Coroutine object created at \(most recent call last\):\n {4}at bug \(examples\/traps\/never-awaited\.ts:\d+:\d+\)/);

    const fixed = await trap('never-awaited', 'fixed', true);
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toBe('saved: quarterly figures\n');
    expect(reports(fixed.stderr)).toEqual([]);
  });

  it('never-retrieved: the task, its error and (debug) where it was created', async () => {
    const plain = await trap('never-retrieved', 'bug', false);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe('main done\n');
    expect(reports(plain.stderr)).toEqual(['ERROR protoloop: Task exception was never retrieved']);
    expect(plain.stderr).toMatch(/task: <Task finished name="prices" coro=fetchPrices\(\) exception=Error\("price feed unreachable"\)>/);
    expect(plain.stderr).toMatch(/Error: price feed unreachable\n {6}at fetchPrices \(examples\/traps\/never-retrieved\.ts:\d+:\d+\)/);
    expect(plain.stderr).not.toContain('source_traceback');
    // The loop machinery below the user's frames is not shown.
    expect(plain.stderr).not.toContain('src/loop/');

    const debug = await trap('never-retrieved', 'bug', true);
    expect(debug.code).toBe(0);
    expect(debug.stderr).toMatch(/source_traceback: Object created at \(most recent call last\):\n {4}at bug \(examples\/traps\/never-retrieved\.ts:\d+:\d+\)/);

    const fixed = await trap('never-retrieved', 'fixed', false);
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toBe('could not fetch prices: price feed unreachable\nmain done\n');
    expect(reports(fixed.stderr)).toEqual([]);
  });

  it('unchained: steps finish out of order; in debug mode run() names the task it cancels', async () => {
    const plain = await trap('unchained', 'bug', false);
    expect(plain.code).toBe(0);
    // (on a loaded machine write's and main's waits may end in the same iteration: then
    // write is still finishing when main looks)
    expect(plain.stdout).toMatch(/^closed file\nwrote data\nmain returns with [12] task\(s\) still pending: create(, write)?\n$/);
    expect(reports(plain.stderr)).toEqual([]); // asyncio too cancels leftovers silently

    const debug = await trap('unchained', 'bug', true);
    expect(debug.code).toBe(0);
    expect(reports(debug.stderr)).toEqual(['WARN protoloop: run() is cancelling 1 task still pending when the main task finished']);
    expect(debug.stderr).toMatch(/tasks:\n {4}<Task pending name="create" coro=create\(\) wait_for=<Future sleep\(1000 ms\) pending .*> created at bug \(examples\/traps\/unchained\.ts:\d+:\d+\)>/);
    expect(debug.stderr).toContain('hint: await the tasks you start');

    const fixed = await trap('unchained', 'fixed', true);
    expect(fixed.stdout).toBe('created file\nwrote data\nclosed file\nmain returns with 0 task(s) still pending\n');
    expect(reports(fixed.stderr)).toEqual([]);
  });

  it('pending-at-stop: closing the loop reports the task it destroys', async () => {
    const plain = await trap('pending-at-stop', 'bug', false);
    expect(plain.code).toBe(0);
    expect(reports(plain.stderr)).toEqual(['ERROR protoloop: Task was destroyed but it is pending!']);
    // (the sleep may have just finished: its wake-up then dies with the loop)
    expect(plain.stderr).toMatch(/task: <Task pending name="heartbeat" coro=heartbeat\(\) wait_for=<Future sleep\(10 ms\) (pending|finished result=undefined)>>/);

    const debug = await trap('pending-at-stop', 'bug', true);
    expect(debug.stderr).toMatch(/source_traceback: Object created at \(most recent call last\):\n {4}at main \(examples\/traps\/pending-at-stop\.ts:\d+:\d+\)/);

    const fixed = await trap('pending-at-stop', 'fixed', true);
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toBe('heartbeat stopped before the loop closed\n');
    expect(reports(fixed.stderr)).toEqual([]);
  });

  it('blocking: debug mode names the slow callback and the slow task step', async () => {
    const plain = await trap('blocking', 'bug', false);
    expect(plain.code).toBe(0);
    expect(slowReports(plain.stderr)).toEqual([]); // timing is debug-only
    expect(plain.stdout).toMatch(/the loop was stuck for up to \d+ ms/);

    const debug = await trap('blocking', 'bug', true);
    expect(debug.code).toBe(0);
    const lines = slowReports(debug.stderr);
    expect(lines).toContainEqual(expect.stringMatching(/^WARN protoloop: Executing <Handle resizeImages\(\) created at bug \(examples\/traps\/blocking\.ts:\d+:\d+\)> took (?:0\.9\d\d|[1-9]\.\d{3}) seconds$/));
    expect(lines).toContainEqual(expect.stringMatching(/^WARN protoloop: Executing <Task pending name="main" coro=bug\(\) .*> took \d\.\d{3} seconds$/));
    expect(reports(debug.stderr)).toEqual([]);
    expect(debug.stderr).toContain('hint: move blocking work off the loop with toThread()');

    const fixed = await trap('blocking', 'fixed', true);
    expect(fixed.code).toBe(0);
    // The work ran on a worker thread. (Starting the pool takes the loop a few tens of
    // ms, more on a loaded machine, so a report of that step is not a failure here.)
    expect(fixed.stderr).not.toContain('resizeImages');
    // The bug stalls the loop for the whole second of work; the fix lets it tick while the
    // worker computes. (How late a tick is also depends on how loaded the machine is, so
    // the fix is judged by its ticks during the work, not by its worst delay.)
    const stuck = (r: Exit): number => Number(/stuck for up to (\d+) ms/.exec(r.stdout)![1]);
    expect(stuck(plain)).toBeGreaterThanOrEqual(900);
    expect(Number(/ticked (\d+) times while the work ran/.exec(fixed.stdout)![1])).toBeGreaterThan(0);
  });

  it('unclosed: a transport left open is reported and aborted at loop close', async () => {
    const plain = await trap('unclosed', 'bug', false);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe('server says: hello\n');
    expect(reports(plain.stderr)).toHaveLength(1);
    expect(reports(plain.stderr)[0]).toMatch(/^ERROR protoloop: unclosed transport <SocketTransport TCP open peer=127\.0\.0\.1:\d+/);
    expect(plain.stderr).toContain("hint: close it (or use 'await using')");

    const debug = await trap('unclosed', 'bug', true);
    expect(debug.stderr).toMatch(/source_traceback: Object created at \(most recent call last\):\n(?: {4}at .*\n)* {4}at async connect \(examples\/traps\/unclosed\.ts:\d+:\d+\)/);

    const fixed = await trap('unclosed', 'fixed', true);
    expect(fixed.code).toBe(0);
    expect(reports(fixed.stderr)).toEqual([]);
  });

  it('wrong-thread: a worker gets MainThreadOnlyError at once, the bridge works', async () => {
    const bug = await trap('wrong-thread', 'bug', false);
    expect(bug.code).toBe(1);
    expect(bug.stderr).toContain('the worker failed: MainThreadOnlyError [ERR_PROTOLOOP_MAIN_THREAD_ONLY]: createSubprocessExec() may only be used on the main thread');
    expect(bug.stderr).toContain('runCoroutineThreadsafe()');

    const fixed = await trap('wrong-thread', 'fixed', false);
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toBe(`child says ${process.version}\n`);
  });
});
