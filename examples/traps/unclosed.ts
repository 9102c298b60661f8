// Trap 6: a transport never closed.
//
// A transport owns a socket. Forget to close it and the socket stays open (and the
// peer keeps waiting) until the process exits. protoloop tracks every transport,
// server and subprocess transport it opens: one still open when its loop closes, or
// collected while open, is logged as "unclosed transport <...>" (with where it was
// opened, in debug mode) and aborted. `await using` closes it for you.
//
//   node examples/traps/unclosed.ts bug
//   node examples/traps/unclosed.ts fixed
//   PROTOLOOP_DEBUG=1 node examples/traps/unclosed.ts bug   (adds where it was opened)
import net from 'node:net';
import { once } from 'node:events';
import { getRunningLoop, Protocol, run, type Transport } from '../../src/index.ts';

/** Prints the first line the server sends. */
class GreetingReader extends Protocol {
  override dataReceived(data: Buffer): void {
    console.log(`server says: ${data.toString().trim()}`);
  }
}

// The peer: a plain Node server that greets and waits for the client to hang up.
const peer = net.createServer((socket) => {
  socket.write('hello\n');
  socket.on('error', () => {});
});
peer.listen(0, '127.0.0.1');
await once(peer, 'listening');
const { port } = peer.address() as net.AddressInfo;

async function connect(): Promise<Transport> {
  const [transport] = await getRunningLoop().createConnection(() => new GreetingReader(), { host: '127.0.0.1', port });
  return transport;
}

async function bug(): Promise<void> {
  await connect(); // BUG: the transport is dropped without close()
  await new Promise((resolve) => setTimeout(resolve, 50));
}

async function fixed(): Promise<void> {
  const transport = await connect();
  try {
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    transport.close(); // flushes what is buffered, then closes the socket
  }
}

try {
  await run(process.argv[2] === 'fixed' ? fixed : bug);
} finally {
  peer.close();
  peer.unref();
}
