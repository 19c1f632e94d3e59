import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  encodeAck,
  encodeData,
  encodeError,
  encodeOack,
  encodeRequest,
  parsePacket,
} from './codec.ts';
import { Opcode } from './protocol.ts';

test('parses an RRQ with options, lower-casing mode and option names', () => {
  const r = parsePacket(
    encodeRequest(Opcode.Rrq, 'pxelinux.0', 'OCTET', { TSIZE: '0', BlkSize: '1432' }),
  );
  assert.ok(r.ok);
  assert.equal(r.packet.opcode, Opcode.Rrq);
  if (r.packet.opcode !== Opcode.Rrq) return;
  assert.equal(r.packet.filename, 'pxelinux.0');
  assert.equal(r.packet.mode, 'octet');
  assert.deepEqual(
    [...r.packet.options],
    [
      ['tsize', '0'],
      ['blksize', '1432'],
    ],
  );
});

test('the first of two equal option names wins', () => {
  const r = parsePacket(
    encodeRequest(
      Opcode.Rrq,
      'f',
      'octet',
      new Map([
        ['blksize', '1024'],
        ['BLKSIZE', '512'],
      ]),
    ),
  );
  assert.ok(r.ok && r.packet.opcode === Opcode.Rrq);
  assert.equal(r.packet.options.get('blksize'), '1024');
});

test('round-trips DATA, ACK, ERROR and OACK', () => {
  const d = parsePacket(encodeData(65535, Buffer.from('abc')));
  assert.ok(d.ok && d.packet.opcode === Opcode.Data);
  assert.equal(d.packet.block, 65535);
  assert.equal(d.packet.data.toString(), 'abc');
  const a = parsePacket(encodeAck(65536 + 7));
  assert.ok(a.ok && a.packet.opcode === Opcode.Ack);
  assert.equal(a.packet.block, 7, 'block numbers are 16-bit on the wire');
  const e = parsePacket(encodeError(8, 'refused'));
  assert.ok(e.ok && e.packet.opcode === Opcode.Error);
  assert.deepEqual([e.packet.code, e.packet.message], [8, 'refused']);
  const o = parsePacket(encodeOack(new Map([['tsize', '42']])));
  assert.ok(o.ok && o.packet.opcode === Opcode.Oack);
  assert.equal(o.packet.options.get('tsize'), '42');
});

test('an ERROR without its terminating NUL still parses (lenient on what clients send)', () => {
  const r = parsePacket(Buffer.from([0, 5, 0, 1, 0x61, 0x62]));
  assert.ok(r.ok && r.packet.opcode === Opcode.Error);
  assert.equal(r.packet.message, 'ab');
});

const malformed: [string, Buffer][] = [
  ['empty datagram', Buffer.alloc(0)],
  ['one byte', Buffer.from([0])],
  ['unknown opcode', Buffer.from([0, 9, 0, 0])],
  ['opcode zero', Buffer.from([0, 0])],
  ['RRQ without strings', Buffer.from([0, 1])],
  ['RRQ filename unterminated', Buffer.from([0, 1, 0x61])],
  ['RRQ without mode', Buffer.from([0, 1, 0x61, 0])],
  ['RRQ empty filename', Buffer.from([0, 1, 0, 0x6f, 0])],
  ['RRQ option without value', Buffer.from('\x00\x01f\x00octet\x00tsize\x00', 'latin1')],
  ['DATA too short', Buffer.from([0, 3, 0])],
  ['ACK too short', Buffer.from([0, 4, 0])],
  ['ERROR too short', Buffer.from([0, 5, 0])],
  ['OACK with odd strings', Buffer.from('\x00\x06tsize\x00', 'latin1')],
];
for (const [name, buf] of malformed) {
  test(`rejects malformed input with a reason: ${name}`, () => {
    const r = parsePacket(buf);
    assert.equal(r.ok, false);
    if (!r.ok) assert.ok(r.error.length > 0);
  });
}

test('never throws on arbitrary bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const r = parsePacket(Buffer.from(bytes));
      assert.equal(typeof r.ok, 'boolean');
    }),
    { numRuns: 3000 },
  );
});
