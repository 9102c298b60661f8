// Trap 2: a task that throws and is never awaited.
//
// A task that fails keeps its error until someone asks for it (await, result(),
// exception()). If nobody ever does, the error would vanish: protoloop logs
// "Task exception was never retrieved" when the task is collected, or at the latest
// when the loop closes. It never becomes a process-killing unhandled rejection.
//
//   node examples/traps/never-retrieved.ts bug
//   node examples/traps/never-retrieved.ts fixed
//   PROTOLOOP_DEBUG=1 node examples/traps/never-retrieved.ts bug   (adds where the task was created)
import { getRunningLoop, run, sleep } from '../../src/index.ts';

async function fetchPrices(): Promise<number[]> {
  await sleep(0); // one loop iteration: it fails long before main wakes up
  throw new Error('price feed unreachable');
}

async function bug(): Promise<void> {
  getRunningLoop().createTask(fetchPrices, { name: 'prices' }); // BUG: started, never awaited
  await sleep(20);
  console.log('main done');
}

async function fixed(): Promise<void> {
  const prices = getRunningLoop().createTask(fetchPrices, { name: 'prices' });
  await sleep(20);
  try {
    await prices;
  } catch (err) {
    console.log(`could not fetch prices: ${(err as Error).message}`);
  }
  console.log('main done');
}

await run(process.argv[2] === 'fixed' ? fixed : bug);
