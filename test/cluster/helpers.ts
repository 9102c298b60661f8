// Shared pieces of the cluster suites: a child process whose output is collected line
// by line, waiting for a line, and a one-line TCP request.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export const PRIMARY = fileURLToPath(new URL('./fixtures/primary.ts', import.meta.url));

export interface Child {
  child: ChildProcessWithoutNullStreams;
  out: string[];
  err: string[];
  exited: Promise<{ code: number | null; signal: string | null }>;
  /** Resolves with the first line of stdout (or stderr) matching `re`, or rejects after `ms`. */
  line(re: RegExp, ms?: number, stream?: 'out' | 'err'): Promise<RegExpExecArray>;
}

const children: ChildProcessWithoutNullStreams[] = [];

/** Kills what a test left running (its `afterEach`). */
export function killChildren(): void {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** Runs a Node script (with this Node). */
export function start(file: string, args: string[], env: Record<string, string> = {}): Child {
  return startCommand(process.execPath, [file, ...args], env);
}

/** Runs any command. */
export function startCommand(command: string, args: string[], env: Record<string, string> = {}): Child {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.push(child);
  const out: string[] = [];
  const err: string[] = [];
  const waiters: Array<() => void> = [];
  const collect = (into: string[]) => {
    let rest = '';
    return (chunk: Buffer): void => {
      const parts = (rest + chunk.toString()).split('\n');
      rest = parts.pop()!;
      into.push(...parts);
      for (const w of waiters.splice(0)) w();
    };
  };
  child.stdout.on('data', collect(out));
  child.stderr.on('data', collect(err));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      for (const w of waiters.splice(0)) w();
    }),
  );
  const line = (re: RegExp, ms = 20_000, stream: 'out' | 'err' = 'out'): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; stdout: ${out.join(' | ')}; stderr: ${err.join(' | ')}`)), ms);
      const check = (): void => {
        for (const l of stream === 'out' ? out : err) {
          const m = re.exec(l);
          if (m !== null) {
            clearTimeout(timer);
            resolve(m);
            return;
          }
        }
        if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer);
          reject(new Error(`exited without a line matching ${re}; stdout: ${out.join(' | ')}; stderr: ${err.join(' | ')}`));
          return;
        }
        waiters.push(check);
      };
      check();
    });
  return { child, out, err, exited, line };
}

/** Sends one line, resolves with the answer line (or rejects on a connection error). */
export function ask(port: number, text: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, host);
    let buf = '';
    sock.setTimeout(10_000, () => sock.destroy(new Error('no answer within 10 s')));
    sock.on('connect', () => sock.write(`${text}\n`));
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) sock.end();
    });
    sock.on('error', reject);
    sock.on('close', () => resolve(buf.trim()));
  });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
