/**
 * A line-protocol key-value server on streams, with limits.
 *
 *   node examples/servers/kv.ts [--host 127.0.0.1] [--port 7379] [--max-line 4096] [--max-connections 1000]
 *
 * Protocol: one command per line (`\n`, an optional `\r` before it is ignored), one
 * reply line per command, in order (clients may pipeline):
 *
 *   GET <key>          -> VALUE <value> | NOT_FOUND
 *   SET <key> <value>  -> OK               (the value is the rest of the line)
 *   DEL <key>          -> DELETED | NOT_FOUND
 *   QUIT               -> BYE, then the server closes the connection
 *   anything else      -> ERROR <why>
 *
 * A line longer than --max-line bytes gets `ERROR line too long` and the connection is
 * closed (the rest of that line cannot be told from a command). A client beyond
 * --max-connections gets `ERROR too many connections` and is closed at once.
 * Prints `listening on HOST:PORT`; SIGINT/SIGTERM stop it cleanly. See kv-client.ts.
 * `serve()` starts the same server on the running loop (each call has its own store).
 */
import { parseArgs } from 'node:util';
import { ConnectionError, InvalidArgumentError, LimitOverrunError, run, startServer, type StreamReader, type StreamWriter } from '../../src/index.ts';
import { LIMIT_ARGS, limitsFromArgs, tcpServed, untilSignal, type ServeOptions, type Served } from './_served.ts';

/** Options of the key-value server. */
export interface KvServeOptions extends ServeOptions {
  /** The longest command line, in bytes. Default 4096. */
  maxLine?: number;
  /** Clients served at once; more are turned away. Default 1000. */
  maxConnections?: number;
}

/** Runs one command line against `store`; returns the reply, and whether to close afterwards. */
function execute(store: Map<string, string>, line: string): [reply: string, close: boolean] {
  const space = line.indexOf(' ');
  const verb = (space === -1 ? line : line.slice(0, space)).toUpperCase();
  const args = space === -1 ? '' : line.slice(space + 1);
  switch (verb) {
    case 'GET': {
      if (args === '' || args.includes(' ')) return ['ERROR usage: GET <key>', false];
      const value = store.get(args);
      return [value === undefined ? 'NOT_FOUND' : `VALUE ${value}`, false];
    }
    case 'SET': {
      const sep = args.indexOf(' ');
      if (sep <= 0) return ['ERROR usage: SET <key> <value>', false];
      store.set(args.slice(0, sep), args.slice(sep + 1));
      return ['OK', false];
    }
    case 'DEL': {
      if (args === '' || args.includes(' ')) return ['ERROR usage: DEL <key>', false];
      return [store.delete(args) ? 'DELETED' : 'NOT_FOUND', false];
    }
    case 'QUIT':
      return ['BYE', true];
    case '':
      return ['ERROR empty command', false];
    default:
      return [`ERROR unknown command ${JSON.stringify(verb.slice(0, 32))}`, false];
  }
}

function positiveInteger(value: number | undefined, fallback: number, what: string): number {
  const n = value ?? fallback;
  if (!(Number.isInteger(n) && n > 0)) throw new InvalidArgumentError(`kv: ${what} must be a positive integer, got ${String(value)}`);
  return n;
}

/**
 * Starts the key-value server on the running loop, with a store of its own.
 * Throws InvalidArgumentError for a bad `maxLine` or `maxConnections`.
 */
export async function serve(options: KvServeOptions = {}): Promise<Served> {
  const log = options.log ?? console.error;
  const maxLine = positiveInteger(options.maxLine, 4096, 'maxLine');
  const maxConnections = positiveInteger(options.maxConnections, 1000, 'maxConnections');
  const store = new Map<string, string>();
  let connections = 0;

  async function serveClient(reader: StreamReader, writer: StreamWriter): Promise<void> {
    if (connections >= maxConnections) {
      writer.write('ERROR too many connections\n');
      writer.close();
      return;
    }
    connections++;
    try {
      for (;;) {
        let raw: Buffer;
        try {
          raw = await reader.readLine();
        } catch (e) {
          if (!(e instanceof LimitOverrunError)) throw e;
          writer.write(`ERROR line too long (limit ${maxLine} bytes)\n`);
          break;
        }
        if (raw.length === 0 || writer.isClosing()) break; // the client closed its side, or we are shutting down
        if (raw[raw.length - 1] !== 0x0a) break; // a last line without newline: the client is gone
        const line = raw.toString('utf8', 0, raw.length - (raw.length > 1 && raw[raw.length - 2] === 0x0d ? 2 : 1));
        const [reply, close] = execute(store, line);
        writer.write(reply + '\n');
        await writer.drain();
        if (close) break;
      }
    } catch (e) {
      // The client reset the connection, or the server is shutting down.
      if (!(e instanceof ConnectionError)) throw e;
    } finally {
      connections--;
      writer.close();
    }
  }

  // The reader's limit is the line limit: readLine() throws LimitOverrunError past it.
  const server = await startServer(serveClient, { host: options.host ?? '127.0.0.1', port: options.port ?? 7379, limit: maxLine, ...(options.idleTimeout !== undefined ? { idleTimeout: options.idleTimeout } : {}) });
  return tcpServed('key-value', server, log);
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '7379' },
      'max-line': { type: 'string', default: '4096' },
      'max-connections': { type: 'string', default: '1000' },
      'idle-timeout': LIMIT_ARGS['idle-timeout'],
      'handshake-timeout': LIMIT_ARGS['handshake-timeout'], // accepted from protoloop serve; plain TCP has no handshake
    },
  });
  const maxLine = Number(values['max-line']);
  const maxConnections = Number(values['max-connections']);
  if (!(Number.isInteger(maxLine) && maxLine > 0) || !(Number.isInteger(maxConnections) && maxConnections > 0)) {
    console.error('--max-line and --max-connections must be positive integers');
    process.exit(2);
  }
  await run(
    async () => {
      const server = await serve({ host: values.host, port: Number(values.port), maxLine, maxConnections, ...limitsFromArgs({ 'idle-timeout': values['idle-timeout'] }) });
      const stop = untilSignal(); // handlers in place before we say we listen
      console.log(`listening on ${server.host}:${server.port}`);
      const signal = await stop;
      await server.close();
      console.error(`shut down: received ${signal}`);
    },
    { handleSigint: false },
  );
}
