/**
 * A terminal client for examples/servers/chat.ts.
 *
 *   node examples/servers/chat-client.ts [ws://127.0.0.1:8080] [--nick NAME]
 *
 * Lines typed on stdin are sent as they are (so `/join ROOM`, `/who`, ... work);
 * what the server sends is printed one message per line. Ends when stdin ends (the
 * connection is closed with 1000) or when the server closes the connection (exit
 * code 0 for a normal close, 1 otherwise).
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { getRunningLoop, openWebSocket, run } from '../../src/index.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { nick: { type: 'string' } } });
const url = positionals[0] ?? 'ws://127.0.0.1:8080';

async function main(): Promise<number> {
  const ws = await openWebSocket(url);
  if (values.nick !== undefined) await ws.send(`/nick ${values.nick}`);
  const lines = createInterface({ input: process.stdin, terminal: false });
  // Take the iterator now: readline drops lines emitted before anyone iterates.
  const input = lines[Symbol.asyncIterator]();
  // Typing: a task that forwards stdin, honouring backpressure (send waits when behind).
  const typing = getRunningLoop().createTask(async () => {
    for await (const line of { [Symbol.asyncIterator]: () => input }) {
      if (ws.isClosing()) break;
      await ws.send(line);
    }
    if (!ws.isClosing()) await ws.close(1000);
  }, { name: 'stdin' });
  let status = 0;
  try {
    for await (const message of ws) console.log(typeof message === 'string' ? message : `[${message.length} binary bytes]`);
  } catch (e) {
    console.error(`connection lost: ${(e as Error).message}`);
    status = 1;
  } finally {
    lines.close();
    typing.cancel();
  }
  return status;
}

process.exitCode = await run(main);
