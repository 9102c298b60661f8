/**
 * The Fastify plugin: `app.register(protoloopFastify, { loop?, closeTimeout? })`.
 * @module
 */
import type { FastifyInstance } from 'fastify';
import { InvalidArgumentError } from '../errors.ts';
import { getRunningLoop, Loop } from '../loop/loop.ts';
import { DEFAULT_CLOSE_TIMEOUT, FastifyAdapter, type RouteShape } from './adapter.ts';

/** Options of {@link protoloopFastify}. */
export interface ProtoloopFastifyOptions {
  /** The loop the handlers run on. Default: the loop running when the plugin loads. */
  loop?: Loop;
  /**
   * How long (ms) `app.close()` waits for in-flight handlers before cancelling them.
   * Default 10 000.
   */
  closeTimeout?: number;
}

function validate(options: unknown): { loop: Loop; closeTimeout: number } {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('protoloopFastify options must be an object');
  const { loop, closeTimeout } = options as ProtoloopFastifyOptions;
  if (loop !== undefined && !(loop instanceof Loop)) throw new InvalidArgumentError('protoloopFastify options.loop must be a Loop');
  if (closeTimeout !== undefined && !(typeof closeTimeout === 'number' && closeTimeout >= 0 && closeTimeout <= 2 ** 31 - 1)) {
    throw new InvalidArgumentError('protoloopFastify options.closeTimeout must be a number of milliseconds >= 0');
  }
  const l = loop ?? getRunningLoop();
  if (l.isClosed()) throw new InvalidArgumentError('protoloopFastify options.loop is closed');
  return { loop: l, closeTimeout: closeTimeout ?? DEFAULT_CLOSE_TIMEOUT };
}

/** The routes the app has so far, printed, or null when it has none. @internal */
export function declaredRoutes(app: FastifyInstance): string | null {
  const tree = app.printRoutes({ commonPrefix: false }).trimEnd();
  return tree === '' || tree === '(empty tree)' ? null : tree;
}

function plugin(app: FastifyInstance, options: ProtoloopFastifyOptions, done: (err?: Error) => void): void {
  let adapter: FastifyAdapter;
  try {
    if (app.hasDecorator('protoloop')) throw new InvalidArgumentError('protoloopFastify is registered twice on this app');
    const { loop, closeTimeout } = validate(options);
    adapter = new FastifyAdapter(app, loop, closeTimeout);
  } catch (e) {
    done(e as Error);
    return;
  }
  const earlier = declaredRoutes(app);
  if (earlier !== null) {
    adapter.loop.logger.warn(
      `protoloopFastify: these routes were declared before the plugin loaded and do not run as loop tasks:\n${earlier}\n` +
        'declare routes after `await app.register(protoloopFastify)` (or in plugins registered after it)',
    );
  }
  app.decorate('protoloop', adapter);
  app.decorateRequest('task', null);
  app.addHook('onRoute', function protoloopOnRoute(route) {
    adapter.wrapRoute(route as unknown as RouteShape);
  });
  app.addHook('preClose', function protoloopPreClose(hookDone) {
    adapter.beginClose();
    hookDone();
  });
  app.addHook('onClose', async function protoloopOnClose() {
    await adapter.finishClose();
  });
  done();
}

/**
 * The protoloop plugin for Fastify 5. Registered on an app, every route handler added
 * after it runs as a loop task named after its route (`GET /users/:id`):
 *
 * - `request.task` is that task; `request.signal` aborts when the client disconnects
 *   before the answer (the task is cancelled too, nothing is answered or logged) or
 *   when the app closes before the handler finished;
 * - errors a handler throws reach Fastify's error handler, as without the plugin;
 * - in debug mode a handler blocking the loop is reported as a slow callback;
 * - `app.close()` stops accepting, gives in-flight handlers `closeTimeout` ms, then
 *   cancels them (answered 503) and closes WebSocket routes with 1001; ending `run()`
 *   or closing the loop closes the app.
 *
 * Register it (and `await` the registration) before declaring routes: Fastify applies
 * it to the routes declared after it loads (earlier ones are named in a warning). A
 * route opts out with `config: { protoloop: false }`. Fails to load with
 * `NoRunningLoopError` when no `loop` is given and none is running, and with
 * `InvalidArgumentError` on bad options or a second registration.
 *
 * ```ts
 * const app = Fastify();
 * await app.register(protoloopFastify, { closeTimeout: 5000 });
 * app.get('/users/:id', async (request) => fetchUser(request.params.id, { signal: request.signal }));
 * ```
 */
export const protoloopFastify = Object.assign(plugin, {
  // fastify-plugin's markers, without the dependency: apply to the whole app.
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'protoloop',
  [Symbol.for('plugin-meta')]: { name: 'protoloop', fastify: '5.x' },
});
