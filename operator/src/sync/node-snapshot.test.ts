import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  NODE_SNAPSHOT_FILE,
  NodeSnapshotStore,
  decodeNodeSnapshot,
  encodeNodeSnapshot,
  nodeFs,
  type NodeSnapshot,
  type SnapshotFs,
} from './node-snapshot.ts';

function withDir(fn: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rtftp-node-snapshot-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** Version `n` of a site: its own resourceVersions, time and configs. */
function version(n: number, clients = 50): NodeSnapshot {
  const files: Record<string, string> = {};
  for (let i = 0; i < clients; i++)
    files[`10.1.${i >> 8}.${i & 255}.nbd`] =
      `{"url":"nbd://10.0.0.1/v${n}-c${i}","mounts":[{"partition":1,"mountpoint":"/"}],"tftp_root":"/boot"}\n`;
  return {
    namespace: 'rtftp',
    resourceVersions: {
      'rtftp-configs-00': String(1000 + n),
      'rtftp-configs-01': String(2000 + n),
    },
    syncedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
    files,
  };
}

test('a snapshot reads back exactly as written', () => {
  const s = version(3);
  assert.deepEqual(decodeNodeSnapshot(encodeNodeSnapshot(s)), { ok: true, snapshot: s });
});

test('a truncated, altered or foreign snapshot is refused with the reason, never half used', () => {
  const text = encodeNodeSnapshot(version(1));
  const cases: [string, RegExp][] = [
    [text.slice(0, text.length - 40), /checksum mismatch/],
    [text.replace('v1-c7', 'v1-c8'), /checksum mismatch/],
    [text.slice(0, 20), /no header line|header is not JSON/],
    ['{"format":2,"sha256":"x"}\n{}', /not format 1/],
    ['', /no header line/],
  ];
  for (const [bad, reason] of cases) {
    const r = decodeNodeSnapshot(bad);
    assert.ok(!r.ok && reason.test(r.reason), `${JSON.stringify(r)} for ${bad.slice(0, 30)}`);
  }
  // A whole, well-formed file whose names are not configs: refused too (it would be served).
  const evil = encodeNodeSnapshot({ ...version(1), files: { '../../etc/passwd': 'x' } });
  const r = decodeNodeSnapshot(evil);
  assert.ok(!r.ok && /is not <ip>\.nbd/.test(r.reason));
});

test(
  'load: missing, unreadable and corrupt snapshots are told apart',
  withDir(async (dir) => {
    const store = new NodeSnapshotStore(dir);
    assert.deepEqual(await store.load(), {
      ok: false,
      missing: true,
      reason: 'none on this node yet',
    });
    writeFileSync(store.path, encodeNodeSnapshot(version(1)).slice(0, 100));
    const corrupt = await store.load();
    assert.ok(!corrupt.ok && !corrupt.missing && /checksum/.test(corrupt.reason));
    const gone = new NodeSnapshotStore(join(dir, 'nope'));
    const r = await gone.load();
    assert.ok(!r.ok && !r.missing && /ENOENT/.test(r.reason));
  }),
);

class Crash extends Error {}

/**
 * The real file system, with a crash after `at` calls: that call and every later one
 * fail (a dead process does nothing more, not even its cleanup). A write that crashes
 * leaves half its bytes, as a torn write would.
 */
function crashingFs(at: number): { fs: SnapshotFs; calls: () => number } {
  let calls = 0;
  const step = () => {
    if (++calls > at) throw new Crash(`crashed at call ${calls}`);
  };
  const fs: SnapshotFs = {
    async create(path) {
      step();
      const h = await nodeFs.create(path);
      return {
        async write(data) {
          if (calls + 1 > at) {
            await h.write(data.subarray(0, data.length >> 1));
            step();
          }
          step();
          await h.write(data);
        },
        async sync() {
          step();
          await h.sync();
        },
        async close() {
          // A dead process's descriptors are closed by the kernel: close the real one anyway.
          try {
            step();
          } finally {
            await h.close();
          }
        },
      };
    },
    async rename(from, to) {
      step();
      await nodeFs.rename(from, to);
    },
    async syncDir(dir) {
      step();
      await nodeFs.syncDir(dir);
    },
    readFile: (p, max) => nodeFs.readFile(p, max),
    list: (d) => nodeFs.list(d),
    async remove(path) {
      step();
      await nodeFs.remove(path);
    },
  };
  return { fs, calls: () => calls };
}

test(
  'a replacement interrupted at every step leaves the old snapshot or the new one, never a mix',
  withDir(async (dir) => {
    const old = version(1);
    const next = version(2);
    // How many file system calls one replacement makes.
    const probe = crashingFs(Infinity);
    await new NodeSnapshotStore(dir, probe.fs).save(old);
    const steps = probe.calls();
    assert.ok(steps >= 6, `create, write, sync, close, rename, sync dir: ${steps}`);
    const seen = new Set<string>();
    for (let at = 0; at <= steps; at++) {
      await new NodeSnapshotStore(dir).save(old);
      const outcome = await new NodeSnapshotStore(dir, crashingFs(at).fs).save(next).then(
        () => 'completed',
        (err: unknown) => {
          if (!(err instanceof Crash)) throw err;
          return 'crashed';
        },
      );
      assert.equal(outcome, at < steps ? 'crashed' : 'completed');
      // The restarted sidecar: a fresh store on the real file system.
      const loaded = await new NodeSnapshotStore(dir).load();
      assert.ok(loaded.ok, `crash at step ${at}: ${JSON.stringify(loaded)}`);
      const which = JSON.stringify(loaded.snapshot) === JSON.stringify(old) ? 'old' : 'new';
      if (which === 'new') assert.deepEqual(loaded.snapshot, next, `crash at step ${at}`);
      seen.add(which);
      // Whatever the crash left behind (a temp file, half written) is gone after the load.
      assert.deepEqual(readdirSync(dir), [NODE_SNAPSHOT_FILE], `crash at step ${at}`);
    }
    // Both outcomes happen: before the rename the old one, after it the new one.
    assert.deepEqual([...seen].sort(), ['new', 'old']);
  }),
);

test(
  'a save that fails (disk full) keeps the old snapshot and leaves no temp file',
  withDir(async (dir) => {
    await new NodeSnapshotStore(dir).save(version(1));
    const full: SnapshotFs = {
      ...nodeFs,
      async create(path) {
        const h = await nodeFs.create(path);
        return {
          ...h,
          write: async () => {
            throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
          },
        };
      },
    };
    await assert.rejects(new NodeSnapshotStore(dir, full).save(version(2)), /no space/);
    assert.deepEqual(readdirSync(dir), [NODE_SNAPSHOT_FILE]);
    const loaded = await new NodeSnapshotStore(dir).load();
    assert.ok(loaded.ok);
    assert.deepEqual(loaded.snapshot, version(1));
  }),
);
