// Trap 5: blocking the loop.
//
// A callback, or the synchronous stretch of a task between two awaits, that computes
// for a second stops the whole loop for that second: timers fire late, sockets are not
// read. In debug mode protoloop times every callback and task step and logs those that
// take longer than loop.slowCallbackDuration (100 ms). The fix is to run the work on a
// worker thread with toThread() (or loop.runInExecutor()) and await its result.
//
//   node examples/traps/blocking.ts bug
//   node examples/traps/blocking.ts fixed
//   PROTOLOOP_DEBUG=1 node examples/traps/blocking.ts bug   (names the slow callback and task)
import { getRunningLoop, run, sleep, toThread, workerTask } from '../../src/index.ts';
import { crunch } from './blocking-work.ts';

const crunchInThread = workerTask<typeof crunch>(new URL('./blocking-work.ts', import.meta.url), 'crunch');

/** Ticks every 50 ms, counts its ticks and records how late the latest tick was. */
function startTicker(): { ticks: number; stop(): number } {
  const loop = getRunningLoop();
  let worst = 0;
  let due = loop.time() + 50;
  const tick = (): void => {
    ticker.ticks++;
    worst = Math.max(worst, loop.time() - due);
    due = loop.time() + 50;
    handle = loop.callLater(50, tick);
  };
  let handle = loop.callLater(50, tick);
  const ticker = {
    ticks: 0,
    stop() {
      handle.cancel();
      return worst;
    },
  };
  return ticker;
}

async function bug(): Promise<void> {
  const ticker = startTicker();
  await sleep(60);
  getRunningLoop().callSoon(function resizeImages() {
    crunch(1000); // BUG: a second of CPU work inside a loop callback
  });
  await sleep(60);
  crunch(300); // BUG: and 300 ms inside the task itself, between two awaits
  await sleep(60);
  console.log(`the loop was stuck for up to ${Math.round(ticker.stop())} ms`);
}

async function fixed(): Promise<void> {
  const ticker = startTicker();
  await sleep(60);
  const before = ticker.ticks;
  await toThread(crunchInThread, 1000); // the loop keeps running meanwhile
  await toThread(crunchInThread, 300);
  const during = ticker.ticks - before;
  await sleep(60);
  console.log(`the loop was stuck for up to ${Math.round(ticker.stop())} ms`);
  console.log(`the loop ticked ${during} times while the work ran`);
}

await run(process.argv[2] === 'fixed' ? fixed : bug);
