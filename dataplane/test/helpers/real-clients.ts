/**
 * Runs the Debian TFTP clients (tftp-hpa, atftp, curl, busybox) as a user would, with
 * a hard timeout, optionally inside a client network namespace.
 */
import { spawn } from 'node:child_process';

export type ClientName = 'tftp-hpa' | 'atftp' | 'curl' | 'busybox';
export const CLIENTS: ClientName[] = ['tftp-hpa', 'atftp', 'curl', 'busybox'];

export interface ClientGet {
  host: string;
  port: number;
  file: string;
  out: string;
  /** Not every client can ask for it: see `supportsBlksize`. */
  blksize?: number;
  windowsize?: number;
  netns?: string;
  timeoutMs?: number;
  /** atftp only: its retransmit delay (default 5 s) is far too slow for a lossy-link test. */
  retransmitSeconds?: number;
}

export interface ClientRun {
  command: string;
  exitCode: number | null;
  timedOut: boolean;
  output: string;
  durationMs: number;
}

/** tftp-hpa 5.2's client sends no options at all: it always runs lock-step at 512. */
export function supportsBlksize(client: ClientName): boolean {
  return client !== 'tftp-hpa';
}

export function clientArgv(client: ClientName, g: ClientGet): string[] {
  const port = String(g.port);
  switch (client) {
    case 'tftp-hpa':
      // -l: literal mode, so a name with ':' is never taken as host:file.
      return ['tftp', '-l', '-m', 'binary', g.host, port, '-c', 'get', g.file, g.out];
    case 'atftp': {
      const opts: string[] = [];
      if (g.blksize) opts.push('--option', `blksize ${g.blksize}`);
      if (g.windowsize) opts.push('--option', `windowsize ${g.windowsize}`);
      if (g.retransmitSeconds) opts.push('--tftp-timeout', String(g.retransmitSeconds));
      return ['atftp', '--get', '-r', g.file, '-l', g.out, ...opts, g.host, port];
    }
    case 'curl': {
      const opts = g.blksize ? ['--tftp-blksize', String(g.blksize)] : [];
      // --path-as-is: otherwise curl itself squashes `..` and the server never sees it.
      const url = `tftp://${g.host}:${port}/${g.file.replace(/^\//, '%2F')}`;
      return ['curl', '-sS', '--path-as-is', '--max-time', '60', ...opts, url, '-o', g.out];
    }
    case 'busybox': {
      const opts = g.blksize ? ['-b', String(g.blksize)] : [];
      return ['busybox', 'tftp', ...opts, '-g', '-r', g.file, '-l', g.out, g.host, port];
    }
  }
}

/**
 * tftp-hpa's client exits 0 even when the server answered ERROR; it prints
 * "Error code N: ..." instead, so callers check `failed()`, not the exit code alone.
 */
export function failed(run: ClientRun): boolean {
  return run.exitCode !== 0 || run.timedOut || /Error code \d+|Transfer timed out/.test(run.output);
}

export function runClient(client: ClientName, g: ClientGet): Promise<ClientRun> {
  const argv = clientArgv(client, g);
  const full = g.netns ? ['ip', 'netns', 'exec', g.netns, ...argv] : argv;
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer) => {
      // Bounded: a client printing a line per retry must not fill the test's memory.
      if (output.length < 64 * 1024) output += b.toString();
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, g.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        command: full.join(' '),
        exitCode: code,
        timedOut,
        output,
        durationMs: performance.now() - started,
      });
    });
  });
}
