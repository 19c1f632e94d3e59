/**
 * The budgets' one test table: for each budget, a disk whose contents make one open spend
 * past it, resolved through the native reader's virtual FS, and the error that must name
 * it. Then pacing: budgeted work leaves the event loop to others while it runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BudgetExceededError,
  DEFAULT_OPEN_BUDGET,
  WorkBudget,
  budgetRefusalReason,
} from './budget.ts';
import type { BudgetLimits, BudgetName } from './budget.ts';
import { CachedDisk } from './native/block-cache.ts';
import type { RawDisk } from './native/block-cache.ts';
import { mountFilesystems } from './native/connect-native.ts';
import { buildExt, buildFat12, memoryDisk } from './native/memory-images.ts';
import type { MemoryEntry } from './native/memory-images.ts';

const ROOT_MOUNT = [{ partition: 0, mountpoint: '/' }];

/** An ext image whose directory `loop` is the root itself (a hard link to an ancestor). */
function extWithDirectoryLoop(extra: MemoryEntry[] = []): Buffer {
  const img = buildExt([
    { path: 'loop', dir: true },
    { path: 'file', content: Buffer.from('x') },
    ...extra,
  ]);
  // Root inode (2) is the second of the table at block 5; its first data block holds
  // ".", ".." and then "loop": point that entry back at the root.
  const rootBlock = img.readUInt32LE(5 * 1024 + 128 + 40) * 1024;
  for (let at = 0; at < 1024; at += img.readUInt16LE(rootBlock + at + 4)) {
    const len = img[rootBlock + at + 6]!;
    if (img.toString('latin1', rootBlock + at + 8, rootBlock + at + 8 + len) === 'loop') {
      img.writeUInt32LE(2, rootBlock + at);
      return img;
    }
  }
  throw new Error('no loop entry');
}

/** A raw disk that answers every read after `ms` (a slow NBD server). */
function slowDisk(buf: Buffer, ms: number): RawDisk {
  const raw = memoryDisk(buf);
  const later = <T>(v: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => setTimeout(() => v().then(resolve, reject), ms));
  return {
    size: raw.size,
    read: (o, l) => later(() => raw.read(o, l)),
    readInto: (o, l, d, at) => later(() => raw.readInto(o, l, d, at)),
  };
}

const manyNames = Array.from({ length: 40 }, (_, i) => ({
  path: `big/entry-${i}`,
  content: Buffer.from(String(i)),
}));

interface Row {
  budget: BudgetName;
  what: string;
  image: () => Buffer;
  path: string;
  limits: Partial<BudgetLimits>;
  slowMs?: number;
}

// Limits are scaled down so small in-memory images cross them; the hostile-disk test in
// dataplane/test crosses the defaults with real mkfs-made images.
const TABLE: Row[] = [
  {
    budget: 'symlink-hops',
    what: 'two symlinks pointing at each other',
    image: () =>
      buildExt([
        { path: 'a', symlink: 'b' },
        { path: 'b', symlink: 'a' },
      ]),
    path: '/a',
    limits: {},
  },
  {
    budget: 'directory-entries',
    what: 'a symlink that crosses a big directory again and again (x/../x/../…)',
    image: () =>
      buildExt([
        ...manyNames,
        { path: 'big/x', dir: true },
        { path: 'chain', symlink: `big/${'x/../'.repeat(40)}entry-1` },
      ]),
    path: '/chain',
    limits: { directoryEntries: 500 },
  },
  {
    budget: 'directory-entries',
    what: 'a FAT directory of more entries than the budget, searched for a name it lacks',
    image: () =>
      buildFat12(
        Array.from({ length: 60 }, (_, i) => ({ path: `f${i}`, content: Buffer.from('x') })),
      ),
    path: '/nope',
    limits: { directoryEntries: 30 },
  },
  {
    budget: 'page-reads',
    what: 'a path going round a directory loop (loop/loop/loop/…)',
    image: () => extWithDirectoryLoop(),
    path: `/${'loop/'.repeat(200)}file`,
    limits: { pageReads: 100 },
  },
  {
    budget: 'wall-time',
    what: 'a disk that answers slowly',
    image: () => extWithDirectoryLoop(),
    path: `/${'loop/'.repeat(20)}file`,
    limits: { wallMs: 20 },
    slowMs: 50,
  },
];

for (const row of TABLE) {
  test(`an open past its ${row.budget} budget fails naming it: ${row.what}`, async () => {
    const image = row.image();
    const disk = new CachedDisk(row.slowMs ? slowDisk(image, row.slowMs) : memoryDisk(image));
    const vfs = await mountFilesystems(
      disk,
      ROOT_MOUNT,
      'memory',
      undefined,
      WorkBudget.unlimited().limits,
    );
    const limits = { ...DEFAULT_OPEN_BUDGET, ...row.limits };
    await assert.rejects(vfs.resolve(row.path, disk.begin(limits)), (err: unknown) => {
      assert.ok(err instanceof BudgetExceededError, String(err));
      assert.equal(err.budget, row.budget);
      assert.equal(err.code, 'RTFTP_ERR_OVER_BUDGET');
      assert.equal(err.reason, 'over-budget');
      return true;
    });
    // The same path with the defaults: the small images above are well within them,
    // except for a loop, which no budget lets through.
    const again = await vfs.resolve(row.path, disk.begin()).catch((e: BudgetExceededError) => e);
    if (row.budget === 'symlink-hops')
      assert.equal((again as BudgetExceededError).budget, 'symlink-hops');
    else assert.ok(!(again instanceof Error), `${String(again)}`);
  });
}

test('each budget has one stable refusal reason', () => {
  const names: BudgetName[] = ['page-reads', 'symlink-hops', 'directory-entries', 'wall-time'];
  assert.deepEqual(names.map(budgetRefusalReason), [
    'over budget: page-reads',
    'over budget: symlink-hops',
    'over budget: directory-entries',
    'over budget: wall-time',
  ]);
});

test('an abandoned request stops its open at the next step', async () => {
  const disk = new CachedDisk(memoryDisk(extWithDirectoryLoop()));
  const vfs = await mountFilesystems(disk, ROOT_MOUNT, 'memory');
  const abort = new AbortController();
  abort.abort();
  await assert.rejects(vfs.resolve('/file', disk.begin(DEFAULT_OPEN_BUDGET, abort.signal)), {
    code: 'RTFTP_ERR_OPEN_ABORTED',
  });
});

test('budgeted work yields the event loop to others while it runs, and every open progresses', async () => {
  // 3 opens of about 40,000 cached page reads each, run at once: without pacing, they
  // would resolve as one chain of microtasks and no timer or socket could run meanwhile.
  const disk = new CachedDisk(memoryDisk(extWithDirectoryLoop()));
  const vfs = await mountFilesystems(disk, ROOT_MOUNT, 'memory');
  const path = `/${'loop/'.repeat(2000)}file`;
  let ticks = 0;
  let running = true;
  const tick = () => {
    ticks++;
    if (running) setTimeout(tick, 0);
  };
  setTimeout(tick, 0);
  const started = performance.now();
  const results = await Promise.all(
    [1, 2, 3].map(async () => {
      const unlimited = { epoch: disk.newEpoch(), budget: WorkBudget.unlimited() };
      return (await vfs.resolve(path, unlimited)).status;
    }),
  );
  running = false;
  const ms = performance.now() - started;
  assert.deepEqual(results, ['found', 'found', 'found']);
  // A timer ran again and again during the work: at least every few slices (the bound
  // is loose on purpose: a loaded machine stretches every turn).
  assert.ok(ticks >= 10, `only ${ticks} timer turns in ${ms.toFixed(0)} ms of disk work`);
  console.log(`# ${ticks} timer turns during ${ms.toFixed(0)} ms of budgeted work`);
});
