import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalSerial, parseNbdConfig, renderNbdConfig } from './nbd-config.ts';

const base = {
  url: 'nbd://10.0.0.1/x',
  mounts: [{ partition: 1, mountpoint: '/' }],
  tftpRoot: '/',
};

test('serial: 8 hex digits in any case, kept in lower case, rendered only when set', () => {
  assert.equal(canonicalSerial('1A2b3C4d'), '1a2b3c4d');
  for (const bad of ['1a2b3c4', '1a2b3c4d5', '1a2b3c4g', ' 1a2b3c4d', ''])
    assert.equal(canonicalSerial(bad), null, bad);
  const text = renderNbdConfig({ ...base, serial: '1a2b3c4d' });
  assert.match(text, /"serial":"1a2b3c4d"/);
  const parsed = parseNbdConfig(text);
  assert.ok(parsed.ok);
  assert.equal(parsed.config.serial, '1a2b3c4d');
  assert.doesNotMatch(renderNbdConfig(base), /serial/);
  const upper = parseNbdConfig(
    JSON.stringify({ ...JSON.parse(renderNbdConfig(base)), serial: 'DEADBEEF' }),
  );
  assert.ok(upper.ok && upper.config.serial === 'deadbeef');
});

test('a serial that is not one is a problem naming the field', () => {
  for (const serial of ['12345', 12345678, 'zzzzzzzz', null]) {
    const r = parseNbdConfig(JSON.stringify({ ...JSON.parse(renderNbdConfig(base)), serial }));
    assert.ok(!r.ok);
    assert.equal(r.problems[0]?.field, 'serial');
  }
});
