import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, mkdtemp, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createDataplaneMetrics } from '../metrics.ts';
import { NbdConfigWatcher } from './nbd-config-watcher.ts';

function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

const config = (port: number) =>
  JSON.stringify({
    url: `nbd://127.0.0.1:${port}/disk`,
    mounts: [{ partition: 2, mountpoint: '/' }],
    tftp_root: '/boot',
  });

function withTimeout<T>(p: Promise<T>, ms = 3000): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`no event within ${ms} ms`)), ms)),
  ]);
}

describe('NbdConfigWatcher', () => {
  let dir: string;
  let watcher: NbdConfigWatcher;
  const { logger, lines } = captureLogger();
  const metrics = createDataplaneMetrics(undefined, false);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rtftp-watch-'));
    await writeFile(join(dir, '10.0.0.1.nbd'), config(1001));
    await writeFile(join(dir, '10.0.0.2.nbd'), '{"url": 5}');
    await writeFile(join(dir, '010.0.0.3.nbd'), config(1003)); // not a canonical IP: ignored
    await writeFile(join(dir, 'notes.txt'), 'hello');
    watcher = new NbdConfigWatcher({
      dir,
      logger,
      metrics,
      rescanIntervalMs: 60_000,
      debounceMs: 20,
      settleMs: 0,
    });
    await watcher.start();
  });
  after(async () => {
    watcher.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('knows the configs present at start and reports the invalid one naming file and field', async () => {
    assert.equal(watcher.configOf('10.0.0.1')?.endpoint.transport, 'tcp');
    assert.equal(watcher.configOf('10.0.0.2'), undefined);
    const st = watcher.status();
    assert.deepEqual(
      st.map((s) => [s.file, s.state]),
      [
        ['10.0.0.1.nbd', 'valid'],
        ['10.0.0.2.nbd', 'invalid'],
      ],
    );
    const rejected = lines.filter((l) => l.msg === 'NBD config rejected');
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0]!.file, '10.0.0.2.nbd');
    assert.equal(rejected[0]!.field, 'url');
    assert.match(String(rejected[0]!.reason), /url: must be a string; mounts: missing/);
    assert.equal((await metrics.nbdConfigErrors.get()).values[0]?.value, 1);
  });

  it('reports an invalid file once per version, not once per rescan', async () => {
    await watcher.rescan();
    await watcher.rescan();
    assert.equal((await metrics.nbdConfigErrors.get()).values[0]?.value, 1);
    await writeFile(join(dir, '10.0.0.2.nbd'), '{not json');
    await watcher.rescan();
    assert.equal((await metrics.nbdConfigErrors.get()).values[0]?.value, 2);
    const last = lines.filter((l) => l.msg === 'NBD config rejected').at(-1)!;
    assert.match(String(last.reason), /not valid JSON/);
  });

  it('emits added when a file appears and becomes valid', async () => {
    const added = once(watcher, 'added');
    await writeFile(join(dir, '10.0.0.2.nbd'), config(1002));
    const [ip, cfg] = await withTimeout(added);
    assert.equal(ip, '10.0.0.2');
    assert.equal(cfg.url, 'nbd://127.0.0.1:1002/disk');
  });

  it('emits changed on an atomic rename over the file, and nothing for a same-config rewrite', async () => {
    const changed = once(watcher, 'changed');
    await writeFile(join(dir, '.tmp-edit'), config(2001));
    await rename(join(dir, '.tmp-edit'), join(dir, '10.0.0.1.nbd'));
    const [ip, cfg, prev] = await withTimeout(changed);
    assert.equal(ip, '10.0.0.1');
    assert.equal(cfg.url, 'nbd://127.0.0.1:2001/disk');
    assert.equal(prev.url, 'nbd://127.0.0.1:1001/disk');
    let extra = 0;
    const count = () => extra++;
    watcher.on('changed', count);
    await writeFile(join(dir, '10.0.0.1.nbd'), config(2001).replace('{', '{ '));
    await watcher.rescan();
    watcher.off('changed', count);
    assert.equal(extra, 0);
  });

  it('emits removed when the file goes, and when a valid file turns invalid', async () => {
    const removed = once(watcher, 'removed');
    await unlink(join(dir, '10.0.0.2.nbd'));
    assert.equal((await withTimeout(removed))[0], '10.0.0.2');
    const removed2 = once(watcher, 'removed');
    await writeFile(
      join(dir, '10.0.0.1.nbd'),
      '{"url": "http://x/", "mounts": [], "tftp_root": "/"}',
    );
    assert.equal((await withTimeout(removed2))[0], '10.0.0.1');
    assert.equal(watcher.status().find((s) => s.clientIp === '10.0.0.1')?.state, 'invalid');
  });

  it('follows a ConfigMap-style ..data symlink swap', async () => {
    const v1 = join(dir, '..2026_v1');
    await mkdir(v1);
    await writeFile(join(v1, '10.0.0.9.nbd'), config(9001));
    await symlink('..2026_v1', join(dir, '..data'));
    const added = once(watcher, 'added');
    await symlink('..data/10.0.0.9.nbd', join(dir, '10.0.0.9.nbd'));
    assert.equal((await withTimeout(added))[1].url, 'nbd://127.0.0.1:9001/disk');

    const v2 = join(dir, '..2026_v2');
    await mkdir(v2);
    await writeFile(join(v2, '10.0.0.9.nbd'), config(9002));
    const changed = once(watcher, 'changed');
    await symlink('..2026_v2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(v1, { recursive: true });
    const [ip, cfg] = await withTimeout(changed);
    assert.equal(ip, '10.0.0.9');
    assert.equal(cfg.url, 'nbd://127.0.0.1:9002/disk');
  });

  it('reports a missing config directory and starts anyway', async () => {
    const other = new NbdConfigWatcher({
      dir: join(dir, 'missing'),
      logger,
      metrics,
      rescanIntervalMs: 60_000,
    });
    await other.start();
    other.stop();
    assert.deepEqual(other.status(), []);
    assert.ok(lines.some((l) => l.msg === 'Config directory unreadable'));
  });
});

describe('NbdConfigWatcher timing', () => {
  const metrics = createDataplaneMetrics(undefined, false);
  let dir: string;
  const watchers: NbdConfigWatcher[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rtftp-watch-timing-'));
  });
  after(async () => {
    for (const w of watchers) w.stop();
    await rm(dir, { recursive: true, force: true });
  });
  async function startWatcher(sub: string, opts: { debounceMs?: number; settleMs?: number }) {
    const { logger, lines } = captureLogger();
    await mkdir(join(dir, sub));
    const w = new NbdConfigWatcher({
      dir: join(dir, sub),
      logger,
      metrics,
      rescanIntervalMs: 60_000,
      ...opts,
    });
    watchers.push(w);
    await w.start();
    return { w, lines, path: (f: string) => join(dir, sub, f) };
  }

  it('acts on the first event at once, not after the debounce window', async () => {
    const { w, path } = await startWatcher('leading', { debounceMs: 30_000 });
    const added = once(w, 'added');
    await writeFile(path('10.1.0.1.nbd'), config(3001));
    // Without a leading edge nothing would happen for 30 s.
    const [ip] = await withTimeout(added, 5000);
    assert.equal(ip, '10.1.0.1');
  });

  it('keeps the previous config while a file is caught mid-write, then takes the new one', async () => {
    const { w, lines, path } = await startWatcher('settle', { debounceMs: 10, settleMs: 400 });
    const added = once(w, 'added');
    await writeFile(path('10.1.0.2.nbd'), config(4001));
    await withTimeout(added);
    let removed = 0;
    w.on('removed', () => removed++);
    // A writer that truncates and writes in place, seen between its two writes.
    await writeFile(path('10.1.0.2.nbd'), config(4002).slice(0, 20));
    await w.rescan();
    assert.equal(w.configOf('10.1.0.2')?.url, 'nbd://127.0.0.1:4001/disk');
    const changed = once(w, 'changed');
    await writeFile(path('10.1.0.2.nbd'), config(4002));
    assert.equal((await withTimeout(changed))[1].url, 'nbd://127.0.0.1:4002/disk');
    assert.equal(removed, 0);
    assert.equal(lines.filter((l) => l.msg === 'NBD config rejected').length, 0);
  });

  it('reports a file that stays broken once the settle window has passed', async () => {
    const { w, lines, path } = await startWatcher('broken', { debounceMs: 10, settleMs: 200 });
    const added = once(w, 'added');
    await writeFile(path('10.1.0.3.nbd'), config(5001));
    await withTimeout(added);
    const removed = once(w, 'removed');
    await writeFile(path('10.1.0.3.nbd'), '{"url": "nbd://127.0.0.1:5001/disk", ');
    assert.equal((await withTimeout(removed))[0], '10.1.0.3');
    const rejected = lines.filter((l) => l.msg === 'NBD config rejected');
    assert.equal(rejected.length, 1);
    assert.match(String(rejected[0]!.reason), /not valid JSON/);
  });

  it('reports a broken file whose modification time is in the future at once', async () => {
    const { w, lines, path } = await startWatcher('future', { debounceMs: 10, settleMs: 60_000 });
    await writeFile(path('10.1.0.4.nbd'), '{"url": ');
    const hourAhead = new Date(Date.now() + 3600_000);
    await utimes(path('10.1.0.4.nbd'), hourAhead, hourAhead);
    await w.rescan();
    assert.equal(w.status().find((s) => s.clientIp === '10.1.0.4')?.state, 'invalid');
    assert.equal(lines.filter((l) => l.msg === 'NBD config rejected').length, 1);
  });
});
