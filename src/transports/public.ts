// The public names of src/transports; src/index.ts re-exports this list.
export {};
export type { BaseTransport, ReadTransport, WriteTransport, Transport, DatagramTransport, ServerLike } from './transports.ts';
// Sockets, TLS, UDP, servers (issue 5)
import './loop-methods.ts';
export { SocketTransport } from './socket-transport.ts';
export type { SocketTransportState, StreamProtocol } from './socket-transport.ts';
export { BaseServer, Server } from './server.ts';
export type { ServerClient, ServerState, ServerShutdownOptions } from './server.ts';
export { DatagramSocketTransport } from './datagram.ts';
export type { DatagramEndpointOptions } from './datagram.ts';
export type { ConnectionOptions, UnixConnectionOptions, AcceptedSocketOptions } from './connect.ts';
export type { ServerOptions, UnixServerOptions } from './listen.ts';
export type { TlsClientOptions, TlsServerOptions, StartTlsOptions } from './tls.ts';
export type { SendfileOptions } from './sendfile.ts';
// WebSocket (issue 6)
import './websocket-loop-methods.ts';
export { WebSocketTransport } from './websocket-transport.ts';
export type { WebSocketTransportState } from './websocket-transport.ts';
export { WebSocketServer } from './websocket-server.ts';
export type { WebSocketServerOptions, WebSocketConnectOptions, WebSocketCommonOptions, HeartbeatOptions, VerifyClient, VerifyClientCallback, VerifyClientInfo } from './websocket-options.ts';
export { WebSocketStream, openWebSocket, startWebSocketServer } from './websocket-streams.ts';
export type { WebSocketMessage, WebSocketStreamOptions, OpenWebSocketOptions, StartWebSocketServerOptions, WebSocketHandler } from './websocket-streams.ts';
