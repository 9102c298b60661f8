/**
 * What the Loop's socket methods run (`createConnection`, `createServer`, their Unix
 * twins, `connectAcceptedSocket`, `createDatagramEndpoint`, `startTls`, `sendfile`).
 * The methods and their docs are in src/loop/contract.ts and src/loop/loop.ts, which
 * loads this module on first use (src/loop/lazy.ts); each function takes the loop
 * first.
 * @module
 */
export { connectAcceptedSocket, createConnection, createUnixConnection } from './connect.ts';
export { createDatagramEndpoint } from './datagram.ts';
export { createServer, createUnixServer } from './listen.ts';
export { sendfile } from './sendfile.ts';
export { startTls } from './tls.ts';
