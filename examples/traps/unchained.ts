// Trap 3: work started without chaining.
//
// Each step of "create, write, close" is started as its own task and none is awaited:
// they run concurrently, so they finish in whatever order their waits end (the file
// is "closed" before it is "created"), and main returns while one is still pending.
// run() cancels and awaits the leftovers before it closes the loop; in debug mode it
// says which tasks it had to cancel. allTasks() shows them too.
//
//   node examples/traps/unchained.ts bug
//   node examples/traps/unchained.ts fixed
//   PROTOLOOP_DEBUG=1 node examples/traps/unchained.ts bug   (lists the leftover task)
import { allTasks, coroutine, getRunningLoop, run, sleep } from '../../src/index.ts';

const create = coroutine(async function create() {
  await sleep(1000); // opening a slow disk
  console.log('created file');
});
const write = coroutine(async function write() {
  await sleep(5);
  console.log('wrote data');
});
const close = coroutine(async function close() {
  console.log('closed file');
});

async function bug(): Promise<void> {
  const loop = getRunningLoop();
  loop.createTask(create(), { name: 'create' }); // BUG: three independent tasks, nothing awaited
  loop.createTask(write(), { name: 'write' });
  loop.createTask(close(), { name: 'close' });
  await sleep(50);
  const left = [...allTasks()].filter((t) => t.getName() !== 'main');
  console.log(`main returns with ${left.length} task(s) still pending: ${left.map((t) => t.getName()).join(', ')}`);
}

async function fixed(): Promise<void> {
  await create(); // each step starts when the previous one is done
  await write();
  await close();
  console.log(`main returns with ${allTasks().size - 1} task(s) still pending`);
}

await run(process.argv[2] === 'fixed' ? fixed : bug);
