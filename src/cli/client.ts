/**
 * The client side of the inspection endpoint.
 * @module
 */
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { inspectionPath } from '../loop/inspector.ts';
import { InvalidArgumentError } from '../errors.ts';

/** Whether a process with this id exists (EPERM: it does, and belongs to another user). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Asks process `pid` for `cmd` and returns the parsed answer. Errors say what to do. */
export function query(pid: number, cmd: 'ps' | 'pstree' | 'stats', timeoutMs = 5000): Promise<any> {
  if (!Number.isInteger(pid) || pid <= 0) return Promise.reject(new InvalidArgumentError(`not a process id: ${pid}`));
  if (!processExists(pid)) return Promise.reject(new Error(`no such process: ${pid}`));
  const path = inspectionPath(pid);
  if (!existsSync(path)) {
    return Promise.reject(
      new Error(
        `process ${pid} has no protoloop inspection endpoint (${path}): start it with PROTOLOOP_INSPECT=1 or run(main, { inspect: true }), as the same user`,
      ),
    );
  }
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`process ${pid} did not answer within ${timeoutMs} ms (is its loop blocked?)`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(JSON.stringify({ cmd }) + '\n'));
    sock.on('data', (d: Buffer) => (buf += d.toString('utf8')));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'EACCES') reject(new Error(`permission denied: process ${pid}'s endpoint belongs to another user`));
      else if (e.code === 'ECONNREFUSED') reject(new Error(`process ${pid} is gone (stale endpoint ${path})`));
      else reject(e);
    });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        const answer = JSON.parse(buf) as { error?: string };
        if (answer.error) reject(new Error(answer.error));
        else resolve(answer);
      } catch {
        reject(new Error(`process ${pid} sent an unreadable answer`));
      }
    });
  });
}
