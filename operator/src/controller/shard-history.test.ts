import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_VERSIONS, ShardHistory } from './shard-history.ts';

test('a version holds a config from the version that wrote its current text on', () => {
  const h = new ShardHistory();
  h.observe('s', '10', { a: 'A1', b: 'B1' });
  h.observe('s', '11', { a: 'A2', b: 'B1' }); // a changed
  h.observe('s', '12', { a: 'A2', b: 'B1', c: 'C1' }); // c added: a and b untouched
  assert.equal(h.contains('s', '10', 'b', 'B1'), true);
  assert.equal(h.contains('s', '12', 'b', 'B1'), true);
  assert.equal(h.contains('s', '10', 'a', 'A2'), false, 'a node on 10 serves the old a');
  assert.equal(h.contains('s', '11', 'a', 'A2'), true);
  assert.equal(h.contains('s', '12', 'a', 'A2'), true);
  assert.equal(h.contains('s', '11', 'c', 'C1'), false);
  assert.equal(h.contains('s', '12', 'a', 'A1'), false, 'not the current text');
  assert.equal(h.contains('s', '99', 'b', 'B1'), false, 'a version never seen');
  assert.equal(h.contains('other', '12', 'b', 'B1'), false);
  // The informer delivering a version we already recorded from our own write: no change.
  h.observe('s', '11', { a: 'A2', b: 'B1' });
  assert.equal(h.contains('s', '12', 'c', 'C1'), true);
  h.forget('s');
  assert.equal(h.contains('s', '12', 'b', 'B1'), false);
});

test('resourceVersions are never compared as numbers: the order is the order seen', () => {
  const h = new ShardHistory();
  h.observe('s', 'zz', { a: 'A1' });
  h.observe('s', 'aa', { a: 'A2' });
  assert.equal(h.contains('s', 'aa', 'a', 'A2'), true);
  assert.equal(h.contains('s', 'zz', 'a', 'A2'), false);
});

test('memory is bounded: only the last MAX_VERSIONS versions of a shard are known', () => {
  const h = new ShardHistory();
  for (let i = 0; i < MAX_VERSIONS + 10; i++) h.observe('s', String(i), { a: 'A' });
  assert.equal(h.contains('s', '0', 'a', 'A'), false);
  assert.equal(h.contains('s', String(MAX_VERSIONS + 9), 'a', 'A'), true);
  assert.equal(h.contains('s', '10', 'a', 'A'), true);
});
