/**
 * The inspection endpoint: a Unix socket, readable only by the same user, through
 * which `protoloop ps|pstree|stats <pid>` reads a running loop's state.
 *
 * Off by default; on with `PROTOLOOP_INSPECT=1` or `run(main, { inspect: true })`.
 * The socket lives at `<tmpdir>/protoloop-<uid>/<pid>.sock`; the directory is created
 * with mode 0700 and refused if another user owns it, the socket gets mode 0600.
 *
 * Wire format: the client sends one JSON line `{"cmd":"ps"|"stats"}`, the server
 * answers one JSON line and closes.
 * @module
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidStateError } from '../errors.ts';
import { outsideTask } from './internal.ts';
import { LoopMonitor, taskInfos } from './introspect.ts';
import type { Loop } from './loop.ts';

/** The directory holding this user's inspection sockets. */
export function inspectionDir(uid: number = process.getuid?.() ?? 0): string {
  return join(tmpdir(), `protoloop-${uid}`);
}

/** The socket path of process `pid` (for the same user). */
export function inspectionPath(pid: number, uid?: number): string {
  return join(inspectionDir(uid), `${pid}.sock`);
}

/** Whether `PROTOLOOP_INSPECT` asks for inspection. @internal */
export function envInspect(): boolean {
  const v = process.env.PROTOLOOP_INSPECT;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) {
    throw new InvalidStateError(`refusing the inspection directory ${dir}: it is not a directory owned by this user (remove it, or set TMPDIR to a private directory)`);
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/** An open inspection endpoint. */
export interface Inspector {
  readonly path: string;
  close(): void;
}

interface Conn {
  loop: Loop;
  monitor: LoopMonitor;
  buf: string;
}

const conns = new WeakMap<Socket, Conn>();

function answer(conn: Conn, line: string): string {
  let cmd: unknown;
  try {
    cmd = (JSON.parse(line) as { cmd?: unknown }).cmd;
  } catch {
    return JSON.stringify({ error: 'bad request: send one JSON line like {"cmd":"ps"}' });
  }
  if (cmd === 'ps' || cmd === 'pstree') return JSON.stringify({ pid: process.pid, tasks: taskInfos(conn.loop) });
  if (cmd === 'stats') return JSON.stringify(conn.monitor.snapshot());
  return JSON.stringify({ error: `unknown command ${JSON.stringify(cmd)}: ps, pstree or stats` });
}

function socketOnData(this: Socket, chunk: Buffer): void {
  const conn = conns.get(this);
  if (conn === undefined) return;
  conn.buf += chunk.toString('utf8');
  const nl = conn.buf.indexOf('\n');
  if (nl >= 0) {
    this.end(answer(conn, conn.buf.slice(0, nl)) + '\n');
    conns.delete(this);
  } else if (conn.buf.length > 4096) {
    this.destroy();
  }
}

function socketOnError(this: Socket): void {
  this.destroy();
}

/**
 * Opens the inspection endpoint for `loop`. Closed by the returned object's `close()`,
 * and by `loop.close()`.
 */
export function startInspector(loop: Loop): Inspector {
  const path = inspectionPath(process.pid);
  ensurePrivateDir(inspectionDir());
  try {
    unlinkSync(path); // a stale socket of a dead process with our pid
  } catch {}
  const monitor = new LoopMonitor(loop);
  const server: Server = outsideTask(() =>
    createServer((sock) => {
      conns.set(sock, { loop, monitor, buf: '' });
      sock.setTimeout(5000, () => sock.destroy());
      sock.on('data', socketOnData);
      sock.on('error', socketOnError);
    }),
  );
  server.on('error', (exception) => loop.callExceptionHandler({ message: 'inspection endpoint failed', exception }));
  const oldMask = process.umask(0o177);
  try {
    server.listen(path);
  } finally {
    process.umask(oldMask);
  }
  server.unref();
  monitor.start();
  let closed = false;
  const inspector: Inspector = {
    path,
    close() {
      if (closed) return;
      closed = true;
      monitor.stop();
      server.close();
      try {
        unlinkSync(path);
      } catch {}
    },
  };
  return inspector;
}
