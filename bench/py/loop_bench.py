"""asyncio baselines for bench/loop.bench.ts: call_soon chain and gathered trivial tasks
(asyncio: also in debug mode).
Prints one JSON line. Usage: python3 loop_bench.py [uvloop] N_CALLBACKS N_TASKS"""
import asyncio, json, sys, time

use_uvloop = len(sys.argv) > 1 and sys.argv[1] == 'uvloop'
n_cb = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
n_tasks = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000

async def call_soon_chain(n):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = n
    def step():
        nonlocal left
        left -= 1
        if left == 0:
            done.set_result(None)
        else:
            loop.call_soon(step)
    t0 = time.perf_counter()
    loop.call_soon(step)
    await done
    return n / (time.perf_counter() - t0)

async def trivial():
    return 1

async def tasks(n, batch=1000):
    t0 = time.perf_counter()
    for _ in range(n // batch):
        await asyncio.gather(*[asyncio.ensure_future(trivial()) for _ in range(batch)])
    return n / (time.perf_counter() - t0)

async def main():
    loop = asyncio.get_running_loop()
    await call_soon_chain(n_cb // 10)
    cb = await call_soon_chain(n_cb)
    await tasks(n_tasks // 10)
    tk = await tasks(n_tasks)
    out = {'callSoon': cb, 'tasks': tk}
    if not use_uvloop:
        # Debug mode (a quarter of the work, as on the protoloop side); slow-callback
        # reports out of the way, as there.
        loop.set_debug(True)
        loop.slow_callback_duration = 1e9
        out['callSoonDebug'] = await call_soon_chain(n_cb // 4)
        out['tasksDebug'] = await tasks(n_tasks // 4)
        loop.set_debug(False)
    print(json.dumps(out))

if use_uvloop:
    import uvloop
    uvloop.install()  # uvloop.run() is only in uvloop >= 0.18; Debian ships 0.17
    asyncio.run(main())
else:
    asyncio.run(main())
