/**
 * `protoloop/fastify`: the Fastify adapter. Fastify is an optional peer dependency:
 * only this entry point needs it.
 * @module protoloop/fastify
 */
import type { Task } from '../loop/task.ts';
import type { FastifyAdapter } from './adapter.ts';

import './websocket.ts';

export { protoloopFastify } from './plugin.ts';
export type { ProtoloopFastifyOptions } from './plugin.ts';
export { serveFastify, FastifyServer } from './serve.ts';
export type { ServeFastifyOptions } from './serve.ts';
export type { FastifyAdapter, FastifyAdapterStats, AdapterState } from './adapter.ts';
export type { WebSocketRouteOptions } from './websocket.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The loop task running this request's handler (null outside the handler's route). */
    task: Task<unknown> | null;
  }
  interface FastifyInstance {
    /** protoloop's adapter: the loop, WebSocket routes, stats, in-flight tasks. */
    protoloop: FastifyAdapter;
  }
}
