/**
 * The inspection endpoint: a Unix socket, readable only by the same user, through
 * which `protoloop ps|pstree|stats <pid>` reads a running loop's state.
 *
 * Off by default; on with `PROTOLOOP_INSPECT=1` or `run(main, { inspect: true })`.
 * The socket lives at `$XDG_RUNTIME_DIR/protoloop/<pid>.sock` when `XDG_RUNTIME_DIR` is
 * set (a per-user private directory on systemd machines), else at
 * `<tmpdir>/protoloop-<uid>/<pid>.sock`. The directory is created with mode 0700; one
 * that is a symlink, not a directory, owned by another user or open to others is
 * refused: inspection is then off, with one warning naming the path, and the app runs.
 * (Another local user can create `/tmp/protoloop-<uid>` first; that must not stop the
 * app, nor hand that user our socket.) The socket gets mode 0600.
 *
 * Wire format: the client sends one JSON line `{"cmd":"ps"|"stats"}`, the server
 * answers one JSON line and closes.
 * @module
 */
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { outsideTask } from './internal.ts';
import { LoopMonitor, taskInfos } from './introspect.ts';
import type { Loop } from './loop.ts';

/** The directory holding this user's inspection sockets (see the module notes). */
export function inspectionDir(uid: number = process.getuid?.() ?? 0): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  // Only an absolute path: a relative one would depend on the working directory.
  if (runtime !== undefined && runtime.startsWith('/')) return join(runtime, 'protoloop');
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

/** Why `dir` cannot hold our socket, or null when it is ours and private (made if missing). */
function refuseDir(dir: string): string | null {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    // EEXIST: a file or a dangling symlink is there; lstat below says which.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return `cannot create it (${(e as Error).message})`;
  }
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    return `cannot read it (${(e as Error).message})`;
  }
  if (st.isSymbolicLink()) return 'it is a symlink';
  if (!st.isDirectory()) return 'it is not a directory';
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) return `it belongs to user ${st.uid}, not to this user (${uid})`;
  // Open to others, someone else may have put things in it: do not fix it, refuse it.
  if ((st.mode & 0o077) !== 0) return `it is not private (mode ${(st.mode & 0o777).toString(8)}, needs 700)`;
  return null;
}

/** The directories already warned about: one warning per path and process. */
const warned = new Set<string>();

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
 * and by `loop.close()`. Returns null, after one warning on the loop's logger, when the
 * directory is refused (see the module notes): the app runs without inspection.
 */
export function startInspector(loop: Loop): Inspector | null {
  const dir = inspectionDir();
  const path = join(dir, `${process.pid}.sock`);
  const why = refuseDir(dir);
  if (why !== null) {
    if (!warned.has(dir)) {
      warned.add(dir);
      loop.logger.warn(`inspection is off: refusing the directory ${dir}: ${why} (remove it, or point XDG_RUNTIME_DIR or TMPDIR to a private directory)`);
    }
    return null;
  }
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
