/**
 * Hostile disks: random byte changes to valid images, in the regions where metadata
 * lives. Whatever the bytes, mounting, walking the whole tree and reading every file
 * either works or fails with a DiskError, in bounded time — never another exception,
 * never a hang.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DiskError } from '../disk-session.ts';
import { buildExt, buildFat12, writeGpt } from './memory-images.ts';
import type { MemoryEntry } from './memory-images.ts';
import { mountMemory } from './test-mount.ts';
import { readBytes } from './filesystem.ts';

// Generous: the point is "never hangs", on a CI host that may be loaded.
const RUN_DEADLINE_MS = 10_000;
const files: MemoryEntry[] = [
  { path: 'boot/vmlinuz', content: Buffer.alloc(30_000, 1) },
  { path: 'boot/grub/grub.cfg', content: Buffer.from('menuentry') },
  { path: 'a/b/c/d/deep file name.txt', content: Buffer.from('deep') },
  { path: 'link', symlink: 'boot/vmlinuz' },
  { path: 'abs', symlink: '/a/b/c' },
];
const fatFiles = files.filter((f) => f.symlink === undefined);

function gptDisk(): Buffer {
  const fat = buildFat12(fatFiles);
  const ext = buildExt(files, { extents: true });
  const disk = Buffer.alloc(4 * 1024 * 1024);
  writeGpt(disk, [
    { start: 2048, sectors: fat.length / 512 },
    { start: 4096, sectors: ext.length / 512 },
  ]);
  fat.copy(disk, 2048 * 512);
  ext.copy(disk, 4096 * 512);
  return disk;
}

const images = [
  {
    name: 'fat12',
    image: buildFat12(fatFiles),
    mounts: [{ partition: 0, mountpoint: '/' }],
    hot: [0, 8192],
  },
  {
    name: 'ext2',
    image: buildExt(files),
    mounts: [{ partition: 0, mountpoint: '/' }],
    hot: [0, 40 * 1024],
  },
  {
    name: 'ext4',
    image: buildExt(files, { extents: true }),
    mounts: [{ partition: 0, mountpoint: '/' }],
    hot: [0, 40 * 1024],
  },
  {
    name: 'gpt',
    image: gptDisk(),
    mounts: [
      { partition: 2, mountpoint: '/' },
      { partition: 1, mountpoint: '/boot' },
    ],
    hot: [0, 4096 * 512 + 40 * 1024],
  },
];

/** Mounts, walks and reads the head and tail of every file. */
async function exercise(
  image: Buffer,
  mounts: { partition: number; mountpoint: string }[],
): Promise<void> {
  const { vfs, disk } = await mountMemory(image, mounts);
  const ctx = disk.begin();
  for (const e of await vfs.walk(ctx, 10_000)) {
    const r = await vfs.resolve(e.path, ctx);
    if (r.status !== 'found' || r.node.kind !== 'file') continue;
    await readBytes(r.fs, r.node, 0, 65536, ctx);
    if (r.node.size > 65536) await readBytes(r.fs, r.node, r.node.size - 65536, 65536, ctx);
  }
}

const FUZZ_SEED = Number(process.env.RTFTP_FUZZ_SEED ?? 20261126);

for (const { name, image, mounts, hot } of images) {
  test(`a mutated ${name} image is read or refused with a DiskError, in bounded time`, async () => {
    await exercise(image, mounts); // the unmutated image reads cleanly
    const mutation = fc.array(
      fc.record({
        // Mostly the metadata region, sometimes anywhere.
        offset: fc.oneof(
          { weight: 4, arbitrary: fc.integer({ min: hot[0]!, max: hot[1]! - 1 }) },
          { weight: 1, arbitrary: fc.integer({ min: 0, max: image.length - 1 }) },
        ),
        value: fc.integer({ min: 0, max: 255 }),
      }),
      { minLength: 1, maxLength: 12 },
    );
    await fc.assert(
      fc.asyncProperty(mutation, async (changes) => {
        const copy = Buffer.from(image);
        for (const c of changes) copy[c.offset] = c.value;
        const started = Date.now();
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'hung'>(
          (r) => (timer = setTimeout(() => r('hung'), RUN_DEADLINE_MS)),
        );
        try {
          const outcome = await Promise.race([
            exercise(copy, mounts).then(() => 'ok' as const),
            deadline,
          ]);
          assert.notEqual(outcome, 'hung', `no answer within ${RUN_DEADLINE_MS} ms`);
        } catch (err) {
          if (!(err instanceof DiskError)) throw err;
          assert.match(err.code, /^RTFTP_ERR_/);
        } finally {
          clearTimeout(timer);
        }
        assert.ok(Date.now() - started < RUN_DEADLINE_MS);
      }),
      // A fixed seed keeps CI repeatable; RTFTP_FUZZ_SEED explores other mutations.
      { numRuns: 100, seed: FUZZ_SEED },
    );
  });
}
