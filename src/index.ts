/**
 * protoloop: Python asyncio's model for Node.js.
 *
 * This file is the whole public surface; `test/exports.test.ts` snapshots it.
 * Each area keeps its exported names in its own `public.ts`.
 * @module protoloop
 */
export * from './errors.ts';
export * from './loop/public.ts';
export * from './concurrency/public.ts';
export * from './protocols/public.ts';
export * from './streams/public.ts';
export * from './transports/public.ts';
export * from './subprocess/public.ts';
export * from './executors/public.ts';
