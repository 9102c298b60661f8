// Trap 1: a coroutine called and never awaited.
//
// A function wrapped with coroutine() is lazy, like a Python coroutine function:
// calling it only builds a Coroutine. Forget the `await` and the work never happens;
// protoloop reports the coroutine when it is collected, or at the latest when the
// loop closes.
//
//   node examples/traps/never-awaited.ts bug
//   node examples/traps/never-awaited.ts fixed
//   PROTOLOOP_DEBUG=1 node examples/traps/never-awaited.ts bug   (adds where it was created)
import { coroutine, run } from '../../src/index.ts';

const saveReport = coroutine(async function saveReport(text: string) {
  console.log(`saved: ${text}`);
});

async function bug(): Promise<void> {
  saveReport('quarterly figures'); // BUG: missing await — nothing is saved
}

async function fixed(): Promise<void> {
  await saveReport('quarterly figures');
}

await run(process.argv[2] === 'fixed' ? fixed : bug);
