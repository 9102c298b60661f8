/**
 * Entry point of the ThreadPoolExecutor's piscina workers: `[url, name, args]` in,
 * the task's result out; a result wrapped in `transfer()` moves its buffers back.
 * @module
 * @internal
 */
import { move } from 'piscina';
import { runJob } from './executor-worker.ts';
import type { TransferItem } from './transfer.ts';

/** Piscina's registered symbols for "a value and what to move with it". */
const kTransferable = Symbol.for('Piscina.transferable');
const kValue = Symbol.for('Piscina.valueOf');

export default async function threadWorkerEntry(msg: [string, string, unknown[]]): Promise<unknown> {
  const transferList: TransferItem[] = [];
  const result = await runJob(msg[0], msg[1], msg[2], true, transferList);
  if (transferList.length === 0) return result;
  return move({ [kTransferable]: transferList, [kValue]: result } as never);
}
