import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError, parseCli } from './cli.ts';

test('the original RTFTP arguments parse, with defaults for the rest', () => {
  const o = parseCli(
    ['--root', '/srv', '--listen', '10.0.0.1', '--port', '6969', '--idle-timeout', '60'],
    {},
  );
  assert.ok(o);
  assert.deepEqual(
    [o.root, o.listen, o.port, o.idleTimeoutS, o.metricsPort, o.configDir],
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
  assert.deepEqual([o.root, o.port, o.metricsPort, o.listen], ['/r', 70, 0, ['::1', '127.0.0.1']]);
});

test('"all", 0.0.0.0 and :: mean every local address, each bound separately', () => {
  for (const l of ['all', '0.0.0.0', '::'])
    assert.equal(parseCli(['--root', '/r', '--listen', l], {})?.listen, 'all');
});

test('--help returns null', () => {
  assert.equal(parseCli(['--help'], {}), null);
});

for (const [args, message] of [
  [[], /--root is required/],
  [['--root', '/r', '--port', '70000'], /--port: 70000 is out of range/],
  [['--root', '/r', '--port', 'abc'], /--port: not a whole number/],
  [['--root', '/r', '--listen', 'example.com'], /--listen: not an IP address/],
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
  assert.deepEqual(admissionOf(parseCli(['--root', '/r'], {})), [1000, 1024, 256, 256, 10, 30]);
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
