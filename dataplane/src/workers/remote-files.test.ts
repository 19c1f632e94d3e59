import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import pino from 'pino';
import { LocalDirSource } from '../sources/local-dir.ts';
import type { FileSource, OpenResult, ViewRequest } from '../sources/source.ts';
import { MAX_REMOTE_READ, RemoteViewSource, WorkerFileDesk } from './remote-files.ts';
import type { FileAnswer, FileRequest } from './remote-files.ts';

const root = mkdtempSync(join(tmpdir(), 'rtftp-remote-files-'));
after(() => rmSync(root, { recursive: true, force: true }));
mkdirSync(join(root, 'default'));
const CONTENT = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251));
writeFileSync(join(root, 'default', 'kernel'), CONTENT);

const logger = pino({ level: 'silent' });
const request = (name: string): ViewRequest => ({
  clientIp: '10.0.0.5',
  components: name.split('/'),
  raw: name,
});

/**
 * A main thread's source and a worker's desk over a real MessagePort pair, as between
 * threads (structured clone, transferred buffers). `deliver: false` loses the answers.
 */
function pair(
  sources: readonly FileSource[],
  opts: { deliver?: boolean; timeoutMs?: number } = {},
) {
  const channel = new MessageChannel();
  const sent: FileRequest[] = [];
  const remote = new RemoteViewSource({
    workerOf: () => 3,
    post: (_worker, m) => {
      sent.push(m);
      channel.port1.postMessage(m);
    },
    openTimeoutMs: opts.timeoutMs ?? 5000,
    readTimeoutMs: opts.timeoutMs ?? 5000,
  });
  const desk = new WorkerFileDesk(
    sources,
    (m, transfer) => channel.port2.postMessage(m, transfer),
    logger,
  );
  const answers: FileAnswer[] = [];
  channel.port2.on('message', (m: FileRequest) => desk.handle(m));
  channel.port1.on('message', (m: FileAnswer) => {
    answers.push(m);
    if (opts.deliver !== false) remote.onAnswer(3, m);
  });
  // A failed assertion skips the test's close(): the ports must not keep the run alive.
  channel.port1.unref();
  channel.port2.unref();
  return {
    remote,
    desk,
    sent,
    answers,
    close: () => {
      channel.port1.close();
      channel.port2.close();
    },
  };
}

const settle = () => new Promise((r) => setTimeout(r, 50));

test('a file opened in the worker is read whole through messages, and given back on close', async () => {
  const p = pair([LocalDirSource.shared(root)]);
  const r = await p.remote.open(request('kernel'), new AbortController().signal);
  assert.equal(r.status, 'found');
  if (r.status !== 'found') return;
  assert.equal(r.file.size, CONTENT.length);
  assert.equal(r.source, 'default');
  assert.ok(r.file.mtimeMs! > 0);
  const got = Buffer.alloc(CONTENT.length + 10);
  let at = 0;
  for (;;) {
    const n = await r.file.read(got, at, 256 * 1024, at);
    if (n === 0) break;
    at += n;
  }
  assert.equal(at, CONTENT.length);
  assert.ok(got.subarray(0, at).equals(CONTENT));
  // One buffer per transfer, not one per read: each read after the first gives the
  // previous one back to the worker to read into.
  const reads = p.sent.filter((m) => m.type === 'file-read');
  assert.equal(reads.length, 3);
  assert.equal(reads[0]!.buffer, undefined);
  for (const r of reads.slice(1)) assert.ok(r.buffer, 'a read without the previous buffer');
  assert.equal(p.desk.openFiles, 1);
  await r.file.close();
  await r.file.close();
  await settle();
  assert.equal(p.desk.openFiles, 0);
  assert.equal(p.sent.filter((m) => m.type === 'file-close').length, 1, 'closed once');
  await assert.rejects(r.file.read(got, 0, 10, 0), /file closed/);
  assert.equal(p.remote.pendingCalls, 0);
  p.close();
});

test('not found and refused come back as the worker decided them', async () => {
  const refusing: FileSource = {
    name: 'refusing',
    open: async (req): Promise<OpenResult> =>
      req.raw === 'secret'
        ? { status: 'refused', reason: 'not a regular file (fifo)' }
        : { status: 'not-found' },
  };
  const p = pair([refusing, LocalDirSource.shared(root)]);
  const signal = new AbortController().signal;
  assert.deepEqual(await p.remote.open(request('nothing'), signal), { status: 'not-found' });
  assert.deepEqual(await p.remote.open(request('secret'), signal), {
    status: 'refused',
    reason: 'not a regular file (fifo)',
  });
  p.close();
});

test('a worker that does not answer: the open is unavailable in time, and a late file is closed', async () => {
  const p = pair([LocalDirSource.shared(root)], { deliver: false, timeoutMs: 200 });
  const r = await p.remote.open(request('kernel'), new AbortController().signal);
  assert.equal(r.status, 'unavailable');
  assert.match((r as { reason: string }).reason, /did not answer within 200 ms/);
  // The desk did open it: its late answer now reaches the main side, which gives it back.
  const late = p.answers.find((a) => a.type === 'file-opened');
  assert.ok(late);
  assert.equal(p.desk.openFiles, 1);
  p.remote.onAnswer(3, late);
  await settle();
  assert.equal(p.desk.openFiles, 0);
  assert.equal(p.remote.pendingCalls, 0);
  p.close();
});

test('a worker that dies fails what waits on it at once; an aborted open stops waiting', async () => {
  let started!: () => void;
  const opening = new Promise<void>((r) => (started = r));
  const waiting: FileSource = {
    name: 'connecting-disk',
    open: (_req, signal) =>
      new Promise<OpenResult>((resolve) => {
        started();
        signal.addEventListener('abort', () => resolve({ status: 'not-ready' }));
      }),
  };
  const p = pair([waiting], { timeoutMs: 60_000 });
  const pending = p.remote.open(request('kernel'), new AbortController().signal);
  await opening;
  p.remote.workerGone(3);
  const r = await pending;
  assert.deepEqual(r, { status: 'unavailable', reason: 'worker 3 exited' });
  assert.equal(p.remote.pendingCalls, 0);

  // The client went away while its disk connects: the worker's wait is aborted too.
  const abort = new AbortController();
  const second = p.remote.open(request('kernel'), abort.signal);
  await settle();
  abort.abort();
  assert.deepEqual(await second, { status: 'not-ready' });
  assert.ok(p.sent.some((m) => m.type === 'file-abort'));
  p.close();
});

test('the desk refuses reads it was not asked to hold: unknown handle, bad length', async () => {
  const answers: FileAnswer[] = [];
  const desk = new WorkerFileDesk([LocalDirSource.shared(root)], (m) => answers.push(m), logger);
  desk.handle({ type: 'file-read', id: 1, handle: 99, length: 10, position: 0 } as FileRequest);
  desk.handle({ type: 'file-open', id: 2, request: request('kernel') } as FileRequest);
  await settle();
  const opened = answers.find((a) => a.type === 'file-opened');
  assert.ok(opened && opened.type === 'file-opened' && opened.result.status === 'found');
  const handle = opened.result.handle;
  for (const [id, length] of [
    [3, MAX_REMOTE_READ + 1],
    [4, 0],
    [5, -1],
  ] as const)
    desk.handle({ type: 'file-read', id, handle, length, position: 0 } as FileRequest);
  await settle();
  assert.deepEqual(
    answers.find((a) => a.id === 1),
    {
      type: 'file-read-failed',
      id: 1,
      message: 'file not open',
    },
  );
  for (const id of [3, 4, 5])
    assert.match(
      (answers.find((a) => a.id === id) as { message: string }).message,
      /bad read length/,
    );
  assert.equal(desk.handle({ type: 'ping' }), false, 'not a file message');
  await desk.closeAll();
  assert.equal(desk.openFiles, 0);
});
