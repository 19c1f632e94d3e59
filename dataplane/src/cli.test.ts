import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError, parseCli } from './cli.ts';
import { DEFAULT_SKIP_INTERFACES, formatListenSelector } from './tftp/listen-spec.ts';
import type { ListenSpec } from './tftp/listen-spec.ts';

/** What a spec includes, as text: the addresses, blocks and interface patterns given. */
const included = (spec: ListenSpec | undefined) => spec?.include.map(formatListenSelector);

test('the original RTFTP arguments parse, with defaults for the rest', () => {
  const o = parseCli(
    ['--root', '/srv', '--listen', '10.0.0.1', '--port', '6969', '--idle-timeout', '60'],
    {},
  );
  assert.ok(o);
  assert.deepEqual(
    [o.root, included(o.listen), o.port, o.idleTimeoutS, o.metricsPort, o.configDir],
    ['/srv', ['10.0.0.1'], 6969, 60, 9669, '/srv'],
  );
});

test('every flag can come from the environment; the command line wins', () => {
  const o = parseCli(['--port', '70'], {
    RTFTP_ROOT: '/r',
    RTFTP_PORT: '71',
    RTFTP_METRICS_PORT: '0',
    RTFTP_LISTEN: '::1,127.0.0.1',
  });
  assert.ok(o);
  assert.deepEqual(
    [o.root, o.port, o.metricsPort, included(o.listen)],
    ['/r', 70, 0, ['::1', '127.0.0.1']],
  );
});

test('"all", 0.0.0.0 and :: mean every local address but the skipped interfaces', () => {
  for (const l of ['all', '0.0.0.0', '::']) {
    const o = parseCli(['--root', '/r', '--listen', l], {});
    assert.deepEqual(included(o?.listen), ['all']);
    assert.deepEqual(o?.listen.skipInterfaces, DEFAULT_SKIP_INTERFACES);
  }
});

test('listen terms: CIDRs, interfaces, exclusions, the skip list and the rescan period', () => {
  const o = parseCli(
    [
      '--root',
      '/r',
      '--listen',
      '10.0.0.0/24, eth1,!10.0.0.7,!docker0',
      '--listen-skip-interfaces',
      '',
      '--listen-rescan',
      '3',
    ],
    {},
  );
  assert.deepEqual(included(o?.listen), ['10.0.0.0/24', 'eth1']);
  assert.equal(o?.listen.exclude.length, 2);
  assert.deepEqual(o?.listen.skipInterfaces, []);
  assert.equal(o?.listen.rescanMs, 3000);
});

test('exposure defaults: HTTP on every address of both families, /status to loopback only, no gate', () => {
  const o = parseCli(['--root', '/r'], {});
  assert.equal(o?.metricsListen, '');
  assert.equal(o?.probePort, 0);
  assert.equal(o?.statusAllow.size, 0);
  assert.equal(o?.requireSnapshot, false);
  const set = parseCli(
    ['--root', '/r', '--status-allow', '10.1.0.0/16,fd00::/8', '--probe-port', '9671'],
    { RTFTP_REQUIRE_SNAPSHOT: 'true' },
  );
  assert.equal(set?.statusAllow.toString(), '10.1.0.0/16,fd00::/8');
  assert.equal(set?.probePort, 9671);
  assert.equal(set?.requireSnapshot, true);
  assert.equal(parseCli(['--root', '/r', '--require-snapshot'], {})?.requireSnapshot, true);
});

test('--help returns null', () => {
  assert.equal(parseCli(['--help'], {}), null);
});

for (const [args, message] of [
  [[], /--root is required/],
  [['--root', '/r', '--port', '70000'], /--port: 70000 is out of range/],
  [['--root', '/r', '--port', 'abc'], /--port: not a whole number/],
  [['--root', '/r', '--listen', 'tftp.example.com'], /--listen: "tftp.example.com" is neither/],
  [['--root', '/r', '--listen', '10.0.0.300'], /--listen: not an IP address/],
  [['--root', '/r', '--listen', '10.0.0.1/24'], /--listen: host bits set in 10.0.0.1\/24/],
  [['--root', '/r', '--listen', '!all'], /--listen: "!all" excludes everything/],
  [['--root', '/r', '--listen', ' , '], /--listen: no address given/],
  [['--root', '/r', '--status-allow', '10.0.0.0/33'], /--status-allow: prefix \/33/],
  [['--root', '/r', '--listen-skip-interfaces', 'a b'], /not an interface name pattern/],
  [['--root', '/r', '--bogus'], /Unknown option '--bogus'/],
  [['--root', '/r', '--log-level', 'loud'], /--log-level/],
] as const) {
  test(`rejects ${JSON.stringify(args)} with one clear line`, () => {
    assert.throws(
      () => parseCli([...args], {}),
      (err: Error) =>
        err instanceof CliError && message.test(err.message) && !err.message.includes('\n'),
    );
  });
}

// Admission and retransmission (docs/admission.md)
test('admission and retransmission flags: documented defaults, from the environment too', () => {
  const admissionOf = (o: ReturnType<typeof parseCli>) =>
    o && [
      o.maxTransfersPerSubnet,
      o.maxPending,
      o.maxPendingPerSubnet,
      o.maxTransferMemoryMiB,
      o.maxTimeoutS,
      o.stallTimeoutS,
    ];
  assert.deepEqual(admissionOf(parseCli(['--root', '/r'], {})), [1000, 1024, 512, 256, 10, 30]);
  const fromEnv = parseCli(['--root', '/r', '--max-timeout', '5'], {
    RTFTP_MAX_TRANSFERS_PER_SUBNET: '64',
    RTFTP_MAX_PENDING: '100',
    RTFTP_MAX_PENDING_PER_SUBNET: '10',
    RTFTP_MAX_TRANSFER_MEMORY: '32',
    RTFTP_MAX_TIMEOUT: '60',
    RTFTP_STALL_TIMEOUT: '120',
  });
  assert.deepEqual(admissionOf(fromEnv), [64, 100, 10, 32, 5, 120]);
});

for (const [flag, bad] of [
  ['--max-transfers-per-subnet', '0'],
  ['--max-pending', '0'],
  ['--max-pending-per-subnet', '0'],
  ['--max-transfer-memory', '65537'],
  ['--max-timeout', '256'],
  ['--max-timeout', '0'],
  ['--stall-timeout', '0'],
  ['--stall-timeout', '3601'],
] as const) {
  test(`rejects ${flag} ${bad} as out of range`, () => {
    assert.throws(
      () => parseCli(['--root', '/r', flag, bad], {}),
      (err: Error) =>
        err instanceof CliError && err.message.includes(`${flag}: ${bad} is out of range`),
    );
  });
}

test('the open budgets and the health stall limit default to the documented values', () => {
  const o = parseCli(['--root', '/r'], {});
  assert.deepEqual(
    [o?.openBudgetReads, o?.openBudgetEntries, o?.openBudgetMs, o?.healthStallLimitS],
    [4000, 100_000, 10_000, 10],
  );
  const set = parseCli(['--root', '/r', '--open-budget-ms', '2000'], {
    RTFTP_OPEN_BUDGET_READS: '500',
    RTFTP_HEALTH_STALL_LIMIT: '30',
  });
  assert.deepEqual(
    [set?.openBudgetReads, set?.openBudgetMs, set?.healthStallLimitS],
    [500, 2000, 30],
  );
  assert.throws(() => parseCli(['--root', '/r', '--health-stall-limit', '0'], {}), CliError);
});

test('--workers: 1 by default (everything on the main thread), a count, or auto', () => {
  assert.equal(parseCli(['--root', '/r'], {})?.workers, 1);
  assert.equal(parseCli(['--root', '/r', '--workers', '4'], {})?.workers, 4);
  assert.equal(parseCli(['--root', '/r'], { RTFTP_WORKERS: 'auto' })?.workers, 'auto');
  for (const bad of ['0', 'two', '257'])
    assert.throws(() => parseCli(['--root', '/r', '--workers', bad], {}), CliError, bad);
});

test('--listen-buffer: 8 MiB by default, in KiB, 0 for the kernel default, from the environment too', () => {
  assert.equal(parseCli(['--root', '/r'], {})?.listen.receiveBufferBytes, 8 * 1024 * 1024);
  assert.equal(
    parseCli(['--root', '/r', '--listen-buffer', '512'], {})?.listen.receiveBufferBytes,
    512 * 1024,
  );
  assert.equal(
    parseCli(['--root', '/r'], { RTFTP_LISTEN_BUFFER: '0' })?.listen.receiveBufferBytes,
    0,
  );
  assert.throws(() => parseCli(['--root', '/r', '--listen-buffer', '-1'], {}), CliError);
});
