/**
 * Entry point of the ThreadPoolExecutor's worker threads. Protocol, one job at a time
 * per thread (see thread-pool.ts):
 *
 * ```
 * main -> worker   [...args, name, url]       on the job port (workerData.jobs)
 * worker -> main   result                     on the job port, moving what transfer() marked
 *                  SerializedError            on parentPort: the job failed
 * ```
 *
 * With each job the pool bumps `posted[0]` (a SharedArrayBuffer) and notifies it; see
 * {@link waitForJobs}.
 *
 * A result goes back bare, whatever it is; a failure takes the other port, so that no
 * result can be mistaken for one. A synchronous task answers without a promise.
 * @module
 */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { runJob } from './executor-worker.ts';
import { isSerializedError, serializeError } from './remote-error.ts';
import type { TransferItem } from './transfer.ts';

const { jobs, posted } = workerData as { jobs: MessagePort; posted: Int32Array };
const failures = parentPort!;

/**
 * Between jobs a thread waits for the next one in `Atomics.wait` on `posted[0]` (the
 * count of jobs the pool has sent, bumped and notified with each) and takes it with
 * `receiveMessageOnPort`: waking from a futex and reading the port synchronously costs
 * far less than a turn of the event loop per job. The event loop still runs: every
 * {@link SLICE_MS} of waiting or of back-to-back jobs the wait steps out for one turn
 * (`setImmediate`), so timers and I/O a task left behind are late by at most that
 * much; after {@link IDLE_MS} without a job, the thread stops waiting and sleeps in its
 * event loop, where the next job arrives as a 'message' event.
 */
const SLICE_MS = 5;
const IDLE_MS = 50;
/** Jobs taken from the port so far (`posted[0]` is the count sent). */
let taken = 0;
let lastJobAt = 0;
let waitQueued = false;

function onJobEvent(msg: unknown[]): void {
  taken++;
  lastJobAt = performance.now();
  if (onJob(msg)) waitForJobs();
}

function waitForJobs(): void {
  waitQueued = false;
  // Output still buffered in the worker's stdio needs the event loop to flow: no wait.
  if (process.stdout.writableLength > 0 || process.stderr.writableLength > 0) return;
  const sliceStart = performance.now();
  for (;;) {
    const woke = Atomics.wait(posted, 0, taken, SLICE_MS);
    const entry = receiveMessageOnPort(jobs);
    const now = performance.now();
    if (entry === undefined) {
      if (woke !== 'timed-out') continue;
      if (now - lastJobAt < IDLE_MS) queueWait();
      return;
    }
    taken++;
    lastJobAt = now;
    if (!onJob(entry.message as unknown[])) return;
    if (now - sliceStart >= SLICE_MS) {
      queueWait();
      return;
    }
  }
}

function asyncJobDone(): void {
  lastJobAt = performance.now();
  queueWait();
}

/** Waits again after one turn of the event loop. */
function queueWait(): void {
  if (waitQueued) return;
  waitQueued = true;
  setImmediate(waitForJobs);
}

/** Runs a job; true when it answered synchronously. */
function onJob(msg: unknown[]): boolean {
  // [...args, name, url]: the arguments are all but the last two.
  const n = msg.length;
  const transferList: TransferItem[] = [];
  let result: unknown;
  try {
    result = runJob(msg[n - 1] as string, msg[n - 2] as string, msg, n - 2, true, transferList);
  } catch (e) {
    fail(e);
    return true;
  }
  if (result instanceof Promise) {
    result.then((value: unknown) => answer(value, transferList), fail).then(asyncJobDone, asyncJobDone);
    return false;
  }
  answer(result, transferList);
  return true;
}

function answer(value: unknown, transferList: TransferItem[]): void {
  try {
    if (transferList.length === 0) jobs.postMessage(value);
    else jobs.postMessage(value, transferList);
  } catch (e) {
    // The pre-send check missed something the real clone refused.
    fail(serializeError(new Error(`the result cannot be sent back: ${e instanceof Error ? e.message : String(e)}`), 'uncloneable'));
  }
}

function fail(e: unknown): void {
  failures.postMessage(isSerializedError(e) ? e : serializeError(e));
}

jobs.on('message', onJobEvent);
