import { test } from 'node:test';
import assert from 'node:assert/strict';
import { negotiateOptions } from './options.ts';

const limits = { maxWindowBytes: 1 << 20, maxTimeoutS: 255 };
const req = (o: Record<string, string>) => new Map(Object.entries(o));

test('no options: lock-step at 512 bytes, no OACK', () => {
  const n = negotiateOptions(new Map(), 100, limits);
  assert.deepEqual([n.blksize, n.windowsize, n.oack.size, n.tsizeRequested], [512, 1, 0, false]);
});

test('answers tsize 0 with the file size and echoes accepted options in the client order', () => {
  const n = negotiateOptions(req({ tsize: '0', blksize: '1468', windowsize: '4' }), 123456, limits);
  assert.deepEqual(
    [...n.oack],
    [
      ['tsize', '123456'],
      ['blksize', '1468'],
      ['windowsize', '4'],
    ],
  );
  assert.equal(n.tsizeRequested, true);
  assert.equal(n.windowsize, 4);
});

test('ignores unknown options and values out of range (not echoed)', () => {
  const n = negotiateOptions(
    req({ blksize: '7', timeout: '0', windowsize: '65536', multicast: '', utimeout: '1000' }),
    1,
    limits,
  );
  assert.equal(n.oack.size, 0);
  assert.deepEqual([n.blksize, n.windowsize, n.timeoutS], [512, 1, undefined]);
  const hi = negotiateOptions(req({ blksize: '65465', timeout: '256' }), 1, limits);
  assert.equal(hi.oack.size, 0);
});

test('accepts the RFC limits themselves', () => {
  const n = negotiateOptions(req({ blksize: '65464', timeout: '255', windowsize: '1' }), 1, {
    maxWindowBytes: 1 << 28,
    maxTimeoutS: 255,
  });
  assert.deepEqual([n.blksize, n.timeoutS, n.windowsize], [65464, 255, 1]);
  const lo = negotiateOptions(req({ blksize: '8', timeout: '1' }), 1, limits);
  assert.deepEqual([lo.blksize, lo.timeoutS], [8, 1]);
});

test('rejects values that are not plain decimal numbers', () => {
  for (const v of ['-1', '+5', '1e3', ' 512', '0x200', '', '99999999999']) {
    assert.equal(negotiateOptions(req({ blksize: v }), 1, limits).oack.size, 0, v);
  }
});

test('caps windowsize so window × blksize fits the memory bound, answering the smaller value', () => {
  const n = negotiateOptions(req({ windowsize: '65535', blksize: '65464' }), 1, limits);
  assert.equal(n.windowsize, 16);
  assert.equal(n.oack.get('windowsize'), '16');
});

test('a timeout past the cap is left out of the OACK (RFC 2349 allows no other answer)', () => {
  const capped = { ...limits, maxTimeoutS: 10 };
  const over = negotiateOptions(req({ timeout: '255', blksize: '1428' }), 1, capped);
  assert.equal(over.timeoutS, undefined);
  assert.deepEqual([...over.oack], [['blksize', '1428']]);
  const at = negotiateOptions(req({ timeout: '10' }), 1, capped);
  assert.deepEqual([at.timeoutS, at.oack.get('timeout')], [10, '10']);
});

test('tsize is not acknowledged when the size is not known', () => {
  const n = negotiateOptions(req({ tsize: '0', blksize: '1024' }), undefined, limits);
  assert.deepEqual([...n.oack], [['blksize', '1024']]);
  assert.equal(n.tsizeRequested, false);
});
