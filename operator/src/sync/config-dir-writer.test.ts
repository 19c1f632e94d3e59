import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ConfigDirWriter, MANIFEST_NAME } from './config-dir-writer.ts';

const log = pino({ level: 'silent' });

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), 'rtftp-sync-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('writes, rewrites only changed files, and deletes files that left the set', () =>
  withDir(async (dir) => {
    const w = new ConfigDirWriter(dir, log);
    await w.init();
    assert.deepEqual(
      await w.apply(
        new Map([
          ['10.0.0.1.nbd', 'a\n'],
          ['10.0.0.2.nbd', 'b\n'],
        ]),
      ),
      { written: 2, deleted: 0, skipped: 0 },
    );
    assert.deepEqual(
      await w.apply(
        new Map([
          ['10.0.0.1.nbd', 'a\n'],
          ['10.0.0.2.nbd', 'B\n'],
        ]),
      ),
      { written: 1, deleted: 0, skipped: 0 },
    );
    assert.equal(readFileSync(join(dir, '10.0.0.2.nbd'), 'utf8'), 'B\n');
    assert.deepEqual(await w.apply(new Map([['10.0.0.2.nbd', 'B\n']])), {
      written: 0,
      deleted: 1,
      skipped: 0,
    });
    assert.deepEqual(readdirSync(dir).sort(), [MANIFEST_NAME, '10.0.0.2.nbd']);
  }));

test('never touches a file it did not write', () =>
  withDir(async (dir) => {
    writeFileSync(join(dir, '10.0.0.3.nbd'), 'hand-written\n');
    writeFileSync(join(dir, 'notes.txt'), 'keep\n');
    const w = new ConfigDirWriter(dir, log);
    await w.init();
    const r = await w.apply(new Map([['10.0.0.3.nbd', 'operator\n']]));
    assert.equal(r.skipped, 1);
    await w.apply(new Map());
    assert.equal(readFileSync(join(dir, '10.0.0.3.nbd'), 'utf8'), 'hand-written\n');
    assert.ok(existsSync(join(dir, 'notes.txt')));
  }));

test('a restarted writer deletes what its previous run wrote and nobody wants', () =>
  withDir(async (dir) => {
    const first = new ConfigDirWriter(dir, log);
    await first.init();
    await first.apply(
      new Map([
        ['10.0.0.4.nbd', 'x\n'],
        ['10.0.0.5.nbd', 'y\n'],
      ]),
    );
    const second = new ConfigDirWriter(dir, log);
    await second.init();
    assert.deepEqual(await second.apply(new Map([['10.0.0.5.nbd', 'y\n']])), {
      written: 0,
      deleted: 1,
      skipped: 0,
    });
    assert.equal(existsSync(join(dir, '10.0.0.4.nbd')), false);
  }));

test('leaves no temp files behind', () =>
  withDir(async (dir) => {
    const w = new ConfigDirWriter(dir, log);
    await w.init();
    await w.apply(
      new Map(
        Array.from({ length: 50 }, (_, i) => [`10.0.1.${i}.nbd`, `${i}\n`] as [string, string]),
      ),
    );
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.includes('.tmp-')),
      [],
    );
  }));
