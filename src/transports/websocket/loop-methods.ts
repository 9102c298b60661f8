/**
 * What the Loop's WebSocket methods run (`createWebSocketServer`,
 * `createWebSocketConnection`). The methods and their docs are in
 * src/loop/contract.ts and src/loop/loop.ts, which loads this module on first use
 * (src/loop/lazy.ts); ws itself is loaded by the first server or connection.
 * @module
 */
export { createWebSocketConnection } from './client.ts';
export { createWebSocketServer } from './server.ts';
