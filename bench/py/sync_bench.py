"""asyncio baselines for bench/sync.bench.ts: Lock and Queue throughput.
Prints one JSON line of rates (operations per second).
Usage: python3 sync_bench.py [asyncio|uvloop] N_LOCK N_QUEUE"""
import asyncio, json, sys, time

use_uvloop = len(sys.argv) > 1 and sys.argv[1] == 'uvloop'
n_lock = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
n_queue = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000


async def lock_uncontended(n):
    lock = asyncio.Lock()
    t0 = time.perf_counter()
    for _ in range(n):
        await lock.acquire()
        lock.release()
    return n / (time.perf_counter() - t0)


async def lock_contended(n):
    # Two tasks take turns: each holds the lock across a yield, so the other waits.
    lock = asyncio.Lock()

    async def worker(k):
        for _ in range(k):
            await lock.acquire()
            await asyncio.sleep(0)
            lock.release()

    t0 = time.perf_counter()
    await asyncio.gather(worker(n // 2), worker(n // 2))
    return n / (time.perf_counter() - t0)


async def queue_pipe(n, maxsize=64):
    q = asyncio.Queue(maxsize)

    async def producer():
        for i in range(n):
            await q.put(i)

    async def consumer():
        for _ in range(n):
            await q.get()

    t0 = time.perf_counter()
    await asyncio.gather(producer(), consumer())
    return n / (time.perf_counter() - t0)


async def queue_nowait(n):
    q = asyncio.Queue()
    t0 = time.perf_counter()
    for i in range(n):
        q.put_nowait(i)
        q.get_nowait()
    return n / (time.perf_counter() - t0)


async def main():
    await lock_uncontended(n_lock // 10)
    await lock_contended(n_queue // 10)
    await queue_pipe(n_queue // 10)
    out = {
        'lockUncontended': await lock_uncontended(n_lock),
        'lockContended': await lock_contended(n_queue),
        'queuePipe': await queue_pipe(n_queue),
        'queueNowait': await queue_nowait(n_lock),
    }
    print(json.dumps(out))

if use_uvloop:
    import uvloop
    uvloop.install()  # uvloop.run() is only in uvloop >= 0.18; Debian ships 0.17
    asyncio.run(main())
else:
    asyncio.run(main())
