/**
 * The storm's table and targets: HTTP rows beside TFTP rows, each compared with the
 * baseline of its own protocol.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StormRunResult } from '../../dataplane/test/helpers/storm-client.ts';
import { formatStormTable, formatTargets, summarize } from './storm-report.ts';
import type { StormServerRun } from './storm-report.ts';

/** One load process whose clients ended at `ms`, having received `bytes` in all. */
function load(bytes: number, ms: number[]): StormRunResult[] {
  return [
    {
      clients: ms.map((m, i) => ({ address: `127.100.0.${i + 1}`, ok: true, ms: m })),
      bytes,
      duplicateData: 0,
      resent: 0,
      cpuSeconds: 1,
      startedAt: 0,
      endedAt: Math.max(...ms),
    },
  ];
}

function run(profile: string, server: string, seconds: number, extra = {}): StormServerRun {
  return {
    profile,
    server,
    clients: 2,
    load: load(2e8, [seconds * 500, seconds * 1000]),
    cpuSeconds: seconds,
    peakRssMb: 10,
    listenerDrops: 3,
    ...extra,
  };
}

const figures = [
  run('edk2', 'rtftp (1 worker)', 2, { serverRetransmits: 0 }),
  run('edk2', 'tftp-hpa', 4),
  run('edk2', 'dnsmasq (tftp-max 54)', 1),
  run('http', 'rtftp (1 worker)', 2),
  run('http', 'rtftp (2 workers)', 1),
  run('http', 'nginx (1 process, sendfile)', 1),
].map(summarize);

test('HTTP rows are compared with nginx, TFTP rows with tftp-hpa and dnsmasq', () => {
  const lines = formatTargets(figures).split('\n');
  assert.match(lines[0]!, /^- edk2, rtftp \(1 worker\): .* 2\.00× tftp-hpa .* 0\.50× dnsmasq /);
  assert.match(
    lines[1]!,
    /^- http, rtftp \(1 worker\): 2\/2 byte-identical, .* 0\.50× nginx \(HTTP baseline/,
  );
  assert.match(lines[2]!, /^- http, rtftp \(2 workers\): .* 1\.00× nginx .* 1\.00× nginx's/);
  assert.equal(lines[3], '- http: 2 workers / 1 worker: 2.00× (≥ 1.5)');
  assert.ok(!lines.some((l) => l.startsWith('- http') && l.includes('tftp-hpa')));
});

test('HTTP rows show no TFTP retransmits or resends, and their drops are marked', () => {
  const table = formatStormTable(figures, []);
  const http = table.split('\n').find((l) => l.startsWith('| http | nginx'));
  assert.match(http ?? '', /\| – \| – \| 3‡ \|/);
  const tftp = table.split('\n').find((l) => l.startsWith('| edk2 | tftp-hpa'));
  assert.match(tftp ?? '', /\| 0† \| 0 \| 3 \|/);
  assert.match(table, /‡ connections the kernel dropped/);
});

test('a table of TFTP rows alone has no HTTP note', () => {
  const table = formatStormTable(
    figures.filter((f) => f.protocol === 'tftp'),
    [],
  );
  assert.doesNotMatch(table, /‡|http rows/);
  assert.match(table, /^† duplicate DATA/m);
});
