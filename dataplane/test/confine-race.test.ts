/**
 * Confinement under a concurrent rename: a helper swaps `default/sub` with a symlink to a
 * directory outside the root, atomically and as fast as it can (renameat2 with
 * RENAME_EXCHANGE, through python3's ctypes: Node has no renameat2), while 10,000 requests
 * ask for `sub/secret.txt`. Not one byte of the outside file may be served; every file
 * served is logged where it really is.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDirSource } from '../src/sources/local-dir.ts';

const REQUESTS = 10_000;
const CONCURRENCY = 8;
const INSIDE = 'inside: the default kernel\n';
const OUTSIDE = 'OUTSIDE: a secret of the host\n';

// Exchanges two names atomically in a loop until killed; prints "ready" once it swapped.
const EXCHANGER = `
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
a, b = sys.argv[1].encode(), sys.argv[2].encode()
n = 0
while True:
    if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
        sys.exit("renameat2: errno %d" % ctypes.get_errno())
    n += 1
    if n == 1:
        print("ready", flush=True)
`;

function exchangerMissing(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import ctypes; ctypes.CDLL(None).renameat2'], {
    encoding: 'utf8',
  });
  return r.status === 0 ? undefined : `python3 with libc renameat2 is needed: ${r.stderr.trim()}`;
}

let root = '';
let exchanger: ChildProcess | undefined;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'rtftp-race-'));
  await mkdir(join(root, 'default', 'sub'), { recursive: true });
  await mkdir(join(root, 'outside'));
  await writeFile(join(root, 'default', 'sub', 'secret.txt'), INSIDE);
  await writeFile(join(root, 'outside', 'secret.txt'), OUTSIDE);
  await symlink('../outside', join(root, 'default', 'swap'));
});

after(async () => {
  if (exchanger?.pid && exchanger.exitCode === null) process.kill(exchanger.pid, 'SIGKILL');
  await rm(root, { recursive: true, force: true });
});

test(
  `serves no outside byte to ${REQUESTS} requests while a directory is swapped with an outside symlink`,
  { skip: exchangerMissing(), timeout: 300_000 },
  async () => {
    exchanger = spawn(
      'python3',
      ['-c', EXCHANGER, join(root, 'default', 'sub'), join(root, 'default', 'swap')],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      exchanger!.stdout!.once('data', () => resolve());
      exchanger!.once('exit', (code) => reject(new Error(`exchanger exited (${code})`)));
    });
    const source = LocalDirSource.shared(root);
    const base = join(root, 'default');
    const fdsBefore = readdirSync('/proc/self/fd').length;
    const outcomes = { inside: 0, outside: 0, refused: 0, notFound: 0 };
    const badLocations: string[] = [];
    let next = 0;
    const worker = async () => {
      const buf = Buffer.alloc(64);
      while (next++ < REQUESTS) {
        const r = await source.open({
          clientIp: '10.0.0.9',
          components: ['sub', 'secret.txt'],
          raw: 'sub/secret.txt',
        });
        if (r.status === 'refused') outcomes.refused++;
        else if (r.status === 'not-found') outcomes.notFound++;
        else if (r.status === 'found') {
          const n = await r.file.read(buf, 0, buf.length, 0);
          await r.file.close();
          const text = buf.toString('utf8', 0, n);
          if (text === INSIDE) outcomes.inside++;
          else outcomes.outside++;
          if (!r.location.startsWith(base + '/') || !r.location.endsWith('/secret.txt'))
            badLocations.push(r.location);
        } else assert.fail(`unexpected ${r.status}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    process.kill(exchanger.pid!, 'SIGKILL');
    console.log(`# ${REQUESTS} requests under RENAME_EXCHANGE: ${JSON.stringify(outcomes)}`);
    assert.equal(outcomes.outside, 0, 'bytes from outside the root were served');
    assert.deepEqual(badLocations.slice(0, 5), [], 'a served file was logged outside default/');
    // Every descriptor opened on the way (O_PATH probes, refused or not) was closed.
    assert.ok(readdirSync('/proc/self/fd').length <= fdsBefore + 2, 'descriptors leaked');
    // Both states of the race were hit: the swap really ran under the requests.
    assert.ok(outcomes.inside > 0, 'the inside file was never served');
    assert.ok(outcomes.refused + outcomes.notFound > 0, 'the outside symlink was never met');
  },
);
