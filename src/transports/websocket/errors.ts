/**
 * How a WebSocket's end and ws's errors become protoloop's typed errors.
 *
 * closed by us (close/abort)          -> undefined (decided by the transport)
 * normal close by the peer            -> undefined (1000, 1001, 1005 "no status")
 * bad input from the peer (ws error)  -> WebSocketError with the close code we sent
 *                                        (1002 protocol, 1007 bad UTF-8, 1009 too big, ...)
 * any other close code from the peer  -> WebSocketError(code, reason)
 * no closing handshake (1006)         -> WebSocketError(1006), caused by the socket error
 * dead peer                           -> HeartbeatTimeoutError
 * @module
 */
import { HeartbeatTimeoutError, WebSocketError, WebSocketHandshakeError } from '../../errors.ts';
import { isTlsError, mapSocketError } from '../map-error.ts';

// ws marks its protocol errors with the close code under a private symbol; the codes
// below are the documented WS_ERR_* ones, used if the symbol cannot be found.
const WS_ERROR_CLOSE_CODES: Record<string, number> = {
  WS_ERR_EXPECTED_FIN: 1002,
  WS_ERR_EXPECTED_MASK: 1002,
  WS_ERR_INVALID_CLOSE_CODE: 1002,
  WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH: 1002,
  WS_ERR_INVALID_OPCODE: 1002,
  WS_ERR_UNEXPECTED_MASK: 1002,
  WS_ERR_UNEXPECTED_RSV_1: 1002,
  WS_ERR_UNEXPECTED_RSV_2_3: 1002,
  WS_ERR_INVALID_UTF8: 1007,
  WS_ERR_TOO_MANY_BUFFERED_PARTS: 1008,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 1009,
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1009,
};

function statusCodeOf(err: Error): number | undefined {
  for (const sym of Object.getOwnPropertySymbols(err)) {
    if (sym.description === 'status-code') {
      const v = (err as any)[sym];
      if (typeof v === 'number') return v;
    }
  }
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? WS_ERROR_CLOSE_CODES[code] : undefined;
}

/** The error `connectionLost()` gets when the connection ended without our asking. */
export function closeError(code: number, reason: string, wsError: Error | undefined, socketError: Error | undefined): Error | undefined {
  if (wsError !== undefined) {
    const status = statusCodeOf(wsError);
    if (status !== undefined) {
      return new WebSocketError(`the peer sent bad data (${wsError.message}): the connection was closed with ${status}`, status, '', { cause: wsError });
    }
  }
  if (code === 1000 || code === 1001 || code === 1005) return undefined;
  if (code === 1006) {
    const cause = socketError ?? wsError;
    const why = cause === undefined ? 'without a closing handshake' : `without a closing handshake (${mapSocketError(cause).message})`;
    return new WebSocketError(`the connection was lost ${why}`, 1006, '', cause === undefined ? undefined : { cause: mapSocketError(cause) });
  }
  return new WebSocketError(`the peer closed the connection with code ${code}${reason ? ` (${reason})` : ''}`, code, reason);
}

/** The error of a peer that did not answer the heartbeat. */
export function heartbeatError(timeout: number): Error {
  return new HeartbeatTimeoutError(`the peer did not answer the heartbeat ping within ${timeout} ms; the connection was aborted`);
}

/** Maps a failed opening handshake (ws's error, and the HTTP status if a response came). */
export function handshakeError(err: Error, url: string, status: number | undefined): Error {
  if (status !== undefined) {
    return new WebSocketHandshakeError(`WebSocket handshake with ${url} refused: HTTP ${status}`, status, { cause: err });
  }
  // Socket, DNS and TLS errors carry a code; ws's own handshake checks do not.
  if (typeof (err as { code?: unknown }).code === 'string' || isTlsError(err)) return mapSocketError(err, `WebSocket connect to ${url}`);
  return new WebSocketHandshakeError(`WebSocket handshake with ${url} failed: ${err.message}`, undefined, { cause: err });
}
