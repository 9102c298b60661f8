/**
 * Moving instead of copying: {@link transfer} marks an argument (or a task's result)
 * whose ArrayBuffers or MessagePorts go to the other thread instead of being copied.
 * Shared by the caller and the worker side, so it imports nothing heavy.
 * @module
 */
import { MessagePort } from 'node:worker_threads';

/** The brand is a registered symbol so that a worker's copy of this module recognises a marker from another copy. */
const kTransfer = Symbol.for('protoloop.transfer');

/** What can be moved to a worker thread: an ArrayBuffer or a MessagePort. */
export type TransferItem = ArrayBuffer | MessagePort;

/** @internal A marked value and what to move with it. */
export interface TransferMarker {
  readonly [kTransfer]: true;
  readonly value: unknown;
  readonly list: readonly TransferItem[];
}

/**
 * Marks `value` (one whole argument of a job, or the result a task returns) so that
 * `list` is moved to the other thread rather than copied: after the call the sender's
 * buffers are detached (length 0). Without `list`, `value` itself is moved: an
 * ArrayBuffer, a MessagePort, or a typed array / Buffer whose whole buffer goes.
 * Returns `value` typed as itself, so it can stand where `value` is expected.
 *
 * A {@link ProcessPoolExecutor} copies instead (processes share no memory), and refuses
 * MessagePorts with `NotCloneableError`. Throws `TypeError` when nothing can be moved.
 *
 * ```ts
 * await toThread(checksum, transfer(bytes)); // bytes.buffer now belongs to the worker
 * ```
 */
export function transfer<T>(value: T, list?: readonly TransferItem[]): T {
  let items: readonly TransferItem[];
  if (list !== undefined) {
    if (!Array.isArray(list)) throw new TypeError('transfer(): list must be an array of ArrayBuffers and MessagePorts');
    items = list;
  } else if (value instanceof ArrayBuffer || value instanceof MessagePort) {
    items = [value];
  } else if (ArrayBuffer.isView(value) && value.buffer instanceof ArrayBuffer) {
    items = [value.buffer];
  } else {
    throw new TypeError('transfer(value) needs an ArrayBuffer, a MessagePort or a typed array, or an explicit list');
  }
  const marker: TransferMarker = { [kTransfer]: true, value, list: items };
  return marker as unknown as T;
}

/** @internal Whether `x` is a {@link transfer} marker. */
export function isTransferMarker(x: unknown): x is TransferMarker {
  return x !== null && typeof x === 'object' && (x as Partial<TransferMarker>)[kTransfer] === true;
}

/**
 * @internal Replaces top-level markers of `args` by their values and collects what
 * they move into `into`. Returns `args` itself when there is no marker (the common case).
 */
export function unwrapTransfers(args: readonly unknown[], into: TransferItem[]): unknown[] {
  let out: unknown[] | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!isTransferMarker(a)) continue;
    out ??= args.slice();
    out[i] = a.value;
    for (const item of a.list) into.push(item);
  }
  return out ?? (args as unknown[]);
}
