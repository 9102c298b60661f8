/**
 * Entry point of the ThreadPoolExecutor's worker threads. Protocol, one job at a time
 * per thread (see thread-pool.ts):
 *
 * ```
 * main -> worker   [...args, name, url, seq]  on the job port (workerData.jobs)
 * worker -> main   result                     moving what transfer() marked
 *                  SerializedError            the job failed: its claim slot says so
 * ```
 *
 * `workerData.shared` is an Int32Array on a SharedArrayBuffer: slot 0 counts the jobs
 * the pool has posted (bumped and notified with each, see {@link waitForJobs}); slots
 * 1-8 are claim slots. A job is posted with its slot (`1 + (seq & 7)`) holding `seq`,
 * and runs only if this thread claims it first (compare-exchange `seq` -> 0): the pool
 * may take back a job staged behind a running one (cancelled, or moved to a free
 * thread) with the same compare-exchange, and then this thread skips it.
 *
 * A result goes back bare, whatever it is. A failure goes back on the same port (so
 * that the answers of a thread keep their order), after the job's claim slot is set to
 * -1: the pool reads the slot of the job an answer is for, so no result can be mistaken
 * for a failure. A synchronous task answers without a promise.
 * @module
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { runJob } from './executor-worker.ts';
import { isSerializedError, serializeError } from './remote-error.ts';
import type { TransferItem } from './transfer.ts';

const { jobs, shared } = workerData as { jobs: MessagePort; shared: Int32Array };

/**
 * Between jobs a thread waits for the next one in `Atomics.wait` on `shared[0]` (the
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
/** Jobs taken from the port so far (`shared[0]` is the count sent). */
let taken = 0;
let lastJobAt = 0;
let waitQueued = false;
/**
 * An asynchronous job is running. A thread runs one job at a time: a job that arrives
 * meanwhile (one the pool staged behind it) waits here, unclaimed, so that the pool can
 * still take it back.
 */
let running = false;
const arrived: unknown[][] = [];
/** The sequence number of the job this thread runs (one at a time). */
let currentSeq = 0;

function onJobEvent(msg: unknown[]): void {
  taken++;
  lastJobAt = performance.now();
  if (running) arrived.push(msg);
  else if (onJob(msg)) waitForJobs();
}

function waitForJobs(): void {
  waitQueued = false;
  if (running) return;
  // Output still buffered in the worker's stdio needs the event loop to flow: no wait.
  if (outputPending()) return;
  const sliceStart = performance.now();
  for (;;) {
    const woke = Atomics.wait(shared, 0, taken, SLICE_MS);
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
  running = false;
  lastJobAt = performance.now();
  // What arrived meanwhile, in order, until one is asynchronous in its turn.
  while (arrived.length > 0) if (!onJob(arrived.shift()!)) return;
  queueWait();
}

/** Waits again after one turn of the event loop. */
function queueWait(): void {
  if (waitQueued) return;
  waitQueued = true;
  setImmediate(waitForJobs);
}

/** Runs a job; true when it answered synchronously (or was not ours to run). */
function onJob(msg: unknown[]): boolean {
  // [...args, name, url, seq]: the arguments are all but the last three.
  const n = msg.length;
  const seq = msg[n - 1] as number;
  // Taken back by the pool (cancelled, or moved to another thread): not ours to run.
  if (Atomics.compareExchange(shared, 1 + (seq & 7), seq, 0) !== seq) return true;
  currentSeq = seq;
  const transferList: TransferItem[] = [];
  let result: unknown;
  try {
    result = runJob(msg[n - 2] as string, msg[n - 3] as string, msg, n - 3, true, transferList);
  } catch (e) {
    return finish(false, e, transferList);
  }
  if (result instanceof Promise) {
    running = true;
    result
      .then(
        (value: unknown) => finishLater(true, value, transferList),
        (e: unknown) => finishLater(false, e, transferList),
      )
      .then(asyncJobDone, asyncJobDone);
    return false;
  }
  return finish(true, result, transferList);
}

/**
 * Answers a job that ended synchronously; true when it could at once. What the job
 * printed goes first: output still buffered in the worker's stdio is flushed to the
 * parent before the answer, so no line is lost when the pool ends the thread after it.
 */
function finish(ok: boolean, value: unknown, transferList: TransferItem[]): boolean {
  if (!outputPending()) {
    send(ok, value, transferList);
    return true;
  }
  running = true;
  outputFlushed()
    .then(() => send(ok, value, transferList))
    .then(asyncJobDone, asyncJobDone);
  return false;
}

/** {@link finish} for a job that ended asynchronously. */
function finishLater(ok: boolean, value: unknown, transferList: TransferItem[]): Promise<void> | void {
  if (!outputPending()) {
    send(ok, value, transferList);
    return;
  }
  return outputFlushed().then(() => send(ok, value, transferList));
}

function send(ok: boolean, value: unknown, transferList: TransferItem[]): void {
  if (ok) answer(value, transferList);
  else fail(value);
}

function outputPending(): boolean {
  return process.stdout.writableLength > 0 || process.stderr.writableLength > 0;
}

/** Resolves once what the worker's stdout and stderr hold has gone to the parent. */
function outputFlushed(): Promise<unknown> {
  const waits: Promise<void>[] = [];
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.writableLength > 0) waits.push(new Promise<void>((resolve) => stream.write('', () => resolve())));
  }
  return Promise.all(waits);
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
  const err = isSerializedError(e) ? e : serializeError(e);
  Atomics.store(shared, 1 + (currentSeq & 7), -1);
  jobs.postMessage(err);
}

jobs.on('message', onJobEvent);
