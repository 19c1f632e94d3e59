/**
 * 50 transfers through a link that drops, duplicates and reorders ~5% of packets each
 * way (a proxy that follows each transfer's TID) all complete byte-identical. Clients
 * that retry: the Node client (lock-step and windowed) and busybox. Not curl: it stalls
 * for minutes under loss whatever the server does. Not atftp: it aborts when it sees a
 * duplicated OACK, which a lossy link produces.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, sha256File, writeSeededFile } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { LossyUdpProxy } from './helpers/lossy-udp-proxy.ts';
import { failed, runClient } from './helpers/real-clients.ts';
import {
  serverMissingReason,
  servedTree,
  startServerUnderTest,
} from './helpers/server-under-test.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';

const SEED = Number(process.env.RTFTP_LOSSY_SEED ?? Date.now() % 1_000_000);
const PARALLEL = 25;

type Plan =
  | { via: 'node'; file: string; blksize?: number; windowsize?: number }
  | { via: 'busybox'; file: string; blksize: number };

const PLANS: Plan[] = [
  ...Array.from({ length: 20 }, (_, i): Plan => ({ via: 'node', file: `f${i % 5}.bin` })),
  ...Array.from({ length: 10 }, (_, i): Plan => ({
    via: 'node',
    file: `f${i % 5}.bin`,
    blksize: 1428,
    windowsize: 8,
  })),
  ...Array.from({ length: 10 }, (_, i): Plan => ({
    via: 'busybox',
    file: `f${i % 5}.bin`,
    blksize: 1024,
  })),
  // Not atftp: it aborts on a duplicated OACK ("tftp: unexpected OACK"), a client bug.
  ...Array.from({ length: 10 }, (_, i): Plan => ({
    via: 'busybox',
    file: `f${i % 5}.bin`,
    blksize: 1428,
  })),
];

describe('transfers over a lossy link', { skip: serverMissingReason() }, () => {
  let dir: TempDir;
  let server: RunningServer;
  let proxy: LossyUdpProxy;
  const hashes = new Map<string, string>();

  before(async () => {
    dir = makeTempDir('rtftp-lossy');
    mkdirSync(dir.file('out'));
    const tree = servedTree(dir.file('root'));
    for (let i = 0; i < 5; i++) {
      const name = `f${i}.bin`;
      hashes.set(name, writeSeededFile(`${tree.defaultDir}/${name}`, 20_000 + i * 17_001, 60 + i));
    }
    server = await startServerUnderTest(tree);
    proxy = await LossyUdpProxy.start('127.0.0.1', server.port, {
      drop: 0.05,
      duplicate: 0.05,
      reorder: 0.05,
      maxDelayMs: 30,
      seed: SEED,
    });
  });

  after(async () => {
    proxy?.close();
    await server?.stop();
    dir?.remove();
  });

  async function transfer(plan: Plan, n: number): Promise<string | undefined> {
    const expected = hashes.get(plan.file)!;
    if (plan.via === 'node') {
      const r = await downloadFile({
        host: '127.0.0.1',
        port: proxy.port,
        file: plan.file,
        options: plan.blksize
          ? { blksize: String(plan.blksize), windowsize: String(plan.windowsize) }
          : {},
        retransmitMs: 150,
        maxRetries: 40,
      });
      if (!r.ok)
        return `#${n} node ${JSON.stringify(plan)}: ${r.failure ?? JSON.stringify(r.error)}`;
      return r.sha256 === expected ? undefined : `#${n} node ${plan.file}: bytes differ`;
    }
    const out = dir.file('out', `${n}`);
    const run = await runClient(plan.via, {
      host: '127.0.0.1',
      port: proxy.port,
      file: plan.file,
      out,
      blksize: plan.blksize,
      timeoutMs: 90_000,
    });
    if (failed(run)) return `#${n} ${run.command}: exit ${run.exitCode} ${run.output.slice(-300)}`;
    const got = await sha256File(out);
    rmSync(out);
    return got === expected ? undefined : `#${n} ${run.command}: bytes differ`;
  }

  it('completes 50 transfers byte-identical with 5% drop, 5% duplication, 5% reordering', async () => {
    const started = Date.now();
    const failures: string[] = [];
    let next = 0;
    const slowest: Record<string, number> = {};
    const worker = async () => {
      while (next < PLANS.length) {
        const n = next++;
        const t0 = Date.now();
        const problem = await transfer(PLANS[n]!, n);
        const kind = `${PLANS[n]!.via}${PLANS[n]!.blksize ? `@${PLANS[n]!.blksize}` : ''}`;
        slowest[kind] = Math.max(slowest[kind] ?? 0, Date.now() - t0);
        if (problem) failures.push(problem);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    console.log(
      `lossy link (seed ${SEED}): ${PLANS.length} transfers in ${Date.now() - started} ms, proxy ${JSON.stringify(proxy.stats)}, slowest (ms) ${JSON.stringify(slowest)}`,
    );
    assert.ok(proxy.stats.dropped > 0 && proxy.stats.reordered > 0, 'the link was not lossy');
    assert.deepEqual(failures, [], `seed ${SEED} (RTFTP_LOSSY_SEED replays it)`);
    assert.ok(server.alive(), 'the server died');
  });
});
