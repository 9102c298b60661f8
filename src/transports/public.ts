// The public names of src/transports; src/index.ts re-exports this list. The Loop's
// socket and WebSocket methods are written in src/loop/loop.ts, which loads
// ./net/loop-methods.ts and ./websocket/loop-methods.ts on first use.
export type { BaseTransport, ReadTransport, WriteTransport, Transport, DatagramTransport, ServerLike } from './transports.ts';
// Sockets, TLS, UDP, servers (issue 5)
export { SocketTransport } from './net/socket-transport.ts';
export type { SocketTransportState, StreamProtocol } from './net/socket-transport.ts';
export { BaseServer, Server } from './net/server.ts';
export type { ServerClient, ServerState, ServerShutdownOptions } from './net/server.ts';
export { DatagramSocketTransport } from './net/datagram.ts';
export type { DatagramEndpointOptions } from './net/datagram.ts';
export type { ConnectionOptions, UnixConnectionOptions, AcceptedSocketOptions } from './net/connect.ts';
export type { ServerOptions, UnixServerOptions } from './net/listen.ts';
export type { TlsClientOptions, TlsServerOptions, StartTlsOptions } from './net/tls.ts';
export type { SendfileOptions } from './net/sendfile.ts';
// WebSocket (issue 6)
export { WebSocketTransport } from './websocket/transport.ts';
export type { WebSocketTransportState } from './websocket/transport.ts';
export { WebSocketServer } from './websocket/server.ts';
export type { WebSocketServerOptions, WebSocketConnectOptions, WebSocketCommonOptions, HeartbeatOptions, VerifyClient, VerifyClientCallback, VerifyClientInfo } from './websocket/options.ts';
export { WebSocketStream, openWebSocket, startWebSocketServer } from './websocket/streams.ts';
export type { WebSocketMessage, WebSocketStreamOptions, OpenWebSocketOptions, StartWebSocketServerOptions, WebSocketHandler } from './websocket/streams.ts';
