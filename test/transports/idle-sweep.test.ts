// The shared idle timeout of a server's connections (src/transports/net/idle-sweep.ts):
// one loop timer for every connection, the per-connection rule (four quiet looks, a
// quarter of the timeout apart), on virtual time.
import { describe, expect, it } from 'vitest';
import { getRunningLoop, run, sleep } from '../../src/index.ts';
import { IdleSweep, type SweptConnection } from '../../src/transports/net/idle-sweep.ts';
import { VirtualClock } from '../../src/testing/index.ts';

class Conn implements SweptConnection {
  idleSweep: IdleSweep | null = null;
  idleLooks = 0;
  idleProgressSeen = 0;
  progress = 0;
  expiredAt: number | null = null;
  idleProgress(): number {
    return this.progress;
  }
  idleExpired(): void {
    this.idleSweep = null;
    this.expiredAt = getRunningLoop().time();
  }
  join(sweep: IdleSweep): this {
    this.idleSweep = sweep;
    sweep.add(this);
    return this;
  }
  touch(): void {
    this.idleLooks = -1;
  }
}

describe('IdleSweep', () => {
  it('closes a connection between the timeout and 1.25x the timeout after its last activity, whatever the phase', async () => {
    await run(
      async () => {
        const loop = getRunningLoop();
        const sweep = new IdleSweep(loop, 1000);
        const first = new Conn().join(sweep);
        await sleep(130); // the second joins off the sweep's phase
        const second = new Conn().join(sweep);
        const joined = loop.time();
        await sleep(3000);
        expect(first.expiredAt).not.toBeNull();
        expect(first.expiredAt!).toBeGreaterThanOrEqual(1000);
        expect(first.expiredAt!).toBeLessThanOrEqual(1250);
        expect(second.expiredAt! - joined).toBeGreaterThanOrEqual(1000);
        expect(second.expiredAt! - joined).toBeLessThanOrEqual(1250);
      },
      { clock: new VirtualClock({ autojump: 0 }) },
    );
  });

  it('keeps a connection that reads, writes or drains open, and cuts only the silent one', async () => {
    await run(
      async () => {
        const loop = getRunningLoop();
        const sweep = new IdleSweep(loop, 1000);
        const busy = new Conn();
        const draining = new Conn();
        const silent = new Conn();
        for (const c of [busy, draining, silent]) c.join(sweep);
        for (let i = 0; i < 40; i++) {
          await sleep(100);
          busy.touch();
          draining.progress++; // bytes leave the write buffer without a write call
        }
        expect(silent.expiredAt).not.toBeNull();
        expect(busy.expiredAt).toBeNull();
        expect(draining.expiredAt).toBeNull();
        sweep.delete(busy);
        sweep.delete(draining);
        sweep.delete(draining); // idempotent
      },
      { clock: new VirtualClock({ autojump: 0 }) },
    );
  });

  it("walks a server's set of clients, skipping those it does not watch", async () => {
    await run(
      async () => {
        const loop = getRunningLoop();
        const clients = new Set<Conn>();
        const sweep = new IdleSweep(loop, 1000, clients);
        const watched = new Conn().join(sweep);
        const other = new Conn(); // in the set, but with no sweep (say, after startTls)
        clients.add(watched).add(other);
        await sleep(2000);
        expect(watched.expiredAt).not.toBeNull();
        expect(other.expiredAt).toBeNull();
        expect(other.idleLooks).toBe(0);
        clients.clear();
      },
      { clock: new VirtualClock({ autojump: 0 }) },
    );
  });

  it('runs its timer only while it watches a connection', async () => {
    await run(
      async () => {
        const loop = getRunningLoop();
        const sweep = new IdleSweep(loop, 1000);
        const c = new Conn().join(sweep);
        sweep.delete(c);
        // With nothing watched, nothing is looked at: a later member starts a fresh count.
        await sleep(5000);
        const t0 = loop.time();
        const d = new Conn().join(sweep);
        await sleep(5000);
        expect(c.expiredAt).toBeNull();
        expect(d.expiredAt! - t0).toBeGreaterThanOrEqual(1000);
        expect(d.expiredAt! - t0).toBeLessThanOrEqual(1250);
      },
      { clock: new VirtualClock({ autojump: 0 }) },
    );
  });
});
