import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listenDropsFrom, procAddress } from './listen-drops.ts';

// Lines as this kernel printed them (x86-64: the words in little-endian order).
const UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
11265: 0100007F:B813 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2484082 2 0000000017de406b 17
11266: 0200007F:B813 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2484090 2 0000000017de406c 1000
11267: 0100007F:C350 0100007F:B813 01 00000000:00000000 00:00000000 00000000     0        0 2484091 2 0000000017de406d 5
11268: 0100007F:0045 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2484092 2 0000000017de406e 9
`;
const UDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
11265: 00000000000000000000000001000000:B813 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2484083 2 0000000022504e93 3
`;

test('/proc/net/udp addresses: IPv4 and IPv6, words in host order', () => {
  assert.equal(procAddress('0100007F'), '127.0.0.1');
  assert.equal(procAddress('00000000000000000000000001000000'), '::1');
  assert.equal(procAddress('B80D0120000000000000000001000000'), '2001:db8::1');
  assert.equal(procAddress('zz'), undefined);
});

test('sums the drops of the listening sockets only: our addresses, our port, unconnected', () => {
  const text = UDP + UDP6;
  assert.equal(listenDropsFrom(text, 0xb813, ['127.0.0.1']), 17);
  assert.equal(listenDropsFrom(text, 0xb813, ['127.0.0.1', '::1']), 20);
  // 127.0.0.2 is another address of the node that rtftp does not listen on.
  assert.equal(listenDropsFrom(text, 0xb813, ['::1']), 3);
  // A transfer's connected socket (remote set) and another port are not the listener.
  assert.equal(listenDropsFrom(text, 0xc350, ['127.0.0.1']), 0);
  assert.equal(listenDropsFrom(text, 69, ['127.0.0.1']), 9);
  assert.equal(listenDropsFrom('', 69, ['127.0.0.1']), 0);
});
