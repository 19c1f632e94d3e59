/**
 * The registry's lifecycle rules (prefetch, lazy wait, bound, backoff, idle, LRU, config
 * change, dead session) with in-memory disks, so they run in milliseconds; the same
 * paths against real guestfish appliances are in dataplane/test/nbd-*.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { parseNbdConfig } from '../../../../common/src/nbd-config.ts';
import type { NbdConfig } from '../../../../common/src/nbd-config.ts';
import { createDataplaneMetrics } from '../../metrics.ts';
import { DiskError } from '../disk-session.ts';
import type { DiskConnector, DiskOpenResult, DiskSession } from '../disk-session.ts';
import { DiskRegistry } from './disk-registry.ts';
import { NbdSource } from './nbd-source.ts';

class MemoryDisk implements DiskSession {
  readonly backend = 'guestfs' as const;
  healthy = true;
  closed = false;
  constructor(readonly files: Record<string, string>) {}
  async open(path: string): Promise<DiskOpenResult> {
    const target = this.files[path];
    if (target === undefined) return { status: 'not-found' };
    const [resolved, text] = target.startsWith('->') ? [target.slice(2), 'x'] : [path, target];
    const data = Buffer.from(text);
    return {
      status: 'found',
      path: resolved,
      file: {
        size: data.length,
        read: async (buf, off, len, pos) =>
          data.copy(buf, off, pos, Math.min(data.length, pos + len)),
        close: async () => undefined,
      },
    };
  }
  async close() {
    this.closed = true;
  }
}

function fakeConnector(opts: { delayMs?: number; fail?: () => boolean } = {}) {
  const disks: MemoryDisk[] = [];
  const connect: DiskConnector = async ({ signal }) => {
    await new Promise((r) => setTimeout(r, opts.delayMs ?? 0));
    if (signal.aborted) throw new DiskError('RTFTP_ERR_NBD_ABORTED', 'other', 'aborted');
    if (opts.fail?.())
      throw new DiskError('RTFTP_ERR_NBD_CONNECTION_REFUSED', 'connection-refused', 'refused');
    const d = new MemoryDisk({ '/boot/k': 'kernel', '/boot/esc': '->/etc/shadow' });
    disks.push(d);
    return d;
  };
  return { connect, disks };
}

function cfg(extra: Record<string, unknown> = {}, port = 1): NbdConfig {
  const r = parseNbdConfig(
    JSON.stringify({
      url: `nbd://127.0.0.1:${port}/x`,
      mounts: [{ partition: 1, mountpoint: '/' }],
      tftp_root: '/boot',
      ...extra,
    }),
  );
  assert.ok(r.ok);
  return r.config;
}

function setup(
  connect: DiskConnector,
  more: Partial<ConstructorParameters<typeof DiskRegistry>[0]> = {},
) {
  const metrics = createDataplaneMetrics(undefined, false);
  const registry = new DiskRegistry({
    connectors: { guestfs: connect },
    logger: pino({ level: 'silent' }),
    metrics,
    idleTimeoutMs: 60_000,
    maxSessions: 4,
    retryBaseMs: 200,
    retryMaxMs: 400,
    ...more,
  });
  return { registry, metrics, source: new NbdSource(registry, 1000) };
}

const req = (clientIp: string, name: string) => ({
  clientIp,
  components: name.split('/'),
  raw: name,
});
const never = new AbortController().signal;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readAll(source: NbdSource, ip: string, name: string) {
  const r = await source.open(req(ip, name), never);
  if (r.status !== 'found') return r.status;
  const buf = Buffer.alloc(r.file.size);
  await r.file.read(buf, 0, buf.length, 0);
  await r.file.close();
  return buf.toString();
}

describe('DiskRegistry + NbdSource', () => {
  it('connects a prefetch config before any request, and serves under tftp_root', async () => {
    const c = fakeConnector();
    const { registry, source } = setup(c.connect);
    registry.setConfig('10.0.0.1', cfg(), '10.0.0.1.nbd');
    await sleep(20);
    assert.equal(c.disks.length, 1);
    assert.equal(registry.status()[0]?.state, 'connected');
    assert.equal(await readAll(source, '10.0.0.1', 'k'), 'kernel');
    assert.equal(await readAll(source, '10.0.0.1', 'nope'), 'not-found');
    assert.equal(await readAll(source, '10.0.0.2', 'k'), 'not-found', 'no config: not mine');
    await registry.stop();
    assert.ok(c.disks[0]!.closed);
  });

  it('refuses a symlink that resolves outside tftp_root', async () => {
    const { registry, source } = setup(fakeConnector().connect);
    registry.setConfig('10.0.0.1', cfg(), 'f');
    const r = await source.open(req('10.0.0.1', 'esc'), never);
    assert.deepEqual(r, { status: 'refused', reason: 'symlink leaves tftp_root' });
    await registry.stop();
  });

  it('connects a lazy config on the first request, which waits for it', async () => {
    const c = fakeConnector({ delayMs: 100 });
    const { registry, source } = setup(c.connect);
    registry.setConfig('10.0.0.1', cfg({ prefetch: false }), 'f');
    await sleep(150);
    assert.equal(c.disks.length, 0);
    const started = Date.now();
    const [a, b] = await Promise.all([
      readAll(source, '10.0.0.1', 'k'),
      readAll(source, '10.0.0.1', 'k'),
    ]);
    assert.deepEqual([a, b], ['kernel', 'kernel']);
    assert.ok(Date.now() - started >= 90);
    assert.equal(c.disks.length, 1, 'two waiting requests, one connect');
    await registry.stop();
  });

  it('answers "disk not ready" past the wait bound, without delaying other clients', async () => {
    const slow = fakeConnector({ delayMs: 400 });
    const { registry } = setup(slow.connect);
    const source = new NbdSource(registry, 50);
    registry.setConfig('10.0.0.1', cfg({ prefetch: false }), 'f');
    const started = Date.now();
    const [r, other] = await Promise.all([
      source.open(req('10.0.0.1', 'k'), never),
      source.open(req('10.0.0.2', 'k'), never),
    ]);
    assert.deepEqual(r, { status: 'not-ready' });
    assert.equal(other.status, 'not-found');
    assert.ok(Date.now() - started < 300);
    await registry.stop();
  });

  it('falls through while the server is down, backs off, and uses the disk once it is back', async () => {
    let down = true;
    let attempts = 0;
    const c = fakeConnector({ fail: () => (attempts++, down) });
    const { registry, source, metrics } = setup(c.connect);
    registry.setConfig('10.0.0.1', cfg(), 'f');
    await sleep(20);
    const r = await source.open(req('10.0.0.1', 'k'), never);
    assert.equal(r.status, 'unavailable');
    assert.match((r as { reason: string }).reason, /refused \(retry in/);
    assert.equal(attempts, 1, 'no hot loop: the request did not retry during backoff');
    assert.equal(registry.status()[0]?.lastError?.reason, 'connection-refused');
    const failures = await metrics.nbdLaunchFailures.get();
    assert.equal(failures.values[0]?.labels.reason, 'connection-refused');
    down = false;
    await sleep(300); // prefetch config: retried in the background after the backoff
    assert.equal(await readAll(source, '10.0.0.1', 'k'), 'kernel');
    assert.ok(attempts >= 2 && attempts <= 3, `attempts ${attempts}`);
    await registry.stop();
  });

  it('a request after the server came back reconnects at once, not after the backoff', async () => {
    let down = true;
    let attempts = 0;
    const c = fakeConnector({ fail: () => (attempts++, down) });
    const { registry, source } = setup(c.connect, { retryBaseMs: 60_000, retryMaxMs: 60_000 });
    registry.setConfig('10.0.0.1', cfg(), 'f');
    await sleep(20);
    assert.equal(registry.status()[0]?.state, 'failed');
    down = false;
    // Within the rate limit the request still falls through without a new attempt...
    assert.equal((await source.open(req('10.0.0.1', 'k'), never)).status, 'unavailable');
    assert.equal(attempts, 1);
    // ...past it (2 s), a request tries the disk again and is served from it.
    await sleep(2100);
    assert.equal(await readAll(source, '10.0.0.1', 'k'), 'kernel');
    assert.equal(attempts, 2);
    await registry.stop();
  });

  it('closes an idle disk, and connects again on the next request', async () => {
    const c = fakeConnector();
    const { registry, source } = setup(c.connect, { idleTimeoutMs: 200 });
    registry.setConfig('10.0.0.1', cfg(), 'f');
    await sleep(20);
    const open = await source.open(req('10.0.0.1', 'k'), never);
    await sleep(500);
    assert.equal(c.disks[0]!.closed, false, 'an open file keeps the disk');
    if (open.status === 'found') await open.file.close();
    await sleep(500);
    assert.equal(c.disks[0]!.closed, true);
    assert.equal(registry.status()[0]?.state, 'disconnected');
    assert.equal(await readAll(source, '10.0.0.1', 'k'), 'kernel');
    assert.equal(c.disks.length, 2);
    await registry.stop();
  });

  it('reconnects when the config changes and closes the old disk after its transfer', async () => {
    const c = fakeConnector();
    const { registry, source } = setup(c.connect);
    registry.setConfig('10.0.0.1', cfg(), 'f');
    await sleep(20);
    const open = await source.open(req('10.0.0.1', 'k'), never);
    registry.setConfig('10.0.0.1', cfg({}, 2), 'f');
    await sleep(20);
    assert.equal(c.disks.length, 2);
    assert.equal(c.disks[0]!.closed, false);
    if (open.status === 'found') await open.file.close();
    await sleep(10);
    assert.equal(c.disks[0]!.closed, true);
    registry.removeConfig('10.0.0.1');
    await sleep(10);
    assert.equal(c.disks[1]!.closed, true);
    assert.equal(await readAll(source, '10.0.0.1', 'k'), 'not-found');
    await registry.stop();
  });

  it('closes the least recently used idle disk to stay within max sessions', async () => {
    const c = fakeConnector();
    const { registry, source } = setup(c.connect, { maxSessions: 2 });
    for (const ip of ['10.0.0.1', '10.0.0.2']) registry.setConfig(ip, cfg({ prefetch: false }), ip);
    registry.setConfig('10.0.0.3', cfg({ prefetch: false }), '10.0.0.3');
    await readAll(source, '10.0.0.1', 'k');
    await sleep(5);
    await readAll(source, '10.0.0.2', 'k');
    await readAll(source, '10.0.0.3', 'k');
    assert.deepEqual(
      c.disks.map((d) => d.closed),
      [true, false, false],
    );
    await registry.stop();
  });

  it('every allowed session in use: a request waits for room, and gets its own disk once a file closes', async () => {
    const c = fakeConnector();
    const { registry, source } = setup(c.connect, { maxSessions: 1 });
    for (const ip of ['10.0.0.1', '10.0.0.2']) registry.setConfig(ip, cfg({ prefetch: false }), ip);
    const held = await source.open(req('10.0.0.1', 'k'), never);
    assert.equal(held.status, 'found');
    const waiting = readAll(source, '10.0.0.2', 'k');
    await sleep(100);
    assert.equal(c.disks.length, 1, 'no second session while the first is in use');
    if (held.status === 'found') await held.file.close();
    assert.equal(await waiting, 'kernel', 'served from its own disk, not the rest of the view');
    assert.deepEqual(
      c.disks.map((d) => d.closed),
      [true, false],
    );
    await registry.stop();
  });

  it('every allowed session in use past --disk-wait: not-ready (ERROR 0, retry), never the rest of the view', async () => {
    const c = fakeConnector();
    const { registry } = setup(c.connect, { maxSessions: 1 });
    const source = new NbdSource(registry, 150);
    for (const ip of ['10.0.0.1', '10.0.0.2']) registry.setConfig(ip, cfg({ prefetch: false }), ip);
    const held = await source.open(req('10.0.0.1', 'k'), never);
    assert.equal(held.status, 'found');
    assert.equal(await readAll(source, '10.0.0.2', 'k'), 'not-ready');
    assert.equal(c.disks.length, 1);
    if (held.status === 'found') await held.file.close();
    assert.equal(await readAll(source, '10.0.0.2', 'k'), 'kernel', 'room again: served');
    await registry.stop();
  });

  it('a disk acquired but whose file is still opening is not closed to make room', async () => {
    const c = fakeConnector();
    const { registry, source } = setup(c.connect, { maxSessions: 1 });
    for (const ip of ['10.0.0.1', '10.0.0.2']) registry.setConfig(ip, cfg({ prefetch: false }), ip);
    assert.equal(await readAll(source, '10.0.0.1', 'k'), 'kernel');
    // The first disk is connected and idle; its next open is slow.
    const disk = c.disks[0]!;
    const open = disk.open.bind(disk);
    disk.open = async (path) => {
      await sleep(100);
      if (disk.closed) throw new Error('session closed under the open');
      return open(path);
    };
    const first = readAll(source, '10.0.0.1', 'k');
    await sleep(20);
    const second = readAll(source, '10.0.0.2', 'k');
    assert.equal(await first, 'kernel', 'not closed under the open in flight');
    assert.equal(await second, 'kernel', 'and the other client got its room after it');
    assert.equal(c.disks.length, 2);
    await registry.stop();
  });

  it('relaunches a session that died, on the next request', async () => {
    const c = fakeConnector();
    const { registry, source } = setup(c.connect);
    registry.setConfig('10.0.0.1', cfg(), 'f');
    await sleep(20);
    c.disks[0]!.healthy = false;
    assert.equal(await readAll(source, '10.0.0.1', 'k'), 'kernel');
    assert.equal(c.disks.length, 2);
    assert.ok(c.disks[0]!.closed);
    await registry.stop();
  });

  it('picks the backend per config: auto asks canServeNatively', () => {
    const { connect } = fakeConnector();
    const { registry } = setup(connect, {
      connectors: { guestfs: connect, native: connect },
      canServeNatively: (c) => c.endpoint.transport === 'tcp' && c.endpoint.port === 1,
    });
    assert.deepEqual(registry.backendsFor(cfg()), ['native', 'guestfs']);
    assert.deepEqual(registry.backendsFor(cfg({}, 2)), ['guestfs', 'native']);
    assert.deepEqual(registry.backendsFor(cfg({ backend: 'guestfs' })), ['guestfs']);
    void registry.stop();
  });
});
