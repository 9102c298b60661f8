/**
 * The primary's inspection endpoint: `protoloop ps <primary pid>` (and `pstree`)
 * lists every worker, with the tasks it reports through its own endpoint. It speaks
 * the same one-line JSON as a loop's endpoint (src/loop/inspector.ts), so the CLI
 * needs nothing new: each worker is shown as a row of its own (`worker 2 (pid 1234)`)
 * whose tasks follow, with ids made unique (`row * 1_000_000 + id`).
 * @module
 */
import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { inspectionDir, inspectionPath } from '../loop/inspector.ts';
import type { TaskInfo } from '../loop/introspect.ts';
import type { WorkerInfo } from './serve-workers.ts';

/** An open endpoint. */
export interface PoolInspector {
  close(): void;
}

const ID_STRIDE = 1_000_000;

/** Asks one worker for its tasks; an empty list when it has no endpoint or does not answer in time. */
function workerTasks(pid: number, cmd: string): Promise<TaskInfo[] | null> {
  const path = inspectionPath(pid);
  if (!existsSync(path)) return Promise.resolve(null);
  return new Promise((resolve) => {
    const sock = connect(path);
    let buf = '';
    sock.setTimeout(2000, () => sock.destroy());
    sock.on('connect', () => sock.write(JSON.stringify({ cmd }) + '\n'));
    sock.on('data', (d: Buffer) => (buf += d.toString('utf8')));
    sock.on('error', () => resolve(null));
    sock.on('close', () => {
      try {
        resolve((JSON.parse(buf) as { tasks?: TaskInfo[] }).tasks ?? null);
      } catch {
        resolve(null);
      }
    });
  });
}

async function answer(line: string, workers: () => WorkerInfo[]): Promise<string> {
  let cmd: unknown;
  try {
    cmd = (JSON.parse(line) as { cmd?: unknown }).cmd;
  } catch {
    return JSON.stringify({ error: 'bad request: send one JSON line like {"cmd":"ps"}' });
  }
  const list = workers();
  if (cmd !== 'ps' && cmd !== 'pstree') {
    return JSON.stringify({ error: `process ${process.pid} is a serveWorkers() primary: it answers ps and pstree; for ${String(cmd)}, ask a worker: ${list.map((w) => w.pid).join(', ')}` });
  }
  const tasks: TaskInfo[] = [];
  const now = Date.now();
  for (const [i, w] of list.entries()) {
    const base = (i + 1) * ID_STRIDE;
    const own = await workerTasks(w.pid, cmd);
    tasks.push({
      id: base,
      name: `worker ${w.id} (pid ${w.pid})`,
      state: 'waiting',
      cancelling: 0,
      ageMs: now - w.startedAt,
      awaiting: own === null ? `${w.state}; no inspection endpoint (start with inspect: true)` : w.state,
      awaitingTask: null,
      parent: null,
      parentName: null,
      createdAt: null,
    });
    for (const t of own ?? []) {
      tasks.push({
        ...t,
        id: base + t.id,
        awaitingTask: t.awaitingTask === null ? null : base + t.awaitingTask,
        parent: t.parent === null ? base : base + t.parent,
        parentName: t.parent === null ? `worker ${w.id}` : t.parentName,
      });
    }
  }
  return JSON.stringify({ pid: process.pid, tasks });
}

/** Opens the endpoint at the primary's own inspection path. */
export function startPoolInspector(workers: () => WorkerInfo[]): PoolInspector {
  const path = inspectionPath(process.pid);
  mkdirSync(inspectionDir(), { recursive: true, mode: 0o700 });
  try {
    unlinkSync(path);
  } catch {}
  const server = createServer((sock: Socket) => {
    let buf = '';
    sock.setTimeout(5000, () => sock.destroy());
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl === -1) {
        if (buf.length > 4096) sock.destroy();
        return;
      }
      void answer(buf.slice(0, nl), workers).then((a) => sock.end(a + '\n'));
      buf = '';
    });
  });
  server.on('error', (err) => console.error(`protoloop: the pool's inspection endpoint failed: ${err.message}`));
  const oldMask = process.umask(0o177);
  try {
    server.listen(path);
  } finally {
    process.umask(oldMask);
  }
  server.unref();
  return {
    close() {
      server.close();
      try {
        unlinkSync(path);
      } catch {}
    },
  };
}
