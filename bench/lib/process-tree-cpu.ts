/**
 * CPU seconds used by a server and its child processes during a measurement. A server
 * that forks per transfer and ignores SIGCHLD (in.tftpd) never has its children's time
 * added to its own cutime, so children are sampled from /proc while they live: the last
 * sample of each child counts, so up to one interval per child is missed.
 */
import { readFileSync, readdirSync } from 'node:fs';

const TICKS = 100;

function stat(pid: number): { ppid: number; ticks: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // After comm: state, ppid, ... utime (12th), stime. Not cutime/cstime: the children
    // are counted from their own samples, and a reaped child would count twice.
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

export class ProcessTreeCpu {
  private readonly childTicks = new Map<number, number>();
  private readonly rootStart: number;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 100,
  ) {
    this.rootStart = stat(pid)?.ticks ?? 0;
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    for (const name of readdirSync('/proc')) {
      const child = Number(name);
      if (!Number.isInteger(child) || child === this.pid) continue;
      const s = stat(child);
      if (s?.ppid === this.pid) this.childTicks.set(child, s.ticks);
    }
  }

  /** Stops sampling; returns CPU seconds since construction. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    const root = (stat(this.pid)?.ticks ?? this.rootStart) - this.rootStart;
    let children = 0;
    for (const t of this.childTicks.values()) children += t;
    return (root + children) / TICKS;
  }
}
