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
      return true;
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
  assert.equal(r.status, 'not-ready');
  assert.match((r as { detail: string }).detail, /did not answer within 200 ms/);
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

test('an open the main thread gave up on (timeout) stops waiting in the worker too', async () => {
  let aborted = false;
  const waiting: FileSource = {
    name: 'connecting-disk',
    open: (_req, signal) =>
      new Promise<OpenResult>((resolve) => {
        signal.addEventListener('abort', () => {
          aborted = true;
          resolve({ status: 'not-ready' });
        });
      }),
  };
  const p = pair([waiting], { timeoutMs: 100 });
  const r = await p.remote.open(request('kernel'), new AbortController().signal);
  assert.equal(r.status, 'not-ready');
  await settle();
  assert.ok(aborted, "the worker's open was not aborted");
  assert.ok(p.sent.some((m) => m.type === 'file-abort'));
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
  assert.deepEqual(r, { status: 'not-ready', detail: 'worker 3 exited' });
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

test('a transfer that outlived its worker never reads or closes a file opened in the restarted one', async () => {
  // Two desks in turn behind worker 3, as a crash and a restart make them.
  const answers: Array<(m: FileAnswer) => void> = [];
  let desk!: WorkerFileDesk;
  const makeDesk = () =>
    new WorkerFileDesk(
      [LocalDirSource.shared(root)],
      (m) => setImmediate(() => answers[0]!(m)),
      logger,
    );
  const remote = new RemoteViewSource({
    workerOf: () => 3,
    post: (_worker, m) => {
      // Structured clone, as between threads (a given-back buffer is copied here).
      desk.handle(structuredClone(m));
      return true;
    },
    openTimeoutMs: 5000,
    readTimeoutMs: 5000,
  });
  answers.push((m) => remote.onAnswer(3, m));
  desk = makeDesk();
  const signal = new AbortController().signal;
  const a = await remote.open(request('kernel'), signal);
  assert.equal(a.status, 'found');
  if (a.status !== 'found') return;
  const first = await a.file.read(Buffer.alloc(10), 0, 10, 0);
  assert.equal(first, 10);

  remote.workerGone(3);
  const old = desk;
  desk = makeDesk();
  const other = join(root, 'default', 'other-client-file');
  writeFileSync(other, 'another client opened this');
  const b = await remote.open(request('other-client-file'), signal);
  assert.equal(b.status, 'found');
  if (b.status !== 'found') return;
  assert.equal(desk.openFiles, 1);

  // The first transfer's next read fails; it gets none of the other file's bytes.
  const got = Buffer.alloc(32);
  await assert.rejects(a.file.read(got, 0, 32, 0), /worker 3 exited/);
  assert.equal(got.toString('latin1').includes('another'), false);
  // Its close touches nothing in the new worker: the other client's file stays open and readable.
  await a.file.close();
  await settle();
  assert.equal(desk.openFiles, 1);
  const n = await b.file.read(got, 0, 32, 0);
  assert.equal(got.subarray(0, n).toString(), 'another client opened this');
  // Even a message that reached the new worker with an old handle would name nothing there:
  // handles are the main thread's open ids, never reused.
  const theirs: FileAnswer[] = [];
  const probe = new WorkerFileDesk([LocalDirSource.shared(root)], (m) => theirs.push(m), logger);
  probe.handle({ type: 'file-open', id: 41, request: request('kernel') } as FileRequest);
  await settle();
  const opened = theirs[0];
  assert.ok(opened?.type === 'file-opened' && opened.result.status === 'found');
  assert.equal(opened.result.handle, 41);
  await b.file.close();
  await old.closeAll();
  await probe.closeAll();
  rmSync(other);
});

test('a worker that is not running (restarting) fails an open and a read at once, not at the timeout', async () => {
  let running = true;
  const desk = new WorkerFileDesk(
    [LocalDirSource.shared(root)],
    (m) => setImmediate(() => remote.onAnswer(3, m)),
    logger,
  );
  const remote: RemoteViewSource = new RemoteViewSource({
    workerOf: () => 3,
    post: (_worker, m) => {
      if (!running) return false;
      desk.handle(structuredClone(m));
      return true;
    },
    openTimeoutMs: 60_000,
    readTimeoutMs: 60_000,
  });
  const signal = new AbortController().signal;
  const r = await remote.open(request('kernel'), signal);
  assert.equal(r.status, 'found');
  if (r.status !== 'found') return;
  running = false;
  const started = Date.now();
  await assert.rejects(r.file.read(Buffer.alloc(10), 0, 10, 0), /worker 3 is not running/);
  assert.deepEqual(await remote.open(request('kernel'), signal), {
    status: 'not-ready',
    detail: 'worker 3 is not running',
  });
  assert.ok(Date.now() - started < 5000, 'answered at once, not after the 60 s timeout');
  assert.equal(remote.pendingCalls, 0);
  await r.file.close();
  await desk.closeAll();
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
