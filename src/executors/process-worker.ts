/**
 * Entry point of the ProcessPoolExecutor's child processes. Protocol over the IPC
 * channel (advanced serialization, so values are structured-cloned):
 *
 * ```
 * child -> parent   ['ready']                          once, when listening
 * parent -> child   [id, url, name, args]              one job at a time
 * child -> parent   [id, true, result] | [id, false, SerializedError]
 * ```
 *
 * The child exits when the parent disconnects (shutdown, or the parent exited).
 * @module
 */
import { runJob } from './executor-worker.ts';
import { isSerializedError, serializeError, type SerializedError } from './remote-error.ts';

type JobMessage = [number, string, string, unknown[]];

function send(msg: unknown[]): void {
  process.send!(msg);
}

function reply(id: number, ok: boolean, value: unknown): void {
  try {
    send([id, ok, value]);
  } catch (e) {
    // The pre-send check missed something the real clone refused.
    const err = serializeError(new Error(`the result cannot be sent back: ${e instanceof Error ? e.message : String(e)}`), 'uncloneable');
    send([id, false, err]);
  }
}

async function childOnMessage(msg: JobMessage): Promise<void> {
  const [id, url, name, args] = msg;
  try {
    const value: unknown = await runJob(url, name, args, args.length, false, []);
    reply(id, true, value);
  } catch (e) {
    reply(id, false, isSerializedError(e) ? e : (serializeError(e) satisfies SerializedError));
  }
}

function childOnDisconnect(): void {
  process.exit(0);
}

process.on('message', (msg) => void childOnMessage(msg as JobMessage));
process.on('disconnect', childOnDisconnect);
send(['ready']);
