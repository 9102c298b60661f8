// The public names of structured concurrency, timeouts, sync primitives and queues; src/index.ts re-exports this list.
export {};
