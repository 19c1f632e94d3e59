/**
 * Runs the storm's load generator: a few processes (one per core is the default), each
 * with its share of the clients, inside the benchmark's network namespace, started
 * together once every one of them has loaded its payloads.
 *
 * C by default (storm-load.c, compiled here with gcc): it costs a fraction of the Node
 * client's CPU per packet, so on a 2-core machine the clients leave the cores to the
 * server. `node` runs storm-client.ts (what the test suite's reduced storm uses). HTTP
 * clients are always Node (http-load-client.ts: node:http, each body hashed as it streams).
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { StormRunResult } from '../../dataplane/test/helpers/storm-client.ts';
import { REPO } from '../../dataplane/test/helpers/tftp-servers.ts';
import type { HttpLoadSpec } from './http-load-client.ts';
import type { StormLoadSpec } from './storm-load.ts';

const LOAD_MAIN = fileURLToPath(new URL('./storm-load.ts', import.meta.url));
const LOAD_C = fileURLToPath(new URL('./storm-load.c', import.meta.url));

export type LoadGenerator = { kind: 'c'; binary: string } | { kind: 'node' };

export function buildLoadGenerator(kind: string, dir: string): LoadGenerator {
  if (kind === 'node') return { kind: 'node' };
  if (kind !== 'c') throw new Error(`unknown load generator ${kind} (c or node)`);
  const binary = join(dir, 'storm-load');
  const cc = spawnSync('gcc', ['-O2', '-o', binary, LOAD_C], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc ${LOAD_C} failed (use the node one): ${cc.stderr}`);
  return { kind: 'c', binary };
}

export function describeLoadGenerator(gen: LoadGenerator, procs: number): string {
  return `${procs} load-generator process${procs === 1 ? '' : 'es'} (${gen.kind === 'c' ? 'C, storm-load.c' : 'Node, storm-client.ts'})`;
}

/** The HTTP profile's load generator, for the conditions line. */
export function describeHttpLoadGenerator(procs: number, sequential: boolean): string {
  const connections = sequential
    ? 'one keep-alive connection per client, the initrd asked on the kernel’s'
    : 'a connection per file, both at once';
  return (
    `${procs} load-generator process${procs === 1 ? '' : 'es'} (Node, http-load-client.ts: ` +
    `HTTP/1.1, ${connections}, every body hashed with sha256 as it streams)`
  );
}

/** The C generator's spec: the same content as StormLoadSpec, as lines (storm-load.c). */
function cSpec(spec: StormLoadSpec): string {
  return [
    `S ${spec.host} ${spec.port} ${spec.profile} ${spec.retransmitMs} ${spec.maxRetries} ${spec.sequential ? 'sequential' : 'parallel'}`,
    ...spec.payloadFiles.map((p) => `P ${p}`),
    ...spec.clients.map(
      (c) => `C ${c.address} ${c.fetches.map((f) => `${f.name} ${f.payload}`).join(' ')}`,
    ),
    '',
  ].join('\n');
}

interface LoadProcess {
  ready: Promise<void>;
  go(): void;
  result: Promise<StormRunResult>;
}

/** C for TFTP when built; the HTTP clients exist in Node only. */
function spawnLoad(gen: LoadGenerator | undefined, netns: string, specFile: string): LoadProcess {
  const argv =
    gen?.kind === 'c'
      ? [gen.binary, specFile]
      : [process.execPath, '--import', 'tsx', LOAD_MAIN, specFile];
  const child = spawn('ip', ['netns', 'exec', netns, ...argv], {
    cwd: REPO,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  let last = '';
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'ready') markReady();
    else last = line;
  });
  const result = new Promise<StormRunResult>((resolve, reject) =>
    child.on('close', (code) => {
      try {
        resolve(JSON.parse(last) as StormRunResult);
      } catch {
        reject(new Error(`storm load process exited ${code}: ${last}`));
      }
    }),
  );
  return { ready, go: () => child.stdin.end('go\n'), result };
}

/**
 * Spawns one process per spec and resolves once every one is ready; `go()` starts them all
 * and resolves their results.
 */
export async function prepareLoad(
  gen: LoadGenerator,
  netns: string,
  dir: string,
  specs: (StormLoadSpec | HttpLoadSpec)[],
): Promise<{ go(): Promise<StormRunResult[]> }> {
  const procs = specs.map((spec, p) => {
    const file = join(dir, `load-${p}.spec`);
    const c = spec.profile !== 'http' && gen.kind === 'c';
    writeFileSync(file, c ? cSpec(spec) : JSON.stringify(spec));
    return spawnLoad(c ? gen : undefined, netns, file);
  });
  await Promise.all(procs.map((p) => p.ready));
  return {
    go: () => {
      for (const p of procs) p.go();
      return Promise.all(procs.map((p) => p.result));
    },
  };
}

/** Deals `items` round-robin into `n` shares. */
export function deal<T>(items: readonly T[], n: number): T[][] {
  return Array.from({ length: n }, (_, p) => items.filter((_, i) => i % n === p));
}
