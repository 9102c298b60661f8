/**
 * The WebSocket methods of {@link Loop}: `createWebSocketServer()` and
 * `createWebSocketConnection()`. Imported for its side effect by the transports barrel.
 * @module
 * @internal
 */
import { Loop } from '../../loop/loop.ts';
import type { MessageProtocol } from '../../protocols/protocols.ts';
import { createWebSocketConnection } from './client.ts';
import type { WebSocketConnectOptions, WebSocketServerOptions } from './options.ts';
import { createWebSocketServer, type WebSocketServer } from './server.ts';
import type { WebSocketTransport } from './transport.ts';

declare module '../../loop/loop.ts' {
  interface Loop {
    /**
     * Creates a WebSocket server: each accepted connection gets a
     * {@link WebSocketTransport} and the {@link MessageProtocol} `protocolFactory()`
     * returns. Listens on `host`/`port` (or shares `server`), serves at once unless
     * `startServing: false`. Safe defaults: maxPayload 1 MiB (larger messages close
     * the connection with 1009), heartbeat on (ping every 30 s, pong due in 10 s),
     * permessage-deflate off. Rejects with a `ConnectionError` when the port cannot be
     * bound; throws `InvalidArgumentError` for bad options.
     */
    createWebSocketServer(protocolFactory: () => MessageProtocol, options?: WebSocketServerOptions): Promise<WebSocketServer>;
    /**
     * Connects to a WebSocket server (`ws:` or `wss:` URL) and resolves with
     * `[transport, protocol]` once `protocol.connectionMade()` ran. Rejects with
     * `WebSocketHandshakeError` (`status` set when the server answered with an HTTP
     * error), `ConnectionRefusedError`, `DnsError`, `TlsError`, `TimeoutError` (after
     * `handshakeTimeout`, default 10 s) or `CancelledError` (signal, or the awaiting task
     * was cancelled).
     */
    createWebSocketConnection<P extends MessageProtocol>(protocolFactory: () => P, url: string | URL, options?: WebSocketConnectOptions): Promise<[WebSocketTransport, P]>;
  }
}

Loop.prototype.createWebSocketServer = function (this: Loop, protocolFactory: () => MessageProtocol, options?: WebSocketServerOptions): Promise<WebSocketServer> {
  return createWebSocketServer(this, protocolFactory, options);
};

Loop.prototype.createWebSocketConnection = function <P extends MessageProtocol>(this: Loop, protocolFactory: () => P, url: string | URL, options?: WebSocketConnectOptions): Promise<[WebSocketTransport, P]> {
  return createWebSocketConnection(this, protocolFactory, url, options);
};
