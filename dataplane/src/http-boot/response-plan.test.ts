import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRange, planResponse, validatorsOf } from './response-plan.ts';
import type { FileFacts } from './response-plan.ts';

const MTIME = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const file: FileFacts = { size: 1000, mtimeMs: MTIME, source: 'nbd', location: 'x.nbd:/boot/k' };
const { etag, lastModified } = validatorsOf(file);

test('ranges: one range, open and suffix forms, clipped; past the end is unsatisfiable; the rest ignored', () => {
  const table: [string, ReturnType<typeof parseRange>][] = [
    ['bytes=0-99', { start: 0, end: 100 }],
    ['bytes=990-', { start: 990, end: 1000 }],
    ['bytes=990-5000', { start: 990, end: 1000 }],
    ['bytes=-10', { start: 990, end: 1000 }],
    ['bytes=-5000', { start: 0, end: 1000 }],
    ['Bytes = 5 - 5', { start: 5, end: 6 }],
    ['bytes=1000-', 'unsatisfiable'],
    ['bytes=-0', 'unsatisfiable'],
    ['bytes=0-1,5-6', null],
    ['bytes=5-4', null],
    ['bytes=-', null],
    ['items=0-1', null],
    ['bytes=99999999999999999999-', null],
  ];
  for (const [header, want] of table) assert.deepEqual(parseRange(header, 1000), want, header);
  assert.equal(parseRange('bytes=0-', 0), 'unsatisfiable');
});

test('validators: strong ETag and Last-Modified from the mtime; weak without one; the place is part of it', () => {
  assert.match(etag, /^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]{12}"$/);
  assert.equal(lastModified, 'Fri, 02 Jan 2026 03:04:05 GMT');
  const noTime = validatorsOf({ ...file, mtimeMs: undefined });
  assert.match(noTime.etag, /^W\//);
  assert.equal(noTime.lastModified, undefined);
  assert.notEqual(validatorsOf({ ...file, source: 'default' }).etag, etag);
  assert.notEqual(validatorsOf({ ...file, size: 1001 }).etag, etag);
  assert.notEqual(validatorsOf({ ...file, mtimeMs: MTIME + 1 }).etag, etag);
});

test('plans: 200, 206, HEAD without body, 416, 304 by ETag or date, If-Range', () => {
  const plan = (req: Partial<Parameters<typeof planResponse>[0]>) =>
    planResponse({ method: 'GET', ...req }, file);
  const whole = plan({});
  assert.equal(whole.status, 200);
  assert.deepEqual(whole.body, { start: 0, end: 1000 });
  assert.equal(whole.headers['content-length'], '1000');
  assert.equal(whole.headers.etag, etag);
  const part = plan({ range: 'bytes=10-19' });
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], 'bytes 10-19/1000');
  assert.equal(part.headers['content-length'], '10');
  const head = plan({ method: 'HEAD' });
  assert.equal(head.body, null);
  assert.equal(head.headers['content-length'], '1000');
  const past = plan({ range: 'bytes=5000-' });
  assert.equal(past.status, 416);
  assert.equal(past.headers['content-range'], 'bytes */1000');
  assert.equal(plan({ ifNoneMatch: etag }).status, 304);
  assert.equal(plan({ ifNoneMatch: `"other", W/${etag}` }).status, 304);
  assert.equal(plan({ ifNoneMatch: '*' }).status, 304);
  assert.equal(plan({ ifNoneMatch: '"other"' }).status, 200);
  // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
  assert.equal(plan({ ifNoneMatch: '"other"', ifModifiedSince: lastModified }).status, 200);
  assert.equal(plan({ ifModifiedSince: lastModified }).status, 304);
  assert.equal(plan({ ifModifiedSince: new Date(MTIME - 2000).toUTCString() }).status, 200);
  assert.equal(plan({ ifModifiedSince: 'not a date' }).status, 200);
  assert.equal(plan({ range: 'bytes=0-9', ifRange: etag }).status, 206);
  assert.equal(plan({ range: 'bytes=0-9', ifRange: lastModified }).status, 206);
  assert.equal(plan({ range: 'bytes=0-9', ifRange: '"stale"' }).status, 200);
  assert.equal(plan({ range: 'bytes=0-9', ifRange: `W/${etag}` }).status, 200);
  const weak = planResponse(
    {
      method: 'GET',
      range: 'bytes=0-9',
      ifRange: validatorsOf({ ...file, mtimeMs: undefined }).etag,
    },
    { ...file, mtimeMs: undefined },
  );
  assert.equal(weak.status, 200, 'a weak ETag never satisfies If-Range');
});
