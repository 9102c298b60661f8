/**
 * The worker module of bench/cluster.bench.ts: a protoloop TCP echo server. A
 * connection whose first chunk is exactly `PID?\n` is answered with the worker's pid
 * instead (the bench counts which worker got each connection).
 */
import { getRunningLoop, Protocol, type Transport } from '../src/index.ts';
import type { WorkerServeOptions } from '../src/cluster/index.ts';

class Echo extends Protocol {
  #t: Transport | null = null;
  #first = true;
  override connectionMade(t: Transport): void {
    this.#t = t;
  }
  override dataReceived(data: Buffer): void {
    if (this.#first) {
      this.#first = false;
      if (data.length === 5 && data.toString() === 'PID?\n') {
        this.#t!.write(`${process.pid}\n`);
        return;
      }
    }
    this.#t!.write(data);
  }
}

export async function serve(options: WorkerServeOptions): Promise<unknown> {
  return getRunningLoop().createServer(() => new Echo(), { host: '127.0.0.1', port: options.port, reusePort: options.reusePort, backlog: 1024 });
}
