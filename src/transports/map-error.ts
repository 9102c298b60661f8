/**
 * Maps Node's socket, DNS and TLS errors onto protoloop's typed errors (src/errors.ts),
 * keeping Node's error as `cause` and its `code`, `errno` and `syscall` (Node's habit
 * `err.code === 'EADDRINUSE'` works on them).
 *
 * closed by you  -> TransportClosedError (raised by the transports themselves)
 * broken by peer -> ConnectionResetError (ECONNRESET, EOF mid-handshake), BrokenPipeError (EPIPE)
 * cannot reach   -> ConnectionRefusedError (ECONNREFUSED), DnsError (ENOTFOUND, EAI_*)
 * TLS            -> TlsError (OpenSSL and certificate-verification errors)
 * anything else  -> ConnectionError with Node's code (EADDRINUSE, ETIMEDOUT, ...), or
 *                   ERR_PROTOLOOP_CONNECTION when Node gave none
 * @module
 */
import {
  BrokenPipeError,
  ConnectionError,
  ConnectionRefusedError,
  ConnectionResetError,
  DnsError,
  ProtoloopError,
  TlsError,
} from '../errors.ts';

/** The code of a connection error that neither the OS nor Node described. */
export const GENERIC_CONNECTION_CODE = ConnectionError.GENERIC_CODE;

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA', 'EAI_ADDRFAMILY', 'ENODATA']);

// Certificate verification failures carry OpenSSL's X509 names as their code.
const CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Whether `err` comes from TLS (OpenSSL, certificate checks, Node's TLS layer). */
export function isTlsError(err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false;
  const e = err as { code?: unknown; library?: unknown; reason?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  return code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || CERT_CODES.has(code) || typeof e.library === 'string';
}

/**
 * Maps `err` to a typed protoloop error. Protoloop errors pass through; `context` is
 * a short phrase (`connect to 127.0.0.1:80`) that prefixes the message.
 */
export function mapSocketError(err: unknown, context?: string): Error {
  if (err instanceof ProtoloopError) return err;
  if (!(err instanceof Error)) return new ConnectionError(GENERIC_CONNECTION_CODE, `${context ?? 'socket'}: ${String(err)}`, { cause: err });
  const rawCode = (err as { code?: unknown }).code;
  const code = typeof rawCode === 'string' ? rawCode : undefined;
  const where = context === undefined ? '' : `${context}: `;
  const opts = { cause: err };
  if (isTlsError(err)) return new TlsError(`${where}TLS failed: ${err.message}`, opts);
  switch (code) {
    case 'ECONNRESET':
      return new ConnectionResetError(`${where}the connection was reset by the peer`, opts);
    case 'ECONNREFUSED':
      return new ConnectionRefusedError(`${where}the connection was refused (nothing listens there)`, opts);
    case 'EPIPE':
      return new BrokenPipeError(`${where}the peer closed the connection while we were writing`, opts);
    default:
      if (code !== undefined && DNS_CODES.has(code)) {
        const host = (err as { hostname?: unknown }).hostname;
        return new DnsError(`${where}cannot resolve ${typeof host === 'string' ? `'${host}'` : 'the host name'} (${code})`, opts);
      }
      return new ConnectionError(GENERIC_CONNECTION_CODE, `${where}${err.message}`, opts);
  }
}
