import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SERIAL_AMBIGUOUS_REASON, SerialDirectory, identifyRequest } from './client-identity.ts';

function directory(entries: Record<string, string>): SerialDirectory {
  const d = new SerialDirectory();
  for (const [ip, serial] of Object.entries(entries)) d.set(ip, serial);
  return d;
}

test('a known serial prefix is served from its client’s view, prefix stripped, whatever the source', () => {
  const d = directory({ '10.0.0.50': '1a2b3c4d' });
  for (const name of ['1a2b3c4d/start4.elf', '/1A2B3C4D/start4.elf', '1a2b3c4d\\start4.elf']) {
    const r = identifyRequest('192.168.7.99', name, d);
    assert.deepEqual(r, {
      ok: true,
      request: { clientIp: '10.0.0.50', components: ['start4.elf'], raw: name },
      identity: { kind: 'serial', serial: '1a2b3c4d' },
    });
  }
  assert.deepEqual(d.status()[0]?.lastMatch?.from, '192.168.7.99');
});

test('without a known serial prefix a request is its source address’s, as before', () => {
  const d = directory({ '10.0.0.50': '1a2b3c4d' });
  for (const name of [
    'bootcode.bin',
    '1a2b3c4d',
    'ffffffff/start.elf',
    '1a2b3c4d0/x',
    'g1a2b3c4/x',
  ])
    assert.deepEqual(identifyRequest('10.0.0.9', name, d), {
      ok: true,
      request: {
        clientIp: '10.0.0.9',
        components: name.split('/'),
        raw: name,
      },
      identity: { kind: 'ip' },
    });
  assert.equal(identifyRequest('10.0.0.9', '1a2b3c4d/x', undefined).ok, true);
});

test('names are checked before any serial: a prefix never lets a refused name through', () => {
  const d = directory({ '10.0.0.50': '1a2b3c4d' });
  assert.deepEqual(identifyRequest('10.0.0.9', '1a2b3c4d/../10.0.0.50.nbd', d), {
    ok: false,
    reason: 'traversal',
  });
  assert.deepEqual(identifyRequest('10.0.0.9', '1a2b3c4d/x.nbd', d), {
    ok: false,
    reason: 'config-file',
  });
});

test('a serial two configs declare is served from neither, and status says so', () => {
  const d = directory({ '10.0.0.50': '1a2b3c4d', '10.0.0.51': '1a2b3c4d' });
  assert.deepEqual(identifyRequest('10.0.0.9', '1a2b3c4d/start4.elf', d), {
    ok: false,
    reason: SERIAL_AMBIGUOUS_REASON,
  });
  assert.deepEqual(d.conflictsOf('10.0.0.50'), ['10.0.0.51']);
  assert.equal(d.status()[0]?.state, 'ambiguous');
  // One of them changes its serial: the other owns it alone again.
  d.set('10.0.0.51', 'cafe0001');
  assert.deepEqual(d.ownerOf('1a2b3c4d'), { clientIp: '10.0.0.50' });
  d.remove('10.0.0.50');
  assert.equal(d.ownerOf('1a2b3c4d'), undefined);
  assert.deepEqual(
    d.status().map((s) => s.serial),
    ['cafe0001'],
  );
});
