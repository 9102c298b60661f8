/**
 * The baseline of bench/echo.bench.ts: a TCP echo server on raw Node `net`, written
 * the way a Node user would (a 'data' listener that writes the chunk back), with
 * TCP_NODELAY as asyncio and protoloop set it.
 *
 *   node bench/net-echo-server.ts [PORT]
 *
 * Prints `listening on 127.0.0.1:PORT`; exits on SIGTERM or SIGINT.
 */
import net from 'node:net';

const port = Number(process.argv[2] ?? 0);

function onData(this: net.Socket, chunk: Buffer): void {
  this.write(chunk);
}

function onError(): void {
  // A peer reset: the socket is destroyed, nothing else to do.
}

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('data', onData);
  socket.on('error', onError);
});
server.listen({ host: '127.0.0.1', port }, () => {
  const addr = server.address() as net.AddressInfo;
  console.log(`listening on ${addr.address}:${addr.port}`);
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    server.close();
    process.exit(0);
  });
}
