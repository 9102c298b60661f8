// The public names of executors, the thread bridge and signals; src/index.ts re-exports this list.
export {};
