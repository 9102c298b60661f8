/**
 * The transport methods of `Loop`, added as a mix-in (imported for its side effect by
 * the transports' public barrel). Each method is a thin forwarder to the module that
 * implements it; the option types live there.
 * @module
 */
import type net from 'node:net';
import type { FileHandle } from 'node:fs/promises';
import { Loop } from '../../loop/loop.ts';
import type { DatagramProtocol } from '../../protocols/protocols.ts';
import {
  connectAcceptedSocket,
  createConnection,
  createUnixConnection,
  type AcceptedSocketOptions,
  type ConnectionOptions,
  type UnixConnectionOptions,
} from './connect.ts';
import { createDatagramEndpoint, type DatagramEndpointOptions, type DatagramSocketTransport } from './datagram.ts';
import { createServer, createUnixServer, type ServerOptions, type UnixServerOptions } from './listen.ts';
import { sendfile, type SendfileOptions } from './sendfile.ts';
import type { Server } from './server.ts';
import type { SocketTransport, StreamProtocol } from './socket-transport.ts';
import { startTls, type StartTlsOptions } from './tls.ts';
import type { Transport } from '../transports.ts';

declare module '../../loop/loop.ts' {
  interface Loop {
    /**
     * Opens a TCP connection (TLS with `options.tls`) and resolves with
     * `[transport, protocol]` once `protocol.connectionMade()` ran.
     * Rejects with `ConnectionRefusedError`, `DnsError`, `TlsError`, `ConnectionError`,
     * `TimeoutError` (TLS handshake), `InvalidArgumentError`, or the signal's reason.
     * @example
     * const [transport, protocol] = await loop.createConnection(() => new MyProtocol(), { host: '127.0.0.1', port: 8080 });
     */
    createConnection<P extends StreamProtocol>(protocolFactory: () => P, options: ConnectionOptions): Promise<[SocketTransport, P]>;
    /** Opens a connection to a Unix socket; see {@link Loop.createConnection}. */
    createUnixConnection<P extends StreamProtocol>(protocolFactory: () => P, path: string, options?: UnixConnectionOptions): Promise<[SocketTransport, P]>;
    /**
     * Creates a TCP server (TLS with `options.tls`) listening on `options.host`
     * (a name or a list) and `options.port`; `protocolFactory` is called once per
     * connection. Resolves once it listens (and serves, unless `startServing: false`).
     * Rejects with `ConnectionError` (`code` `EADDRINUSE`, `EACCES`, ...) or `DnsError`.
     */
    createServer(protocolFactory: () => StreamProtocol, options?: ServerOptions): Promise<Server>;
    /** Creates a Unix-socket server at `path`; see {@link Loop.createServer}. */
    createUnixServer(protocolFactory: () => StreamProtocol, path: string, options?: UnixServerOptions): Promise<Server>;
    /** Wraps an already connected `net.Socket` in a transport (server-side TLS with `options.tls`). */
    connectAcceptedSocket<P extends StreamProtocol>(protocolFactory: () => P, socket: net.Socket, options?: AcceptedSocketOptions): Promise<[SocketTransport, P]>;
    /** Creates a UDP endpoint; resolves with `[transport, protocol]` once `connectionMade` ran. */
    createDatagramEndpoint<P extends DatagramProtocol>(protocolFactory: () => P, options?: DatagramEndpointOptions): Promise<[DatagramSocketTransport, P]>;
    /**
     * Upgrades an open transport to TLS (client side, or `serverSide: true`) and resolves
     * with the new transport; stop using the old one. `protocol` keeps receiving data.
     * Rejects with `TlsError`, `TimeoutError` (`handshakeTimeout`, default 60_000 ms),
     * `TransportClosedError`.
     */
    startTls(transport: Transport, protocol: StreamProtocol, options?: StartTlsOptions): Promise<SocketTransport>;
    /**
     * Sends a file (path, FileHandle or fd) over `transport`, honouring flow control;
     * resolves with the bytes sent. Node has no zero-copy path for sockets: with
     * `fallback: false` it rejects with `SendfileNotAvailableError`.
     */
    sendfile(transport: Transport, file: string | FileHandle | number, options?: SendfileOptions): Promise<number>;
  }
}

Loop.prototype.createConnection = function <P extends StreamProtocol>(this: Loop, protocolFactory: () => P, options: ConnectionOptions) {
  return createConnection(this, protocolFactory, options);
};
Loop.prototype.createUnixConnection = function <P extends StreamProtocol>(this: Loop, protocolFactory: () => P, path: string, options?: UnixConnectionOptions) {
  return createUnixConnection(this, protocolFactory, path, options);
};
Loop.prototype.createServer = function (this: Loop, protocolFactory: () => StreamProtocol, options?: ServerOptions) {
  return createServer(this, protocolFactory, options);
};
Loop.prototype.createUnixServer = function (this: Loop, protocolFactory: () => StreamProtocol, path: string, options?: UnixServerOptions) {
  return createUnixServer(this, protocolFactory, path, options);
};
Loop.prototype.connectAcceptedSocket = function <P extends StreamProtocol>(this: Loop, protocolFactory: () => P, socket: net.Socket, options?: AcceptedSocketOptions) {
  return connectAcceptedSocket(this, protocolFactory, socket, options);
};
Loop.prototype.createDatagramEndpoint = function <P extends DatagramProtocol>(this: Loop, protocolFactory: () => P, options?: DatagramEndpointOptions) {
  return createDatagramEndpoint(this, protocolFactory, options);
};
Loop.prototype.startTls = function (this: Loop, transport: Transport, protocol: StreamProtocol, options?: StartTlsOptions) {
  return startTls(this, transport, protocol, options);
};
Loop.prototype.sendfile = function (this: Loop, transport: Transport, file: string | FileHandle | number, options?: SendfileOptions) {
  return sendfile(this, transport, file, options);
};
