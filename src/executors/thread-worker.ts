/**
 * Entry point of the ThreadPoolExecutor's piscina workers: `[url, name, args]` in,
 * the task's result out; a result wrapped in `transfer()` moves its buffers back.
 * A synchronous task answers without a promise (piscina awaits whatever we return).
 * @module
 */
import { move } from 'piscina';
import { runJob } from './executor-worker.ts';
import type { TransferItem } from './transfer.ts';

/** Piscina's registered symbols for "a value and what to move with it". */
const kTransferable = Symbol.for('Piscina.transferable');
const kValue = Symbol.for('Piscina.valueOf');

export default function threadWorkerEntry(msg: unknown[]): unknown {
  // [...args, name, url] (see thread-pool.ts): the arguments are all but the last two.
  const n = msg.length;
  const transferList: TransferItem[] = [];
  const result = runJob(msg[n - 1] as string, msg[n - 2] as string, msg, n - 2, true, transferList);
  if (result instanceof Promise) return result.then((value: unknown) => withMoves(value, transferList));
  return withMoves(result, transferList);
}

function withMoves(result: unknown, transferList: TransferItem[]): unknown {
  if (transferList.length === 0) return result;
  return move({ [kTransferable]: transferList, [kValue]: result } as never);
}
