/** Unit tests of how socket errors from Node become protoloop's typed errors (current behaviour). */
import { describe, expect, it } from 'vitest';
import { BrokenPipeError, ConnectionError, ConnectionRefusedError, ConnectionResetError, DnsError, InvalidArgumentError, TlsError } from '../../src/index.ts';
import { isTlsError, mapSocketError } from '../../src/transports/map-error.ts';

function nodeError(code: string, message = code, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { code, ...extra });
}

describe('mapSocketError', () => {
  it.each([
    ['ECONNRESET', ConnectionResetError],
    ['ECONNREFUSED', ConnectionRefusedError],
    ['EPIPE', BrokenPipeError],
    ['ENOTFOUND', DnsError],
    ['EAI_AGAIN', DnsError],
    ['EHOSTUNREACH', ConnectionError],
  ])('%s becomes %O, with the original as cause and the context first', (code, cls) => {
    const cause = nodeError(code, `connect ${code}`);
    const mapped = mapSocketError(cause, 'connect to 127.0.0.1:1');
    expect(mapped).toBeInstanceOf(cls);
    expect(mapped).toBeInstanceOf(ConnectionError);
    expect(mapped.cause).toBe(cause);
    expect(mapped.message.startsWith('connect to 127.0.0.1:1: ')).toBe(true);
  });

  it('names the host a DNS lookup failed for', () => {
    const mapped = mapSocketError(nodeError('ENOTFOUND', 'getaddrinfo ENOTFOUND nowhere.invalid', { hostname: 'nowhere.invalid' }));
    expect(mapped.message).toContain("'nowhere.invalid'");
  });

  it('recognises TLS failures by code or OpenSSL library', () => {
    expect(mapSocketError(nodeError('ERR_SSL_WRONG_VERSION_NUMBER'))).toBeInstanceOf(TlsError);
    expect(mapSocketError(nodeError('DEPTH_ZERO_SELF_SIGNED_CERT'))).toBeInstanceOf(TlsError);
    expect(mapSocketError(Object.assign(new Error('x'), { library: 'SSL routines' }))).toBeInstanceOf(TlsError);
    expect(isTlsError(nodeError('ECONNRESET'))).toBe(false);
    expect(isTlsError('ERR_SSL_X')).toBe(false);
  });

  it('passes protoloop errors through and wraps non-errors', () => {
    const own = new InvalidArgumentError('bad');
    expect(mapSocketError(own)).toBe(own);
    const wrapped = mapSocketError('weird', 'read');
    expect(wrapped).toBeInstanceOf(ConnectionError);
    expect(wrapped.message).toBe('read: weird');
  });

  it('keeps an error without a context readable', () => {
    const mapped = mapSocketError(nodeError('ECONNRESET'));
    expect(mapped.message).toBe('the connection was reset by the peer');
  });
});
