import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.ts';
import { readErrorTable, renderErrorsDoc } from '../scripts/errors-table.ts';

const rows = readErrorTable();

describe('the error table', () => {
  it('docs/errors.md is the table of src/errors.ts', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    expect(doc).toBe(renderErrorsDoc(rows));
  });

  it('every error class is exported from the package', () => {
    expect(rows.length).toBeGreaterThan(20);
    for (const r of rows) expect(typeof (api as Record<string, unknown>)[r.name], r.name).toBe('function');
  });

  it('every code is unique to one class and carries the ERR_PROTOLOOP_ prefix', () => {
    const seen = new Map<string, string>();
    for (const r of rows) {
      for (const c of r.codes) {
        expect(seen.get(c), `${c} used by ${seen.get(c)} and ${r.name}`).toBeUndefined();
        seen.set(c, r.name);
      }
    }
  });

  it('instances carry their code, name and message', () => {
    const cases: [Error & { code: string }, string][] = [
      [new api.CancelledError('x'), 'ERR_PROTOLOOP_CANCELLED'],
      [new api.InvalidStateError('x'), 'ERR_PROTOLOOP_INVALID_STATE'],
      [new api.LoopClosedError(), 'ERR_PROTOLOOP_LOOP_CLOSED'],
      [new api.ConnectionResetError(), 'ERR_PROTOLOOP_CONNECTION_RESET'],
      [new api.IncompleteReadError(Buffer.from('ab'), 5), 'ERR_PROTOLOOP_INCOMPLETE_READ'],
      [new api.MainThreadOnlyError('createSubprocessExec()'), 'ERR_PROTOLOOP_MAIN_THREAD_ONLY'],
      [new api.ExceptionGroup('two failed', [new Error('a'), new Error('b')]), 'ERR_PROTOLOOP_EXCEPTION_GROUP'],
    ];
    for (const [err, code] of cases) {
      expect(err.code).toBe(code);
      expect(err.name).toBe(err.constructor.name);
      expect(err).toBeInstanceOf(Error);
    }
    expect(new api.ExceptionGroup('g', [1, 2])).toBeInstanceOf(AggregateError);
    expect(new api.MainThreadOnlyError('signals').message).toMatch(/thread bridge/);
    expect(new api.IncompleteReadError(Buffer.from('ab'), 5).message).toBe('2 bytes read on a total of 5 expected bytes');
  });
});

describe("errors of the OS keep Node's code", () => {
  it('code, errno and syscall come from the Node error in cause; the class stays for instanceof', () => {
    const node = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' });
    const err = new api.ConnectionRefusedError('refused', { cause: node });
    expect(err).toBeInstanceOf(api.ConnectionError);
    expect(err).toMatchObject({ code: 'ECONNREFUSED', errno: -111, syscall: 'connect', cause: node });
    const spawn = new api.SubprocessError('failed', { cause: Object.assign(new Error('x'), { code: 'ENOENT', errno: -2, syscall: 'spawn nope' }) });
    expect(spawn).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'spawn nope' });
  });

  it("without a Node code, protoloop's own ERR_PROTOLOOP_* code", () => {
    expect(new api.ConnectionResetError('ended mid-handshake', { cause: new Error('eof') })).toMatchObject({ code: 'ERR_PROTOLOOP_CONNECTION_RESET', errno: undefined, syscall: undefined });
    expect(new api.SubprocessError('failed')).toMatchObject({ code: 'ERR_PROTOLOOP_SUBPROCESS' });
    expect(new api.BrokenPipeError('closed', { code: 'EPIPE' })).toMatchObject({ code: 'EPIPE', errno: undefined });
  });
});
