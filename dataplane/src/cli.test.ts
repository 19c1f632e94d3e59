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
