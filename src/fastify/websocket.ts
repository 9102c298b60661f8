/**
 * WebSocket routes on the Fastify app's own server: `app.protoloop.websocket(path,
 * protocolFactory, options)`. The upgrades on `path` go to the WebSocket transport (a
 * {@link MessageProtocol} per connection) on the port Fastify listens on; the app's
 * close closes them with 1001.
 * @module
 */
import type { Server as HttpServer } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { InvalidArgumentError, InvalidStateError } from '../errors.ts';
import type { MessageProtocol } from '../protocols/protocols.ts';
import type { WebSocketServerOptions } from '../transports/websocket/options.ts';
import { createWebSocketServer, type WebSocketServer } from '../transports/websocket/server.ts';
import { FastifyAdapter } from './adapter.ts';

/**
 * Options of a WebSocket route: the WebSocket server's options, less those that
 * choose where it listens (it shares Fastify's server).
 */
export type WebSocketRouteOptions = Omit<WebSocketServerOptions, 'server' | 'host' | 'port' | 'tls' | 'backlog' | 'path' | 'startServing'>;

declare module './adapter.ts' {
  interface FastifyAdapter {
    /**
     * Serves WebSocket upgrades for `path` (query string ignored) on the app's own
     * server, sharing the port with HTTP: each connection gets a WebSocket transport
     * and the {@link MessageProtocol} `protocolFactory()` returns. Other paths keep
     * Fastify's behaviour. Resolves with the WebSocket server (see
     * `loop.createWebSocketServer()`), closed with the app (clients get 1001).
     * Throws `InvalidArgumentError` for a bad path or options, `InvalidStateError`
     * when the app is closing or the path is taken.
     */
    websocket(path: string, protocolFactory: () => MessageProtocol, options?: WebSocketRouteOptions): Promise<WebSocketServer>;
  }
}

const kPaths = Symbol('protoloop.fastify.webSocketPaths');

type WithPaths = FastifyAdapter & { [kPaths]?: Set<string> };

FastifyAdapter.prototype.websocket = async function websocket(
  this: FastifyAdapter,
  path: string,
  protocolFactory: () => MessageProtocol,
  options: WebSocketRouteOptions = {},
): Promise<WebSocketServer> {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidArgumentError(`app.protoloop.websocket(): path must be a string starting with '/', got ${String(path)}`);
  if (typeof protocolFactory !== 'function') throw new InvalidArgumentError('app.protoloop.websocket() needs a protocol factory function');
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('app.protoloop.websocket() options must be an object');
  for (const key of ['server', 'host', 'port', 'tls', 'backlog', 'path', 'startServing']) {
    if (key in options) throw new InvalidArgumentError(`app.protoloop.websocket(): option ${key} is not allowed: the route shares the Fastify app's server`);
  }
  if (this.state !== 'open') throw new InvalidStateError('app.protoloop.websocket(): the Fastify app is closing');
  const self = this as WithPaths;
  const paths = (self[kPaths] ??= new Set());
  if (paths.has(path)) throw new InvalidStateError(`app.protoloop.websocket(): ${path} already serves WebSockets`);
  paths.add(path);
  const app = this.app as FastifyInstance;
  try {
    const server = await createWebSocketServer(this.loop, protocolFactory, { ...options, server: app.server as HttpServer, path });
    this.addServer(server);
    return server;
  } catch (e) {
    paths.delete(path);
    throw e;
  }
};
