/**
 * The NBD target gate in front of both connectors: what it allows, what it refuses, and
 * that a refused target never sees a connection (a real listening socket counts them).
 * The whole daemon against real nbdkit is in dataplane/test/nbd-target-policy.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { parseNbdConfig, type NbdConfig } from '../../../common/src/nbd-config.ts';
import { NbdTargetPolicy } from '../../../common/src/nbd-target-policy.ts';
import { createDataplaneMetrics } from '../metrics.ts';
import { DiskError } from './disk-session.ts';
import { connectNative } from './native/connect-native.ts';
import { createGuestfsConnector } from './nbd/guestfs-connector.ts';
import { NOT_PERMITTED_CODE, NbdTargetGate } from './nbd-target-gate.ts';

const log = pino({ level: 'silent' });

function cfg(url: string, extra: Record<string, unknown> = {}): NbdConfig {
  const r = parseNbdConfig(
    JSON.stringify({ url, mounts: [{ partition: 0, mountpoint: '/' }], tftp_root: '/', ...extra }),
  );
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
  return r.config;
}

const notPermitted = (err: unknown) =>
  err instanceof DiskError && err.code === NOT_PERMITTED_CODE && err.reason === 'not-permitted';

describe('NbdTargetGate', () => {
  it('without --nbd-allow or nbd_allow it passes the endpoint through, looking nothing up', async () => {
    let lookups = 0;
    const gate = new NbdTargetGate({ lookup: async () => (lookups++, ['127.0.0.1']) });
    const c = cfg('nbd://nbd.example:10809/x');
    assert.deepEqual(await gate.admit(c), [c.endpoint]);
    assert.equal(lookups, 0);
  });

  it('resolves a name, checks every address, and hands out the checked addresses only', async () => {
    const refused: string[] = [];
    const gate = new NbdTargetGate({
      allow: NbdTargetPolicy.parse(['10.0.0.0/8:10809']),
      lookup: async (h) =>
        h === 'split.example' ? ['10.0.0.7', '127.0.0.1'] : ['10.0.0.7', '10.1.2.3'],
      onRefused: (rule) => refused.push(rule),
    });
    const ok = await gate.admit(cfg('nbd://nbd.example/x'));
    assert.deepEqual(
      ok.map((e) => e.transport === 'tcp' && e.host),
      ['10.0.0.7', '10.1.2.3'],
    );
    await assert.rejects(gate.admit(cfg('nbd://split.example/x')), (err: Error) => {
      assert.ok(notPermitted(err));
      assert.match(err.message, /split\.example resolves to 127\.0\.0\.1, which is loopback/);
      assert.match(err.message, /--nbd-allow/);
      return true;
    });
    await assert.rejects(gate.admit(cfg('nbd://10.0.0.7:2379/x')), notPermitted);
    await assert.rejects(
      gate.admit(cfg('nbd+unix:///x?socket=/run/containerd/containerd.sock')),
      notPermitted,
    );
    assert.deepEqual(refused, ['reserved', 'not-allowed', 'socket']);
  });

  it("a config's nbd_allow narrows even without --nbd-allow, with the reserved ranges", async () => {
    const gate = new NbdTargetGate({ lookup: async () => ['127.0.0.1'] });
    await assert.rejects(
      gate.admit(cfg('nbd://moved.example/x', { nbd_allow: ['10.20.0.0/24:10809'] })),
      (err: Error) => notPermitted(err) && /the config's nbd_allow/.test(err.message),
    );
    await assert.rejects(
      gate.admit(cfg('nbd://127.0.0.1/x', { nbd_allow: ['0.0.0.0/0'] })),
      notPermitted,
    );
    assert.equal(
      (await gate.admit(cfg('nbd://10.20.0.9/x', { nbd_allow: ['10.20.0.0/24'] }))).length,
      1,
    );
  });

  it('a name that does not resolve is an unreachable server, retried, not a refusal', async () => {
    const gate = new NbdTargetGate({
      allow: NbdTargetPolicy.parse(['0.0.0.0/0']),
      lookup: async () => {
        throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
      },
    });
    await assert.rejects(
      gate.admit(cfg('nbd://gone.example/x')),
      (err: unknown) => err instanceof DiskError && err.reason === 'connection-refused',
    );
  });
});

describe('both connectors ask the gate before connecting', () => {
  let server: Server;
  let port = 0;
  let connections = 0;
  before(async () => {
    server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const deny = () => new NbdTargetGate({ allow: NbdTargetPolicy.parse(['10.0.0.0/8']) });
  const signal = new AbortController().signal;

  it('native: refused → no connection; allowed → the listener sees one (the control)', async () => {
    const before = connections;
    for (const url of [`nbd://127.0.0.1:${port}/x`, `nbd://localhost:${port}/x`])
      await assert.rejects(
        connectNative({ config: cfg(url), configName: 'c.nbd', logger: log, signal, gate: deny() }),
        notPermitted,
      );
    assert.equal(connections, before, 'no connection to a refused target');
    const allow = new NbdTargetGate({ allow: NbdTargetPolicy.parse([`127.0.0.1:${port}`]) });
    await assert.rejects(
      connectNative({
        config: cfg(`nbd://127.0.0.1:${port}/x`),
        configName: 'c.nbd',
        logger: log,
        signal,
        gate: allow,
        connectTimeoutMs: 2000,
      }),
      (err: unknown) => err instanceof DiskError && !notPermitted(err),
    );
    assert.equal(connections, before + 1, 'the listener does see an allowed connect');
  });

  it('guestfs: refused → rejected before the appliance environment is even prepared', async () => {
    const before = connections;
    const guestfs = createGuestfsConnector({
      workDir: '/nonexistent/never-created',
      logger: log,
      metrics: createDataplaneMetrics(undefined, false),
      kvm: 'off',
      tcgCacheMiB: 0,
      memsizeMiB: 256,
      launchTimeoutMs: 1000,
      commandTimeoutMs: 1000,
      chunkBytes: 1 << 20,
      readAhead: 1,
      refreshAfterMs: 1000,
      gate: deny(),
    });
    await assert.rejects(
      guestfs.connect({
        config: cfg(`nbd://127.0.0.1:${port}/x`),
        configName: 'c.nbd',
        logger: log,
        signal,
      }),
      notPermitted,
    );
    assert.equal(guestfs.kvmAvailable, undefined, 'nothing was prepared or launched');
    assert.equal(connections, before);
  });
});
