// Trap 4: a task left pending when the loop stops.
//
// With a loop driven by hand, runUntilComplete() returns as soon as main is done.
// A background task that main started is still pending; closing the loop then
// destroys it mid-flight and protoloop logs "Task was destroyed but it is pending!"
// (with where the task was created, in debug mode). The loop keeps pending tasks in
// a strong set, so a task can never vanish silently before that.
//
//   node examples/traps/pending-at-stop.ts bug
//   node examples/traps/pending-at-stop.ts fixed
//   PROTOLOOP_DEBUG=1 node examples/traps/pending-at-stop.ts bug
import { CancelledError, Loop, sleep, type Task } from '../../src/index.ts';

async function heartbeat(): Promise<void> {
  for (;;) {
    await sleep(10);
  }
}

const loop = new Loop();

if (process.argv[2] !== 'fixed') {
  await loop.runUntilComplete(async function main() {
    loop.createTask(heartbeat, { name: 'heartbeat' }); // BUG: left running when main returns
    await sleep(25);
  });
  loop.close();
} else {
  let beat: Task<void> | undefined;
  await loop.runUntilComplete(async function main() {
    beat = loop.createTask(heartbeat, { name: 'heartbeat' });
    await sleep(25);
  });
  // Stop the background work and let it finish before closing (run() does this for you).
  beat!.cancel();
  await loop.runUntilComplete(async function stopHeartbeat() {
    try {
      await beat;
    } catch (err) {
      if (!(err instanceof CancelledError)) throw err;
    }
  });
  loop.close();
  console.log('heartbeat stopped before the loop closed');
}
