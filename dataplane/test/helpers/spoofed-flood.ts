/**
 * A spoofed flood, as a test can make one without raw sockets: requests from many
 * source addresses (loopback aliases: the whole of 127/8 reaches lo) that never answer.
 * Each request comes from its own socket, which stays open and silent until `close()`,
 * so the server sees what a spoofed address gives it — nothing, not even ICMP.
 */
import type { Socket } from 'node:dgram';
import { bindUdp4 } from './lossy-udp-proxy.ts';

export interface FloodPlan {
  /** Source addresses, e.g. 127.1.2.1 … 127.1.2.200. */
  addresses: string[];
  /** Requests (each from its own port) per address. */
  perAddress: number;
  /** The datagram every source sends once. */
  datagram: Buffer;
  target: { address: string; port: number };
  /**
   * Requests sent back to back; the next burst goes once every source of this one had an
   * answer (or after `burstWaitMs`). Unpaced, most of a burst overflows the server socket's
   * receive buffer in the kernel — which only spares the server — and a flood the server
   * never reads proves nothing about it. An attacker gains nothing from the pacing: the
   * answers are only counted, never acknowledged.
   */
  burst?: number;
  burstWaitMs?: number;
}

interface Source {
  socket: Socket;
  /** Datagrams the server sent this source (only counted: nothing is kept or answered). */
  answers: number;
}

async function bound(address: string): Promise<Source> {
  const source = { socket: await bindUdp4(address), answers: 0 };
  source.socket.on('message', () => void source.answers++);
  return source;
}

export class SpoofedFlood {
  private constructor(private readonly sources: Source[]) {}

  /** Opens every source, then sends all the requests as fast as the sockets take them. */
  static async send(plan: FloodPlan): Promise<SpoofedFlood> {
    const sources: Source[] = [];
    try {
      for (const a of plan.addresses)
        for (let i = 0; i < plan.perAddress; i++) sources.push(await bound(a));
    } catch (err) {
      for (const s of sources) s.socket.close();
      throw err;
    }
    const burst = plan.burst ?? sources.length;
    for (let i = 0; i < sources.length; i += burst) {
      const batch = sources.slice(i, i + burst);
      await Promise.all(
        batch.map(
          (s) =>
            new Promise<void>((resolve) =>
              s.socket.send(plan.datagram, plan.target.port, plan.target.address, () => resolve()),
            ),
        ),
      );
      const until = Date.now() + (plan.burstWaitMs ?? 0);
      while (Date.now() < until && batch.some((s) => s.answers === 0))
        await new Promise((r) => setTimeout(r, 2));
    }
    return new SpoofedFlood(sources);
  }

  /** Sources the server answered at least once. */
  get answered(): number {
    return this.sources.filter((s) => s.answers > 0).length;
  }

  get size(): number {
    return this.sources.length;
  }

  close(): void {
    for (const s of this.sources) {
      try {
        s.socket.close();
      } catch {
        // already closed
      }
    }
  }
}

/** `count` addresses of one /24: `${prefix}.1` … */
export function addressesOf(prefix: string, count: number, first = 1): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}.${first + i}`);
}
