import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  modeKind,
  MarkerFactory,
  MarkerSplitter,
  errorOfStderr,
  formatCommand,
  parseStatOutput,
  quoteGuestfishArg,
} from './guestfish-protocol.ts';
import { ChunkedReader } from './chunked-reader.ts';

describe('guestfish framing', () => {
  it('quotes every argument so spaces, quotes, # and UTF-8 cannot break the command line', () => {
    assert.equal(quoteGuestfishArg('/boot/vmlinuz-6.1'), '"/boot/vmlinuz-6.1"');
    assert.equal(quoteGuestfishArg('a b"#!é'), '"a\\x20b\\x22\\x23\\x21\\xc3\\xa9"');
    assert.equal(formatCommand('pread', ['/x y', 1048576, 0]), '-pread "/x\\x20y" 1048576 0');
  });

  it('cuts replies at their markers even when a reply arrives in pieces or holds raw bytes', () => {
    const f = new MarkerFactory();
    const a = f.create();
    const b = f.create();
    assert.notEqual(a.stdout.toString(), b.stdout.toString());
    const s = new MarkerSplitter();
    const payload = Buffer.from([0, 1, 2, 10, 255, 64, 64]);
    const stream = Buffer.concat([payload, a.stdout, Buffer.from('second'), b.stdout]);
    for (let i = 0; i < stream.length; i += 3) {
      s.push(stream.subarray(i, i + 3));
      if (i === 0) assert.equal(s.take(a.stdout), null);
    }
    assert.deepEqual(s.take(a.stdout), payload);
    assert.equal(s.take(b.stdout)?.toString(), 'second');
    assert.equal(s.pending, 0);
  });

  it('tells a failed command from a successful one by its stderr segment', () => {
    assert.equal(errorOfStderr(''), null);
    assert.equal(
      errorOfStderr('Did you mean to open a disk image?  guestfish -a disk.img\n'),
      null,
    );
    assert.equal(
      errorOfStderr(
        '*stdin*:12: libguestfs: error: mount_ro: mount: /nonexist: mount point is not a directory\n',
      ),
      'mount_ro: mount: /nonexist: mount point is not a directory',
    );
  });

  it('parses statns output', () => {
    const m = parseStatOutput('st_dev: 2049\nst_mode: 33261\nst_size: 104857600\n');
    assert.equal(m.get('st_mode'), 33261);
    assert.equal(m.get('st_size'), 104857600);
  });
});

describe('ChunkedReader', () => {
  it('serves any block from chunked fetches, holding a bounded number of chunks', async () => {
    const data = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
    const fetched: number[] = [];
    let inFlightMax = 0;
    let inFlight = 0;
    const r = new ChunkedReader({
      size: data.length,
      chunkBytes: 1000,
      readAhead: 2,
      fetch: async (pos, len) => {
        fetched.push(pos);
        inFlightMax = Math.max(inFlightMax, ++inFlight);
        await new Promise((res) => setTimeout(res, 1));
        inFlight--;
        return data.subarray(pos, pos + len);
      },
    });
    const out = Buffer.alloc(data.length);
    for (let pos = 0; pos < data.length; pos += 512) {
      const n = await r.read(out, pos, Math.min(512, data.length - pos), pos);
      assert.equal(n, Math.min(512, data.length - pos));
    }
    assert.deepEqual(out, data);
    assert.equal(await r.read(Buffer.alloc(10), 0, 10, data.length), 0);
    assert.ok(inFlightMax <= 3, `at most current + 2 ahead in flight, saw ${inFlightMax}`);
    assert.equal(new Set(fetched).size, 10);
    await r.close();
  });

  it('fetches nothing more once closed, even for a read that was waiting when it closed', async () => {
    const fetched: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const r = new ChunkedReader({
      size: 10_000,
      chunkBytes: 1000,
      readAhead: 3,
      fetch: async (pos, len) => {
        fetched.push(pos);
        await gate;
        return Buffer.alloc(len, 1);
      },
    });
    const reading = r.read(Buffer.alloc(2000), 0, 2000, 0);
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(fetched, [0]);
    await r.close();
    release();
    await assert.rejects(reading, /file is closed/);
    assert.deepEqual(fetched, [0], 'no read-ahead and no next chunk after close');
    await assert.rejects(r.read(Buffer.alloc(10), 0, 10, 0), /file is closed/);
  });

  it('lets a failed chunk be fetched again on retry', async () => {
    let fail = true;
    const r = new ChunkedReader({
      size: 100,
      chunkBytes: 50,
      readAhead: 0,
      fetch: async (pos, len) => {
        if (fail) throw new Error('EIO');
        return Buffer.alloc(len, pos);
      },
    });
    const buf = Buffer.alloc(10);
    await assert.rejects(r.read(buf, 0, 10, 0), /EIO/);
    fail = false;
    assert.equal(await r.read(buf, 0, 10, 0), 10);
  });
});

describe('modeKind', () => {
  it('tells regular files and directories from what is never served', () => {
    const modes = [0o100644, 0o040755, 0o010644, 0o020666, 0o060660, 0o140755, 0o120777, 0o170000];
    assert.deepEqual(modes.map(modeKind), [
      'file',
      'dir',
      'fifo',
      'device',
      'device',
      'socket',
      'symlink',
      'other',
    ]);
  });
});
