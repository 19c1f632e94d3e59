import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError, parseCli } from './cli.ts';

test('without --nbd-allow there is no NBD target rule (standalone, as before)', () => {
  const o = parseCli(['--root', '/r'], {});
  assert.equal(o?.nbdAllow, undefined);
  assert.deepEqual(o?.nbdDeny, []);
});

test('--nbd-allow and --nbd-deny parse into one policy, from flags or the environment', () => {
  const o = parseCli(
    ['--root', '/r', '--nbd-allow', '10.0.0.0/8:10809, fd00::/8:10809-10900,/run/nbd.sock'],
    { RTFTP_NBD_DENY: '10.96.0.0/12' },
  );
  assert.deepEqual(o?.nbdAllow?.entries(), [
    '10.0.0.0/8:10809',
    'fd00::/8:10809-10900',
    '/run/nbd.sock',
  ]);
  assert.equal(o?.nbdAllow?.checkAddress('10.96.0.1', 10809).ok, false, '--nbd-deny applies');
  assert.equal(o?.nbdAllow?.checkAddress('10.1.0.1', 10809).ok, true);
  assert.equal(o?.nbdAllow?.checkAddress('127.0.0.1', 10809).ok, false, 'loopback reserved');
  const env = parseCli(['--root', '/r'], { RTFTP_NBD_ALLOW: '192.0.2.0/24' });
  assert.deepEqual(env?.nbdAllow?.entries(), ['192.0.2.0/24']);
});

for (const [args, message] of [
  [['--nbd-allow', ''], /--nbd-allow: no entry given/],
  [['--nbd-allow', '10.0.0.1/8'], /--nbd-allow: .*host bits/],
  [['--nbd-allow', 'nbd.example'], /--nbd-allow: .*not an IP address/],
  [['--nbd-allow', '10.0.0.0/8:99999'], /--nbd-allow: .*not a port/],
  [['--nbd-deny', '10.96.0.0/33'], /--nbd-deny: /],
] as const) {
  test(`rejects ${JSON.stringify(args)} with one clear line`, () => {
    assert.throws(
      () => parseCli(['--root', '/r', ...args], {}),
      (err: Error) =>
        err instanceof CliError && message.test(err.message) && !err.message.includes('\n'),
    );
  });
}
