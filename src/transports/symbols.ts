/**
 * The transports' cross-module symbols, each declared once.
 * @module
 * @internal
 */

/** The back-reference from a Node socket (or ws object) to the transport that owns it. */
export const kTransport = Symbol('protoloop.transport');
/** WebSocket transport: start it (connectionMade, heartbeat) once the server or client has it. */
export const kStart = Symbol('protoloop.wsStart');
/** A transport: the error its connectionLost got (read by its server, to count peer drops). */
export const kLostExc = Symbol('protoloop.lostExc');
