import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDirSource } from './local-dir.ts';
import { resolveInView } from './view.ts';
import type { OpenResult } from './source.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'rtftp-confine-'));
  await mkdir(join(root, 'default', 'sub'), { recursive: true });
  await mkdir(join(root, '10.0.0.5'));
  await mkdir(join(root, '10.0.0.50'));
  await writeFile(join(root, 'default', 'kernel'), 'default kernel');
  await writeFile(join(root, 'default', 'sub', 'deep'), 'deep');
  await writeFile(join(root, '10.0.0.5', 'kernel'), 'client kernel');
  await writeFile(join(root, '10.0.0.50', 'secret'), 'other client');
  await writeFile(join(root, '10.0.0.5.nbd'), '{}');
  await writeFile(join(root, 'outside'), 'root file');
  await symlink('../outside', join(root, 'default', 'escape'));
  await symlink('/etc/passwd', join(root, 'default', 'passwd'));
  await symlink('../10.0.0.50/secret', join(root, 'default', 'other'));
  await symlink('../10.0.0.5.nbd', join(root, 'default', 'config'));
  await symlink('sub/deep', join(root, 'default', 'inside'));
  await symlink('loop', join(root, 'default', 'loop'));
  // Special files: a FIFO nobody writes to, a character device (like /dev/null), a socket.
  execFileSync('mkfifo', [join(root, 'default', 'fifo')]);
  if (process.getuid?.() === 0)
    execFileSync('mknod', [join(root, 'default', 'null'), 'c', '1', '3']);
  execFileSync('python3', [
    '-c',
    'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
    join(root, 'default', 'sock'),
  ]);
  await symlink('fifo', join(root, 'default', 'to-fifo'));
});
after(async () => rm(root, { recursive: true, force: true }));

const view = () => [LocalDirSource.perClient(root), LocalDirSource.shared(root)];
async function lookup(ip: string, components: string[]): Promise<OpenResult> {
  const { result } = await resolveInView(
    view(),
    { clientIp: ip, components, raw: components.join('/') },
    new AbortController().signal,
  );
  if (result.status === 'found') await result.file.close();
  return result;
}

test('serves the per-client file before the default one', async () => {
  const r = await lookup('10.0.0.5', ['kernel']);
  assert.equal(r.status, 'found');
  if (r.status === 'found') assert.equal(r.source, 'client-dir');
  const d = await lookup('10.0.0.6', ['kernel']);
  assert.ok(d.status === 'found' && d.source === 'default');
});

test('matches the client directory exactly, never by prefix', async () => {
  assert.equal((await lookup('10.0.0.5', ['secret'])).status, 'not-found');
});

test('a symlink that stays inside its directory is followed', async () => {
  const r = await lookup('10.0.0.9', ['inside']);
  assert.ok(r.status === 'found' && r.location.endsWith('/sub/deep'));
});

for (const [name, reason] of [
  ['escape', 'symlink leaves its directory'],
  ['passwd', 'symlink leaves its directory'],
  ['other', 'symlink leaves its directory'],
] as const) {
  test(`refuses the symlink ${name} out of default/`, async () => {
    assert.deepEqual(await lookup('10.0.0.9', [name]), { status: 'refused', reason });
  });
}

test('never serves a config through a symlink', async () => {
  const r = await lookup('10.0.0.9', ['config']);
  assert.equal(r.status, 'refused');
});

test('a symlink loop, a directory and a missing file are not found', async () => {
  assert.equal((await lookup('10.0.0.9', ['loop'])).status, 'not-found');
  assert.equal((await lookup('10.0.0.9', ['sub'])).status, 'not-found');
  assert.equal((await lookup('10.0.0.9', ['nope'])).status, 'not-found');
  assert.equal((await lookup('10.0.0.9', ['kernel', 'x'])).status, 'not-found');
});

test('reads positionally what the file holds', async () => {
  const { result } = await resolveInView(
    view(),
    { clientIp: '10.0.0.5', components: ['kernel'], raw: 'kernel' },
    new AbortController().signal,
  );
  assert.equal(result.status, 'found');
  if (result.status !== 'found') return;
  const buf = Buffer.alloc(6);
  assert.equal(await result.file.read(buf, 0, 6, 7), 6);
  assert.equal(buf.toString(), 'kernel');
  assert.equal(result.file.size, 13);
  await result.file.close();
  await result.file.close();
});

for (const [name, kind] of [
  ['fifo', 'fifo'],
  ['to-fifo', 'fifo'],
  ['null', 'device'],
  ['sock', 'socket'],
] as const) {
  test(`refuses ${name}: only regular files are served (${kind})`, async (t) => {
    if (name === 'null' && process.getuid?.() !== 0) return t.skip('mknod needs root');
    // A FIFO with no writer would block a blocking open forever: this must answer at once.
    assert.deepEqual(await lookup('10.0.0.9', [name]), {
      status: 'refused',
      reason: `not a regular file (${kind})`,
    });
  });
}

test('logs where the served file is, after symlinks, even when it moved since', async () => {
  const r = await lookup('10.0.0.9', ['inside']);
  assert.ok(r.status === 'found');
  assert.equal(r.location, join(root, 'default', 'sub', 'deep'));
  // Opened, then its directory renamed: reads still come from that inode.
  const { result } = await resolveInView(
    view(),
    { clientIp: '10.0.0.9', components: ['sub', 'deep'], raw: 'sub/deep' },
    new AbortController().signal,
  );
  assert.equal(result.status, 'found');
  if (result.status !== 'found') return;
  await rename(join(root, 'default', 'sub'), join(root, 'default', 'sub2'));
  try {
    const buf = Buffer.alloc(4);
    assert.equal(await result.file.read(buf, 0, 4, 0), 4);
    assert.equal(buf.toString(), 'deep');
  } finally {
    await result.file.close();
    await rename(join(root, 'default', 'sub2'), join(root, 'default', 'sub'));
  }
});

test('a directory replaced by a symlink to another release is followed to it', async () => {
  // The usual atomic deployment: default -> releases/N, swapped by a rename.
  const base = await mkdtemp(join(tmpdir(), 'rtftp-confine-rel-'));
  try {
    for (const n of ['1', '2']) {
      await mkdir(join(base, 'releases', n), { recursive: true });
      await writeFile(join(base, 'releases', n, 'kernel'), `release ${n}`);
    }
    await symlink('releases/1', join(base, 'default'));
    const source = LocalDirSource.shared(base);
    const read = async () => {
      const r = await source.open({ clientIp: '10.0.0.9', components: ['kernel'], raw: 'kernel' });
      assert.equal(r.status, 'found');
      if (r.status !== 'found') return '';
      const buf = Buffer.alloc(9);
      await r.file.read(buf, 0, 9, 0);
      await r.file.close();
      return `${buf.toString()} at ${r.location}`;
    };
    assert.equal(await read(), `release 1 at ${join(base, 'releases', '1', 'kernel')}`);
    await symlink('releases/2', join(base, 'default.new'));
    await rename(join(base, 'default.new'), join(base, 'default'));
    assert.equal(await read(), `release 2 at ${join(base, 'releases', '2', 'kernel')}`);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
