/**
 * `protoloop top <pid>`: the inspection endpoint's stats and tasks, refreshed in place
 * every `--interval` ms (like top). `q` or Ctrl-C quits; `--count N` prints N frames
 * and exits; `--json` prints one JSON object per frame and line. A target that goes
 * away ends it with one line (exit code 1).
 * @module
 */
import { query } from './client.ts';
import { formatTop } from './format.ts';
import type { LoopSnapshot, TaskInfo } from '../loop/introspect.ts';

/** Where top writes, and whether it may redraw in place and read keys. */
export interface TopIO {
  out: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean };
  input: NodeJS.ReadStream | null;
}

const CLEAR = '\x1b[H\x1b[2J';

/** Runs top; resolves with the exit code. */
export async function top(pid: number, options: { intervalMs: number; count: number | undefined; json: boolean }, io: TopIO = { out: process.stdout, input: process.stdin }): Promise<number> {
  const tty = io.out.isTTY === true && !options.json;
  let quit: (() => void) | null = null;
  const quitted = new Promise<void>((resolve) => (quit = resolve));
  const input = io.input;
  const onKey = (d: Buffer): void => {
    const k = d.toString();
    if (k === 'q' || k === 'Q' || k === '\x03') quit!();
  };
  const onSigint = (): void => quit!();
  process.on('SIGINT', onSigint);
  const keys = tty && input !== null && input.isTTY === true;
  if (keys) {
    input.setRawMode(true);
    input.on('data', onKey);
    input.resume();
  }
  let frames = 0;
  let stopped = false;
  void quitted.then(() => (stopped = true));
  try {
    while (!stopped) {
      let stats: LoopSnapshot;
      let tasks: TaskInfo[];
      try {
        stats = (await query(pid, 'stats')) as LoopSnapshot;
        tasks = ((await query(pid, 'ps')) as { tasks: TaskInfo[] }).tasks;
      } catch (e) {
        const msg = (e as Error).message;
        io.out.write(`${tty ? '\n' : ''}protoloop top: ${frames > 0 && /no such process|is gone|no protoloop inspection endpoint/.test(msg) ? `process ${pid} went away (${msg})` : msg}\n`);
        return 1;
      }
      if (stopped) break;
      frames++;
      if (options.json) io.out.write(JSON.stringify({ time: new Date().toISOString(), stats, tasks }) + '\n');
      else io.out.write((tty ? CLEAR : frames > 1 ? '\n' : '') + formatTop(stats, tasks) + '\n' + (tty ? '\n(q quits)\n' : ''));
      if (options.count !== undefined && frames >= options.count) break;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([quitted, new Promise<void>((resolve) => (timer = setTimeout(resolve, options.intervalMs)))]);
      clearTimeout(timer);
    }
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
    if (keys) {
      input.off('data', onKey);
      input.setRawMode(false);
      input.pause();
    }
  }
}
