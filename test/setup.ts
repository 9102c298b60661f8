// Runs around every test file (vitest.config.ts setupFiles). A test that timed out
// leaves its run() pending and its loop running on this thread: the next test would
// then fail with LoopRunningError. After each test, a loop still running is torn
// down: its tasks are cancelled (run() then shuts down as usual), and if it is still
// running after that, it is stopped.
import { afterEach } from 'vitest';
import { allTasks } from '../src/loop/loop.ts';
import { activeLoop } from '../src/loop/running.ts';

const CANCEL_MS = 5_000;
const STOP_MS = 5_000;

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

afterEach(async (context) => {
  const loop = activeLoop();
  if (loop === null) return;
  process.emitWarning(`test "${context.task.name}" left its loop running: tearing it down`);
  for (const task of allTasks(loop)) task.cancel('the test ended with its loop still running');
  let deadline = Date.now() + CANCEL_MS;
  while (activeLoop() === loop && Date.now() < deadline) await nextTurn();
  // Something awaits a foreign promise that never settles (cancel cannot reach it):
  // stop the loop, and again each time run()'s shutdown starts it to wait for the
  // tasks still pending.
  deadline = Date.now() + STOP_MS;
  while (activeLoop() !== null && Date.now() < deadline) {
    activeLoop()!.stop();
    await nextTurn();
  }
});
