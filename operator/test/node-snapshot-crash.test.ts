/**
 * The node's snapshot copy under real crashes: a process replacing a large snapshot in a
 * loop is SIGKILLed at random moments, and what it leaves must load as one whole version
 * (the unit test, operator/src/sync/node-snapshot.test.ts, interrupts each step instead).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_SNAPSHOT_FILE, NodeSnapshotStore } from '../src/sync/node-snapshot.ts';

function withDir(fn: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rtftp-node-snapshot-kill-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  'SIGKILL at random moments while replacing a large snapshot never leaves a torn one',
  withDir(async (dir) => {
    // A real process, killed for real: versions of ~2 MB, saved in a loop until killed.
    const module = fileURLToPath(new URL('../src/sync/node-snapshot.ts', import.meta.url));
    const script = `
    import { NodeSnapshotStore } from ${JSON.stringify(module)};
    const store = new NodeSnapshotStore(${JSON.stringify(dir)});
    const start = Number(process.argv[1]);
    for (let n = start; ; n++) {
      const files = {};
      for (let i = 0; i < 12000; i++) files['10.2.' + (i >> 8) + '.' + (i & 255) + '.nbd'] = 'v' + n + '-' + i + '-'.repeat(150) + '\\n';
      await store.save({ namespace: 'rtftp', resourceVersions: { 'rtftp-configs-00': String(n) }, syncedAt: new Date(n * 1000).toISOString(), files });
      process.stdout.write('saved ' + n + '\\n');
    }`;
    let next = 1;
    let kills = 0;
    for (let round = 0; round < 8; round++) {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script, String(next)],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise((r) => child.once('exit', r));
      try {
        // Wait for the first save of this round, then kill at a random point of a later one.
        while (!out.includes(`saved ${next}`) && child.exitCode === null)
          await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, Math.random() * 400));
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      kills++;
      const saved = [...out.matchAll(/saved (\d+)/g)].map((m) => Number(m[1]));
      const last = Math.max(...saved);
      const loaded = await new NodeSnapshotStore(dir).load();
      assert.ok(loaded.ok, `round ${round}: ${JSON.stringify(loaded)}`);
      const n = Number(loaded.snapshot.resourceVersions['rtftp-configs-00']);
      // The last save it reported, or the one it was in the middle of (renamed, not yet reported).
      assert.ok(
        n === last || n === last + 1,
        `round ${round}: read version ${n}, last saved ${last}`,
      );
      assert.equal(Object.keys(loaded.snapshot.files).length, 12000);
      assert.ok(Object.values(loaded.snapshot.files).every((t) => t.startsWith(`v${n}-`)));
      assert.deepEqual(readdirSync(dir), [NODE_SNAPSHOT_FILE]);
      next = n + 1;
    }
    assert.equal(kills, 8);
    // The file on disk is the format, not an accident of the test.
    assert.match(
      readFileSync(join(dir, NODE_SNAPSHOT_FILE), 'utf8'),
      /^\{"format":1,"sha256":"[0-9a-f]{64}"\}\n/,
    );
  }),
);
