// Streams over real sockets: openConnection/startServer (TCP, Unix, TLS, STARTTLS),
// half-close, flow control with drain(), backpressure on a peer that never reads,
// cancellation, peer resets and errors in client callbacks.
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CancelledError,
  ConnectionRefusedError,
  ConnectionResetError,
  IncompleteReadError,
  LimitOverrunError,
  StreamReader,
  StreamWriter,
  currentTask,
  eagerTaskFactory,
  getRunningLoop,
  openConnection,
  openUnixConnection,
  run,
  sleep,
  startServer,
  startUnixServer,
  type ExceptionContext,
  type Server,
  type Task,
} from '../../src/index.ts';
import { eventually } from '../helpers.ts';

const fixtures = new URL('../fixtures/streams/', import.meta.url);
const key = readFileSync(new URL('key.pem', fixtures));
const cert = readFileSync(new URL('cert.pem', fixtures));

function portOf(server: Server): number {
  return (server.sockets[0] as { port: number }).port;
}


async function lineEcho(reader: StreamReader, writer: StreamWriter): Promise<void> {
  for await (const line of reader) {
    writer.write(line);
    await writer.drain();
  }
  writer.close();
}

describe('streams over TCP', () => {
  it('openConnection and startServer exchange lines; the callback runs as a named task', async () => {
    await run(async () => {
      const names: string[] = [];
      await using server = await startServer(async (r, w) => {
        names.push(getRunningLoop().pendingTasks().size > 0 ? 'task' : 'no task');
        await lineEcho(r, w);
      }, { host: '127.0.0.1', port: 0 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      expect(reader).toBeInstanceOf(StreamReader);
      expect(writer).toBeInstanceOf(StreamWriter);
      expect(writer.getExtraInfo<{ port: number }>('peername')?.port).toBe(portOf(server));
      writer.writeLines(['one\n', Buffer.from('two\n')]);
      await writer.drain();
      expect((await reader.readLine()).toString()).toBe('one\n');
      expect((await reader.readLine()).toString()).toBe('two\n');
      writer.close();
      expect(writer.isClosing()).toBe(true);
      await writer.waitClosed();
      expect(writer.state).toBe('closed');
      writer.close(); // idempotent
      expect(names).toEqual(['task']);
    });
  });

  it("names each client task after its peer, also when first asked after the connection is gone", async () => {
    await run(async () => {
      const tasks: Task<unknown>[] = [];
      await using server = await startServer(async (r, w) => {
        tasks.push(currentTask()!);
        await r.read(100);
        w.close();
      }, { host: '127.0.0.1', port: 0 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      const local = writer.getExtraInfo<{ address: string; port: number }>('sockname')!;
      writer.write('x');
      expect((await reader.read(10)).length).toBe(0); // the server closed
      writer.close();
      await writer.waitClosed();
      await tasks[0]!;
      expect(tasks[0]!.getName()).toBe(`client ${local.address}:${local.port}`);
    });
  });

  it('half-close: the client writes EOF, the server reads to the end and still answers', async () => {
    await run(async () => {
      await using server = await startServer(async (r, w) => {
        const all = await r.read();
        expect(r.atEof()).toBe(true);
        w.write(`got ${all.length} bytes`);
        await w.drain();
        w.close();
      }, { host: '127.0.0.1', port: 0 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      expect(writer.canWriteEof()).toBe(true);
      writer.write(Buffer.alloc(100_000, 1));
      writer.writeEof();
      expect((await reader.read()).toString()).toBe('got 100000 bytes');
      expect(reader.atEof()).toBe(true);
      await writer.waitClosed();
    });
  });

  it('readExactly and readUntil across the network; IncompleteReadError when the peer ends early', async () => {
    await run(async () => {
      await using server = await startServer(async (_r, w) => {
        w.write('HDR:');
        for (let i = 0; i < 10; i++) {
          w.write(Buffer.alloc(1000, 65 + i));
          await sleep(1);
        }
        w.write('tail');
        w.close();
      }, { host: '127.0.0.1', port: 0 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      expect((await reader.readUntil(':')).toString()).toBe('HDR:');
      const body = await reader.readExactly(10_000);
      expect(body[0]).toBe(65);
      expect(body[9999]).toBe(74);
      const err = await reader.readExactly(10).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IncompleteReadError);
      expect((err as IncompleteReadError).partial.toString()).toBe('tail');
      writer.close();
    });
  });

  it('a line longer than the limit throws LimitOverrunError', async () => {
    await run(async () => {
      await using server = await startServer(async (r, w) => {
        try {
          await r.readLine();
        } catch (e) {
          w.write(e instanceof LimitOverrunError ? 'too long\n' : 'other\n');
        }
        w.close();
      }, { host: '127.0.0.1', port: 0, limit: 1024 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      writer.write(Buffer.alloc(5000, 120));
      writer.write('\n');
      expect((await reader.readLine()).toString()).toBe('too long\n');
      writer.close();
    });
  });

  it('a peer that never reads: drain() blocks, memory stays bounded, the reader pauses its transport', async () => {
    await run(async () => {
      let serverReader: StreamReader | null = null;
      let serverWriter: StreamWriter | null = null;
      const go = getRunningLoop().createFuture<void>();
      await using server = await startServer(async (r, w) => {
        serverReader = r;
        serverWriter = w;
        await go;
        const all = await r.read();
        w.write(String(all.length));
        w.close();
      }, { host: '127.0.0.1', port: 0, limit: 16 * 1024 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      const chunk = Buffer.alloc(64 * 1024, 7);
      let written = 0;
      const loop = getRunningLoop();
      const pump = loop.createTask(async () => {
        // At most 1 GiB: the point is that it never gets there.
        while (written < 1024 ** 3) {
          writer.write(chunk);
          written += chunk.length;
          await writer.drain();
        }
      });
      // Writing stops: the kernel buffers fill and drain() waits.
      let last = -1;
      await eventually(() => {
        const stalled = written === last;
        last = written;
        return stalled && written > 0;
      }, 10_000);
      expect(written).toBeLessThan(64 * 1024 * 1024);
      expect(writer.transport.getWriteBufferSize()).toBeLessThanOrEqual(64 * 1024 + chunk.length);
      // The server side holds at most 2 * limit + one read before pausing its transport.
      expect(serverReader!.bufferedSize).toBeLessThanOrEqual(2 * 16 * 1024 + 256 * 1024);
      expect(serverWriter!.transport.isReading()).toBe(false);
      // Cancelling the blocked writer interrupts drain() cleanly.
      pump.cancel();
      await expect(pump).rejects.toBeInstanceOf(CancelledError);
      writer.writeEof();
      go.setResult();
      expect(Number((await reader.read()).toString())).toBe(written);
    });
  });

  it('drain() after the connection is lost throws, and waitClosed() resolves', async () => {
    await run(async () => {
      await using server = await startServer(async (_r, w) => w.close(), { host: '127.0.0.1', port: 0 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      expect((await reader.read()).length).toBe(0);
      writer.close();
      await writer.waitClosed();
      await expect(writer.drain()).rejects.toBeInstanceOf(ConnectionResetError);
    });
  });

  it('a peer reset fails the waiting read and drain() with ConnectionResetError', async () => {
    await run(async () => {
      await using server = await startServer(async (r, w) => {
        await r.readLine();
        (w.getExtraInfo('socket') as { resetAndDestroy(): void }).resetAndDestroy();
      }, { host: '127.0.0.1', port: 0 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      writer.write('bye\n');
      const err = await reader.read(10).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectionResetError);
      await expect(writer.drain()).rejects.toBeInstanceOf(ConnectionResetError);
      await expect(writer.waitClosed()).rejects.toBeInstanceOf(ConnectionResetError);
    });
  });

  it('cancelling a task blocked in readLine() loses no data', async () => {
    await run(async () => {
      await using server = await startServer(async (r, w) => {
        w.write('par');
        await r.readLine();
        w.write('tial\n');
        await w.drain();
        w.close();
      }, { host: '127.0.0.1', port: 0 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      const loop = getRunningLoop();
      const t = loop.createTask(() => reader.readLine());
      await eventually(() => reader.bufferedSize === 3);
      t.cancel();
      await expect(t).rejects.toBeInstanceOf(CancelledError);
      writer.write('go\n');
      expect((await reader.readLine()).toString()).toBe('partial\n');
      writer.close();
    });
  });

  it('an error in the client callback goes to the exception handler and closes the connection', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const seen: ExceptionContext[] = [];
      loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
      await using server = await startServer(() => {
        throw new Error('handler bug');
      }, { host: '127.0.0.1', port: 0 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      expect((await reader.read()).length).toBe(0);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.message).toContain('client callback');
      expect((seen[0]!.exception as Error).message).toBe('handler bug');
      expect(seen[0]!.transport).toBeDefined();
      writer.close();
    });
  });

  it('client tasks go through the loop\'s task factory, and the callback still gets its reader and writer', async () => {
    await run(async () => {
      const loop = getRunningLoop();
      const made: Task<unknown>[] = [];
      loop.setTaskFactory((l, target, options) => {
        const t = eagerTaskFactory(l, target, options);
        made.push(t);
        return t;
      });
      await using server = await startServer(async (r, w) => {
        w.write(Buffer.concat([Buffer.from('echo '), await r.read(100)]));
        await w.drain();
        w.close();
      }, { host: '127.0.0.1', port: 0 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      writer.write('hi');
      expect((await reader.read()).toString()).toBe('echo hi');
      loop.setTaskFactory(null);
      expect(made.some((t) => t.getName().startsWith('client 127.0.0.1:'))).toBe(true);
      writer.close();
    });
  });

  it('await using closes the writer', async () => {
    await run(async () => {
      await using server = await startServer(lineEcho, { host: '127.0.0.1', port: 0 });
      let kept: StreamWriter;
      {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
        await using w = writer;
        kept = w;
        w.write('x\n');
        expect((await reader.readLine()).toString()).toBe('x\n');
      }
      expect(kept.state).toBe('closed');
    });
  });

  it('openConnection to a closed port throws ConnectionRefusedError', async () => {
    await run(async () => {
      const server = await startServer(lineEcho, { host: '127.0.0.1', port: 0 });
      const port = portOf(server);
      server.close();
      await server.waitClosed();
      await expect(openConnection('127.0.0.1', port)).rejects.toBeInstanceOf(ConnectionRefusedError);
    });
  });
});

describe('streams over Unix sockets and TLS', () => {
  it('startUnixServer / openUnixConnection', async () => {
    await run(async () => {
      const path = join(tmpdir(), `protoloop-streams-${process.pid}-${Date.now()}.sock`);
      await using _server = await startUnixServer(lineEcho, path);
      const [reader, writer] = await openUnixConnection(path);
      writer.write('over unix\n');
      expect((await reader.readLine()).toString()).toBe('over unix\n');
      writer.close();
      await writer.waitClosed();
    });
  });

  it('TLS with the tls option on both sides', async () => {
    await run(async () => {
      await using server = await startServer(lineEcho, { host: '127.0.0.1', port: 0, tls: { key, cert } });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server), { tls: { ca: cert, servername: 'localhost' } });
      expect(writer.getExtraInfo('cipher')).toBeDefined();
      writer.write('secret\n');
      expect((await reader.readLine()).toString()).toBe('secret\n');
      writer.close();
      await writer.waitClosed();
    });
  });

  it('STARTTLS: both sides upgrade with writer.startTls() and keep their streams', async () => {
    await run(async () => {
      // `await using`: the server must follow its client across the upgrade to close it.
      await using server = await startServer(async (r, w) => {
        expect((await r.readLine()).toString()).toBe('STARTTLS\n');
        w.write('GO\n');
        await w.startTls({ key, cert });
        await lineEcho(r, w);
      }, { host: '127.0.0.1', port: 0 });
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      writer.write('STARTTLS\n');
      expect((await reader.readLine()).toString()).toBe('GO\n');
      await writer.startTls({ ca: cert, servername: 'localhost' });
      expect(writer.getExtraInfo('cipher')).toBeDefined();
      writer.write('now encrypted\n');
      expect((await reader.readLine()).toString()).toBe('now encrypted\n');
      writer.close();
      await writer.waitClosed();
    });
  });
});
