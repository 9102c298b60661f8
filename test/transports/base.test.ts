// The transport base's exit path and protocol-call policy, on a transport with no socket.
import { describe, expect, it } from 'vitest';
import { Loop, type ExceptionContext } from '../../src/index.ts';
import { TransportBase, asError } from '../../src/transports/base.ts';

class FakeTransport extends TransportBase<Record<string, (...a: unknown[]) => unknown>> {
  released = 0;
  size = 0;
  constructor(loop: Loop, protocol: Record<string, (...a: unknown[]) => unknown>) {
    super(loop, protocol);
    this.made = true;
  }
  protected override release(): void {
    this.released++;
  }
  override getWriteBufferSize(): number {
    return this.size;
  }
  kill(exc?: Error): void {
    this.forceClose(exc);
  }
  call(method: string, arg?: unknown): unknown {
    return this.callProtocol(method, arg);
  }
  grow(size: number): void {
    this.size = size;
    this.afterWrite(size);
  }
  drain(size: number): void {
    this.size = size;
    this.afterDrain(size);
  }
  writeAfterLost(): void {
    this.dropWriteAfterLost();
  }
}

function setup(): { loop: Loop; calls: string[]; errors: ExceptionContext[]; warnings: string[]; protocol: Record<string, (...a: unknown[]) => unknown> } {
  const calls: string[] = [];
  const errors: ExceptionContext[] = [];
  const warnings: string[] = [];
  const noop = (): void => {};
  const loop = new Loop({ logger: { debug: noop, info: noop, error: noop, warn: (o: unknown, msg?: string) => warnings.push(String(msg ?? o)) } as never });
  loop.setExceptionHandler((_l, ctx) => errors.push(ctx));
  const protocol: Record<string, (...a: unknown[]) => unknown> = {
    connectionLost: (exc) => calls.push(`lost:${(exc as Error | undefined)?.message ?? 'none'}`),
    dataReceived: (d) => calls.push(`data:${String(d)}`),
    pauseWriting: () => calls.push('pause'),
    resumeWriting: () => calls.push('resume'),
  };
  return { loop, calls, errors, warnings, protocol };
}

async function spin(loop: Loop): Promise<void> {
  await loop.runUntilComplete(async () => {
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => loop.callSoon(r));
  });
}

describe('TransportBase', () => {
  it('forceClose is idempotent: one release, one connectionLost, after callbacks already queued', async () => {
    const { loop, calls, protocol } = setup();
    try {
      const t = new FakeTransport(loop, protocol);
      loop.callSoon(() => t.call('dataReceived', 'queued'));
      t.kill(new Error('first'));
      t.kill(new Error('second'));
      expect(t.state).toBe('closed');
      expect(t.isClosing()).toBe(true);
      expect(t.released).toBe(1);
      expect(calls).toEqual([]); // never from inside the close itself
      await spin(loop);
      expect(calls).toEqual(['data:queued', 'lost:first']);
    } finally {
      loop.close();
    }
  });

  it('a throwing protocol goes to the exception handler with a context, then the connection is aborted with it', async () => {
    const { loop, calls, errors, protocol } = setup();
    try {
      const boom = new Error('boom');
      protocol.dataReceived = () => {
        throw boom;
      };
      const t = new FakeTransport(loop, protocol);
      await loop.runUntilComplete(async () => {
        t.call('dataReceived', 'x');
      });
      await spin(loop);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ message: 'Fatal error on transport: protocol.dataReceived() call failed', exception: boom, protocol, transport: t });
      expect(t.state).toBe('closed');
      expect(calls).toEqual(['lost:boom']);
    } finally {
      loop.close();
    }
  });

  it('wraps a non-Error thrown by a protocol the same way, keeping it as the cause', async () => {
    const { loop, calls, errors, protocol } = setup();
    try {
      protocol.dataReceived = () => {
        throw 'a string';
      };
      const t = new FakeTransport(loop, protocol);
      t.call('dataReceived', 'x');
      await spin(loop);
      const exc = errors[0]!.exception as Error;
      expect(exc).toBeInstanceOf(Error);
      expect(exc.cause).toBe('a string');
      expect(exc.message).toMatch(/non-Error value: 'a string'/);
      expect(calls).toEqual([`lost:${exc.message}`]);
      expect(asError(exc)).toBe(exc);
    } finally {
      loop.close();
    }
  });

  it('an exception from connectionLost is reported, nothing more', async () => {
    const { loop, errors, protocol } = setup();
    try {
      protocol.connectionLost = () => {
        throw new Error('in lost');
      };
      const t = new FakeTransport(loop, protocol);
      t.kill(undefined);
      await spin(loop);
      expect(errors.map((e) => e.message)).toEqual(['Exception in protocol.connectionLost()']);
    } finally {
      loop.close();
    }
  });

  it('flow-control calls obey the same policy: a throwing pauseWriting aborts the connection', async () => {
    const { loop, calls, errors, protocol } = setup();
    try {
      protocol.pauseWriting = () => {
        throw new Error('in pause');
      };
      const t = new FakeTransport(loop, protocol);
      await loop.runUntilComplete(async () => {
        t.grow(70_000);
      });
      await spin(loop);
      expect(errors[0]!.message).toBe('Fatal error on transport: protocol.pauseWriting() call failed');
      expect(calls).toEqual(['lost:in pause']);
    } finally {
      loop.close();
    }
  });

  it('flow-control calls wait for the loop when it does not run', async () => {
    const { loop, calls, protocol } = setup();
    try {
      const t = new FakeTransport(loop, protocol);
      t.grow(70_000);
      t.drain(0);
      expect(calls).toEqual([]);
      await spin(loop);
      expect(calls).toEqual(['pause', 'resume']);
    } finally {
      loop.close();
    }
  });

  it('writes after the connection was lost: one warning once five were dropped', () => {
    const { loop, warnings, protocol } = setup();
    try {
      const t = new FakeTransport(loop, protocol);
      for (let i = 0; i < 20; i++) t.writeAfterLost();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/after the connection was lost: 5 writes dropped/);
    } finally {
      loop.close();
    }
  });
});
