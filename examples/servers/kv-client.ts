/**
 * The client of examples/servers/kv.ts, as a small library and a command line tool.
 *
 *   node examples/servers/kv-client.ts [--host 127.0.0.1] [--port 7379] set greeting hello world
 *   node examples/servers/kv-client.ts --port 7379 get greeting      # prints: hello world
 *   node examples/servers/kv-client.ts --port 7379 del greeting
 *
 * `KvClient` pipelines: each command writes its line at once and gets a future for its
 * reply; one reader task reads the reply lines and settles the futures in order.
 * Exit code: 0, or 1 when the key was not found, 2 on an error.
 */
import { parseArgs } from 'node:util';
import {
  ConnectionResetError,
  InvalidArgumentError,
  ProtoloopError,
  getRunningLoop,
  openConnection,
  run,
  type Future,
  type StreamReader,
  type StreamWriter,
  type Task,
} from '../../src/index.ts';

/** The server answered `ERROR ...`. */
export class KvError extends ProtoloopError {
  constructor(message: string) {
    super('ERR_KV_SERVER', message);
  }
}

export class KvClient implements AsyncDisposable {
  readonly #reader: StreamReader;
  readonly #writer: StreamWriter;
  readonly #pending: Future<string>[] = [];
  readonly #readerTask: Task<void>;
  #failure: Error | null = null;

  private constructor(reader: StreamReader, writer: StreamWriter) {
    this.#reader = reader;
    this.#writer = writer;
    this.#readerTask = getRunningLoop().createTask(() => this.#readReplies(), { name: 'kv-client replies' });
  }

  /** Connects to a kv server. */
  static async connect(host: string, port: number): Promise<KvClient> {
    const [reader, writer] = await openConnection(host, port);
    return new KvClient(reader, writer);
  }

  /** The value of `key`, or undefined. */
  async get(key: string): Promise<string | undefined> {
    const reply = await this.#command(`GET ${checkKey(key)}`);
    return reply === 'NOT_FOUND' ? undefined : reply.slice('VALUE '.length);
  }

  /** Sets `key` to `value` (one line: no `\n` in it). */
  async set(key: string, value: string): Promise<void> {
    if (value.includes('\n')) throw new InvalidArgumentError('a kv value cannot contain a newline');
    await this.#command(`SET ${checkKey(key)} ${value}`);
  }

  /** Deletes `key`; returns whether it existed. */
  async del(key: string): Promise<boolean> {
    return (await this.#command(`DEL ${checkKey(key)}`)) === 'DELETED';
  }

  /** Says goodbye and closes the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#writer.isClosing()) return;
    try {
      await this.#command('QUIT');
    } catch {
      // Closing anyway.
    }
    this.#writer.close();
    await this.#readerTask.then(undefined, () => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #command(line: string): Promise<string> {
    if (this.#failure !== null) throw this.#failure;
    const reply = getRunningLoop().createFuture<string>(`kv reply to ${line.split(' ')[0]}`);
    this.#pending.push(reply);
    this.#writer.write(line + '\n');
    await this.#writer.drain();
    const text = await reply;
    if (text.startsWith('ERROR ')) throw new KvError(text.slice('ERROR '.length));
    return text;
  }

  async #readReplies(): Promise<void> {
    try {
      for await (const raw of this.#reader) {
        const reply = raw.toString('utf8').replace(/\r?\n$/, '');
        const fut = this.#pending.shift();
        if (fut === undefined) throw new KvError(`unexpected reply from the server: ${reply}`);
        if (!fut.done()) fut.setResult(reply);
      }
      this.#fail(new ConnectionResetError('the kv server closed the connection'));
    } catch (e) {
      this.#fail(e instanceof Error ? e : new Error(String(e)));
    }
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const fut of this.#pending.splice(0)) if (!fut.done()) fut.setException(error);
  }
}

function checkKey(key: string): string {
  if (key === '' || /\s/.test(key)) throw new InvalidArgumentError(`a kv key must be non-empty and without white space, got ${JSON.stringify(key)}`);
  return key;
}

// ------------------------------------------------------------ command line

async function cli(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '7379' } },
  });
  const [verb, key, ...rest] = positionals;
  // A finally rather than `await using`, so that this file runs on Node 22 as it is.
  const client = await KvClient.connect(values.host, Number(values.port));
  try {
    switch (verb?.toLowerCase()) {
      case 'get': {
        const value = await client.get(key ?? '');
        if (value === undefined) return 1;
        console.log(value);
        return 0;
      }
      case 'set':
        await client.set(key ?? '', rest.join(' '));
        return 0;
      case 'del':
        return (await client.del(key ?? '')) ? 0 : 1;
      default:
        console.error('usage: kv-client.ts [--host H] [--port P] get KEY | set KEY VALUE... | del KEY');
        return 2;
    }
  } finally {
    await client.close();
  }
}

if (import.meta.main) {
  try {
    process.exitCode = await run(cli);
  } catch (e) {
    console.error(`kv-client: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 2;
  }
}
