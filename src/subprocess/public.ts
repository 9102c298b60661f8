// The public names of src/subprocess; src/index.ts re-exports this list.
export {};
