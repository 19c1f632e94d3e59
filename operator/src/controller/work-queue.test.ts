import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue } from './work-queue.ts';

test('a key added while queued is queued once', async () => {
  const q = new WorkQueue();
  q.add('a');
  q.add('b');
  q.add('a');
  assert.equal(q.length, 2);
  assert.equal(await q.get(), 'a');
  assert.equal(await q.get(), 'b');
});

test('a key in progress is never handed to a second worker; re-added, it comes back after done()', async () => {
  const q = new WorkQueue();
  q.add('a');
  const first = await q.get();
  q.add('a');
  assert.equal(q.length, 0, 'not queued while a worker holds it');
  let second: string | null | undefined;
  void q.get().then((k) => (second = k));
  await new Promise((r) => setImmediate(r));
  assert.equal(second, undefined);
  q.done(first!);
  await new Promise((r) => setImmediate(r));
  assert.equal(second, 'a');
});

test('rate-limited retries back off exponentially per key, with bounded jitter; forget() resets', () => {
  const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 1000, jitter: 0.5 }, () => 1);
  const delays = Array.from({ length: 9 }, () => q.addRateLimited('a'));
  assert.deepEqual(delays, [15, 30, 60, 120, 240, 480, 960, 1500, 1500]);
  assert.equal(q.addRateLimited('b'), 15, 'other keys have their own backoff');
  q.forget('a');
  assert.equal(q.addRateLimited('a'), 15);
  q.shutDown();
});

test('addAfter requeues later, the earliest pending time wins', async () => {
  const q = new WorkQueue();
  const keepAlive = setTimeout(() => undefined, 2000); // the queue's timers do not hold the process
  q.addAfter('a', 500);
  q.addAfter('a', 20);
  const started = Date.now();
  assert.equal(await q.get(), 'a');
  assert.ok(Date.now() - started < 400);
  q.shutDown();
  clearTimeout(keepAlive);
});

test('get() returns null after shutDown, for idle workers too', async () => {
  const q = new WorkQueue();
  const waiting = q.get();
  q.shutDown();
  assert.equal(await waiting, null);
  assert.equal(await q.get(), null);
});
