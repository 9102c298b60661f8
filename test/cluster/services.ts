// Real HAProxy and redis-server for the scale-out tests: installed by
// scripts/ci-services.sh when missing (where apt-get and root allow it; otherwise the
// tests that need them are skipped with a message saying why, except with CI=true,
// where they fail), each instance started
// on a free port with its own config in a temp dir, and stopped by the test.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startCommand, type Child } from './helpers.ts';

const CI_SERVICES = fileURLToPath(new URL('../../scripts/ci-services.sh', import.meta.url));

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Whether `haproxy` and `redis-server` are there, installing them once if they are
 * not; the reason they are not, otherwise (for `it.skipIf` and its message).
 */
export function servicesMissing(): string | null {
  if (has('haproxy') && has('redis-server')) return null;
  const r = spawnSync('sh', [CI_SERVICES], { encoding: 'utf8', timeout: 600_000 });
  if (has('haproxy') && has('redis-server')) return null;
  const why = `haproxy/redis-server missing and scripts/ci-services.sh could not install them: ${(r.stderr || r.stdout || '').trim()}`;
  // In CI these tests are part of what is checked: missing services fail the run.
  if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(`CI=${process.env.CI}: ${why}`);
  console.warn(`SKIPPED scale-out service tests: ${why}`);
  return why;
}

/** A port that was free a moment ago (services that cannot take port 0 need one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on `port`, or rejects after `ms`. */
export async function listening(port: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${port} after ${ms} ms`);
    // Not a synchronisation sleep: the next connection attempt is the check.
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface Service {
  port: number;
  proc: Child;
  stop(): Promise<void>;
}

const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'protoloop-svc-'));
  tempDirs.push(dir);
  return dir;
}

/** Removes the temp dirs of the services (an `afterAll`). */
export function removeTempDirs(): void {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

async function stopChild(proc: Child): Promise<void> {
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
  await proc.exited;
}

/** A redis-server of its own: no persistence, on `port` (a free one by default). */
export async function startRedis(port?: number): Promise<Service> {
  const p = port ?? (await freePort());
  const dir = tempDir();
  const proc = startCommand(execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim(), ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]);
  await proc.line(/Ready to accept connections/, 20_000);
  return { port: p, proc, stop: () => stopChild(proc) };
}

/**
 * An HAProxy in TCP mode on a free port, in front of `backends` (ports on 127.0.0.1),
 * sending the PROXY header `send` (`'send-proxy'` = v1, `'send-proxy-v2'`), round-robin.
 */
export async function startHaproxy(backends: number[], send: 'send-proxy' | 'send-proxy-v2' = 'send-proxy-v2'): Promise<Service> {
  const port = await freePort();
  const dir = tempDir();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 1000',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 30s',
      '  timeout server 30s',
      'frontend front',
      `  bind 127.0.0.1:${port}`,
      '  default_backend back',
      'backend back',
      '  balance roundrobin',
      ...backends.map((b, i) => `  server s${i} 127.0.0.1:${b} ${send}`),
      '',
    ].join('\n'),
  );
  // -db: stay in the foreground; -W would fork a master. Logs go to stderr.
  const proc = startCommand(execFileSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).trim(), ['-db', '-f', cfg]);
  await listening(port);
  return { port, proc, stop: () => stopChild(proc) };
}

/**
 * Resolves once `channel` has at least `n` subscribers on the Redis at `port` (pub/sub
 * drops what is published before a subscription is in place: tests wait for it).
 */
export async function subscribed(port: number, channel: string, n: number, ms = 10_000): Promise<void> {
  const r = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await r.connect();
    const end = Date.now() + ms;
    for (;;) {
      const [, count] = (await r.pubsub('NUMSUB', channel)) as [string, number];
      if (count >= n) return;
      if (Date.now() > end) throw new Error(`${channel} has ${count} subscribers, not ${n}, after ${ms} ms`);
      // Not a synchronisation sleep: the next NUMSUB is the check.
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    r.disconnect();
  }
}
