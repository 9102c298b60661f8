/**
 * `protoloop/testing`: deterministic tests for protocol code — virtual time
 * ({@link VirtualClock}), an in-memory network with faults ({@link MemoryNetwork}),
 * connected pairs for unit tests, and leak checks (`run(main, { strict: true })`).
 * See docs/testing.md.
 * @module protoloop/testing
 */
export { VirtualClock, type VirtualClockOptions } from './clock.ts';
export { MemoryNetwork, MemoryLink, MemoryServer } from './network.ts';
export { MemoryTransport, type MemoryAddress } from './memory-transport.ts';
export { createMemoryConnection, memoryStreamPair, type MemoryConnection, type MemoryEnd, type MemoryPairOptions } from './pairs.ts';
export { LeakError } from '../errors.ts';
export type { Network } from '../transports/network.ts';
