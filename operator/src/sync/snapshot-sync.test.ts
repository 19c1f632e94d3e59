import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createOperatorMetrics } from '../metrics.ts';
import { ConfigDirWriter } from './config-dir-writer.ts';
import { NodeSnapshotStore, nodeFs, type SnapshotFs } from './node-snapshot.ts';
import { SNAPSHOT_MARKER, parseSnapshotMarker } from '../../../common/src/snapshot-marker.ts';
import { SnapshotSync } from './snapshot-sync.ts';

const log = pino({ level: 'silent' });

interface Harness {
  configs: string;
  nodeDir: string;
  make(fs?: SnapshotFs, namespace?: string): Promise<SnapshotSync>;
  marker(): Record<string, unknown> | null;
  file(name: string): string | null;
}

function withHarness(fn: (h: Harness) => Promise<void>) {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), 'rtftp-snapshot-sync-'));
    const configs = join(root, 'configs');
    const nodeDir = join(root, 'node');
    mkdirSync(configs);
    mkdirSync(nodeDir);
    const h: Harness = {
      configs,
      nodeDir,
      async make(fs, namespace = 'rtftp') {
        const writer = new ConfigDirWriter(configs, log);
        await writer.init();
        return new SnapshotSync({
          writer,
          store: new NodeSnapshotStore(nodeDir, fs),
          namespace,
          log,
          metrics: createOperatorMetrics(new Registry(), false, 'sync'),
        });
      },
      marker() {
        const p = join(configs, SNAPSHOT_MARKER);
        return existsSync(p)
          ? (JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>)
          : null;
      },
      file(name) {
        const p = join(configs, name);
        return existsSync(p) ? readFileSync(p, 'utf8') : null;
      },
    };
    try {
      await fn(h);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

const listing = (rv: string, text: string) => ({
  files: new Map([['10.0.0.1.nbd', text]]),
  resourceVersions: { 'rtftp-configs-00': rv },
});

test(
  'a first start with nothing on the node writes no marker; the API listing then writes configs, the node copy and a marker',
  withHarness(async (h) => {
    const sync = await h.make();
    await sync.restore();
    assert.equal(sync.served, undefined);
    assert.equal(h.marker(), null, 'no marker: the dataplane stays silent');
    assert.equal(sync.nodeCopyState, 'none on this node yet');

    await sync.applyApi(listing('5', 'one\n'));
    assert.equal(h.file('10.0.0.1.nbd'), 'one\n');
    const marker = h.marker()!;
    const parsed = parseSnapshotMarker(JSON.stringify(marker));
    assert.ok(parsed.ok && parsed.marker.complete, JSON.stringify(parsed));
    assert.equal(parsed.marker.source, 'api');
    assert.deepEqual(parsed.marker.resourceVersions, { 'rtftp-configs-00': '5' });
    const saved = await new NodeSnapshotStore(h.nodeDir).load();
    assert.ok(saved.ok);
    assert.deepEqual(saved.snapshot.files, { '10.0.0.1.nbd': 'one\n' });
    assert.equal(saved.snapshot.syncedAt, marker.syncedAt);
    // The same listing again: nothing to do.
    assert.equal(await sync.applyApi(listing('5', 'one\n')), null);
  }),
);

test(
  "a restart serves the node's copy (source node) before the API; a newer API listing replaces it",
  withHarness(async (h) => {
    const first = await h.make();
    await first.applyApi(listing('5', 'one\n'));
    const takenAt = h.marker()!.syncedAt;
    // A new pod: the emptyDir is new, the node's copy is what was there.
    rmSync(h.configs, { recursive: true });
    mkdirSync(h.configs);
    const second = await h.make();
    await second.restore();
    assert.equal(h.file('10.0.0.1.nbd'), 'one\n');
    assert.deepEqual(h.marker(), {
      complete: true,
      source: 'node',
      resourceVersions: { 'rtftp-configs-00': '5' },
      syncedAt: takenAt,
    });
    // The API says there is newer: it replaces the node's, on the node too.
    await second.applyApi(listing('9', 'two\n'));
    assert.equal(h.file('10.0.0.1.nbd'), 'two\n');
    assert.equal(h.marker()!.source, 'api');
    const saved = await new NodeSnapshotStore(h.nodeDir).load();
    assert.ok(saved.ok);
    assert.deepEqual(saved.snapshot.resourceVersions, { 'rtftp-configs-00': '9' });
    // The API listing the node's own versions: only the source changes (no node write).
    const third = await h.make();
    await third.restore();
    await third.applyApi(listing('9', 'two\n'));
    assert.equal(h.marker()!.source, 'api');
  }),
);

test(
  "a copy from another namespace is not restored (another install's configs)",
  withHarness(async (h) => {
    await (await h.make(undefined, 'elsewhere')).applyApi(listing('5', 'theirs\n'));
    rmSync(h.configs, { recursive: true });
    mkdirSync(h.configs);
    const sync = await h.make(undefined, 'rtftp');
    await sync.restore();
    assert.equal(h.marker(), null);
    assert.equal(h.file('10.0.0.1.nbd'), null);
    assert.match(sync.nodeCopyState, /namespace elsewhere/);
  }),
);

test(
  'a node copy that cannot be written does not stop the API snapshot from being served',
  withHarness(async (h) => {
    const broken: SnapshotFs = {
      ...nodeFs,
      create: async () => {
        throw Object.assign(new Error('read-only file system'), { code: 'EROFS' });
      },
    };
    const sync = await h.make(broken);
    await sync.applyApi(listing('5', 'one\n'));
    assert.equal(h.file('10.0.0.1.nbd'), 'one\n');
    assert.equal(h.marker()!.source, 'api');
    const saved = await new NodeSnapshotStore(h.nodeDir).load();
    assert.ok(!saved.ok && saved.missing);
  }),
);
