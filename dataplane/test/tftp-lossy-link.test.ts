/**
 * Transfers through a link that drops, duplicates and reorders packets each way (a proxy
 * that follows each transfer's TID) all complete byte-identical:
 * - 50 at 5% each, with the Node client (lock-step and windowed) and busybox;
 * - issue 12's link, 3% loss, 2% duplication, 2% reordering: 50 of 50 with the atftp
 *   client in lock-step (blksize 1428, its timeout 1 s), 50 of 50 with atftp windowed,
 *   50 of 50 with the tftp-hpa client. atftp ignores a duplicated DATA and restarts its
 *   timer on it, so a server resending at a fixed interval equal to atftp's never lets it
 *   ACK again; exponential backoff does (RFC 1123 §4.2.3.2).
 *
 * Not curl: it stalls for minutes under loss whatever the server does. atftp also aborts
 * on any second OACK ("unexpected OACK"), even one the network duplicated: on that link
 * the OACK alone is never duplicated (it is still lost and reordered). The server never
 * sends a second OACK before the client could have repeated its ACK 0 (docs/admission.md).
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
  | { via: 'busybox' | 'atftp' | 'tftp-hpa'; file: string; blksize?: number; windowsize?: number };

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
  ...Array.from({ length: 10 }, (_, i): Plan => ({
    via: 'busybox',
    file: `f${i % 5}.bin`,
    blksize: 1428,
  })),
];

/** Issue 12's link and clients: 50 of each. */
const ISSUE_PLANS: Plan[] = [
  ...Array.from({ length: 50 }, (_, i): Plan => ({
    via: 'atftp',
    file: `f${i % 2}.bin`,
    blksize: 1428,
  })),
  ...Array.from({ length: 50 }, (_, i): Plan => ({
    via: 'atftp',
    file: `f${i % 2}.bin`,
    blksize: 1428,
    windowsize: 8,
  })),
  ...Array.from({ length: 50 }, (_, i): Plan => ({ via: 'tftp-hpa', file: `f${i % 2}.bin` })),
];

const OPCODE_OACK = 6;

describe('transfers over a lossy link', { skip: serverMissingReason() }, () => {
  let dir: TempDir;
  let server: RunningServer;
  let proxy: LossyUdpProxy;
  let issueProxy: LossyUdpProxy;
  const hashes = new Map<string, string>();

  before(async () => {
    dir = makeTempDir('rtftp-lossy');
    mkdirSync(dir.file('out'));
    const tree = servedTree(dir.file('root'));
    for (let i = 0; i < 5; i++) {
      const name = `f${i}.bin`;
      hashes.set(name, writeSeededFile(`${tree.defaultDir}/${name}`, 20_000 + i * 17_001, 60 + i));
    }
    // Every client reaches the server from the proxy's one address. A transfer whose final
    // ACK the link drops resends its last DATA until it gives up (the sender of the last
    // block cannot know it arrived, RFC 1350), so that one address holds such transfers for
    // a while; real clients each have their own. The per-client limit is not under test.
    server = await startServerUnderTest(tree, ['--max-transfers-per-client', '1000']);
    proxy = await LossyUdpProxy.start('127.0.0.1', server.port, {
      drop: 0.05,
      duplicate: 0.05,
      reorder: 0.05,
      maxDelayMs: 30,
      seed: SEED,
    });
    issueProxy = await LossyUdpProxy.start('127.0.0.1', server.port, {
      drop: 0.03,
      duplicate: 0.02,
      reorder: 0.02,
      maxDelayMs: 30,
      seed: SEED + 1,
      neverDuplicate: (msg) => msg.length >= 2 && msg.readUInt16BE(0) === OPCODE_OACK,
    });
  });

  after(async () => {
    proxy?.close();
    issueProxy?.close();
    await server?.stop();
    dir?.remove();
  });

  async function transfer(plan: Plan, n: number, via: LossyUdpProxy): Promise<string | undefined> {
    const expected = hashes.get(plan.file)!;
    if (plan.via === 'node') {
      const r = await downloadFile({
        host: '127.0.0.1',
        port: via.port,
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
    const out = dir.file('out', `${plan.via}-${n}`);
    const run = await runClient(plan.via, {
      host: '127.0.0.1',
      port: via.port,
      file: plan.file,
      out,
      blksize: plan.blksize,
      windowsize: plan.windowsize,
      // atftp's default (5 s) makes a lossy test slow; the issue measured it at 1 s.
      retransmitSeconds: plan.via === 'atftp' ? 1 : undefined,
      timeoutMs: 90_000,
    });
    if (failed(run)) return `#${n} ${run.command}: exit ${run.exitCode} ${run.output.slice(-300)}`;
    const got = await sha256File(out);
    rmSync(out);
    return got === expected ? undefined : `#${n} ${run.command}: bytes differ`;
  }

  /** Runs the plans PARALLEL at a time through `via`; returns the failures. */
  async function runPlans(plans: Plan[], via: LossyUdpProxy, label: string): Promise<string[]> {
    const started = Date.now();
    const failures: string[] = [];
    let next = 0;
    const slowest: Record<string, number> = {};
    const worker = async () => {
      while (next < plans.length) {
        const n = next++;
        const plan = plans[n]!;
        const t0 = Date.now();
        const problem = await transfer(plan, n, via);
        const kind = `${plan.via}${plan.blksize ? `@${plan.blksize}` : ''}${plan.windowsize ? `w${plan.windowsize}` : ''}`;
        slowest[kind] = Math.max(slowest[kind] ?? 0, Date.now() - t0);
        if (problem) failures.push(problem);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    console.log(
      `${label} (seed ${SEED}): ${plans.length} transfers in ${Date.now() - started} ms, proxy ${JSON.stringify(via.stats)}, slowest (ms) ${JSON.stringify(slowest)}`,
    );
    assert.ok(via.stats.dropped > 0 && via.stats.reordered > 0, 'the link was not lossy');
    return failures;
  }

  it('completes 50 transfers byte-identical with 5% drop, 5% duplication, 5% reordering', async () => {
    const failures = await runPlans(PLANS, proxy, 'lossy link');
    assert.deepEqual(failures, [], `seed ${SEED} (RTFTP_LOSSY_SEED replays it)`);
    assert.ok(server.alive(), 'the server died');
  });

  it('3% loss, 2% duplication, 2% reordering: 50 of 50 each with atftp lock-step, atftp windowed and tftp-hpa', async () => {
    const failures = await runPlans(ISSUE_PLANS, issueProxy, 'issue 12 link');
    assert.deepEqual(failures, [], `seed ${SEED} (RTFTP_LOSSY_SEED replays it)`);
    assert.ok(server.alive(), 'the server died');
  });
});
