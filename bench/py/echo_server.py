"""TCP echo servers for bench/echo.bench.ts: asyncio's Protocol echo, on the stock
asyncio loop or on uvloop.

    python3 bench/py/echo_server.py [asyncio|uvloop] [PORT]

Prints `listening on 127.0.0.1:PORT` once it accepts connections; exits on SIGTERM
or SIGINT.
"""
import asyncio
import signal
import sys


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return False


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, '127.0.0.1', port)
    host, real_port = server.sockets[0].getsockname()[:2]
    print(f'listening on {host}:{real_port}', flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()


if __name__ == '__main__':
    flavour = sys.argv[1] if len(sys.argv) > 1 else 'asyncio'
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if flavour == 'uvloop':
        import uvloop
        uvloop.install()
    asyncio.run(main(port))
