/**
 * The floor of a TFTP server on Node's `dgram`: the least a Node server must do per block —
 * one `recvmsg` and one JavaScript callback per ACK, one `send` per DATA — and nothing else.
 * No view, no NBD, no admission, no logs, no metrics; each file read once into memory
 * (a measuring tool, never a server: it holds the whole payload). `bench/storm.ts
 * --servers node-floor` runs it beside rtftp, so the gap between rtftp and dnsmasq splits
 * into what Node itself costs per datagram and what rtftp adds on top.
 *
 *   node --import tsx bench/lib/node-floor-tftpd.ts <root> <address> <port>
 *
 * RRQ with blksize, tsize and windowsize (RFC 2347-2349, 7440), octet only; a repeated
 * ACK gets its window again; a transfer idle for 10 s is dropped.
 */
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join, normalize } from 'node:path';

const [root, address, portText] = process.argv.slice(2);
if (!root || !address || !portText) {
  process.stderr.write('usage: node-floor-tftpd <root> <address> <port>\n');
  process.exit(2);
}

const files = new Map<string, Buffer>();
function fileOf(name: string): Buffer | undefined {
  const rel = normalize(name.replace(/^\/+/, ''));
  if (rel.startsWith('..')) return undefined;
  let bytes = files.get(rel);
  if (!bytes) {
    try {
      bytes = readFileSync(join(root!, rel));
    } catch {
      return undefined;
    }
    files.set(rel, bytes);
  }
  return bytes;
}

interface Transfer {
  socket: Socket;
  file: Buffer;
  blksize: number;
  windowsize: number;
  blocks: number;
  acked: number;
  sent: number;
  packets: Buffer[];
  lastHeard: number;
}

const live = new Set<Transfer>();

function send(t: Transfer, block: number): void {
  const start = (block - 1) * t.blksize;
  const len = Math.max(0, Math.min(t.blksize, t.file.length - start));
  const packet = t.packets[block % t.windowsize]!;
  packet.writeUInt16BE(3, 0);
  packet.writeUInt16BE(block & 0xffff, 2);
  t.file.copy(packet, 4, start, start + len);
  t.socket.send(len === t.blksize ? packet : packet.subarray(0, 4 + len));
}

function sendWindow(t: Transfer): void {
  for (let b = t.acked + 1; b <= Math.min(t.acked + t.windowsize, t.blocks); b++) send(t, b);
  t.sent = Math.min(t.acked + t.windowsize, t.blocks);
}

function end(t: Transfer): void {
  live.delete(t);
  t.socket.close();
}

function onAck(t: Transfer, msg: Buffer): void {
  t.lastHeard = Date.now();
  const op = msg.readUInt16BE(0);
  if (op === 5) return end(t);
  if (op !== 4 || msg.length < 4) return;
  const n = msg.readUInt16BE(2);
  // The block acknowledged, within what was sent (16-bit block numbers wrap).
  const back = (t.sent - n) & 0xffff;
  const block = t.sent - back;
  if (block < t.acked || block > t.sent) return;
  if (block === t.blocks) return end(t);
  if (block === t.acked && block < t.sent) return sendWindow(t); // a repeat: resend
  t.acked = block;
  if (t.acked === t.sent) sendWindow(t);
}

function start(msg: Buffer, port: number, host: string): void {
  const fields = msg.subarray(2).toString('latin1').split('\0');
  const [name, , ...opts] = fields;
  const file = name ? fileOf(name) : undefined;
  const socket = createSocket('udp4');
  socket.bind({ address, port: 0 }, () => {
    socket.connect(port, host, () => {
      if (!file) {
        socket.send(Buffer.from('\0\x05\0\x01file not found\0', 'latin1'));
        socket.close();
        return;
      }
      let blksize = 512;
      let windowsize = 1;
      const oack: string[] = [];
      for (let i = 0; i + 1 < opts.length; i += 2) {
        const key = opts[i]!.toLowerCase();
        const value = Number(opts[i + 1]);
        if (key === 'blksize' && value >= 8) blksize = Math.min(value, 65464);
        else if (key === 'windowsize' && value >= 1) windowsize = Math.min(value, 64);
        else if (key === 'tsize') oack.push('tsize', String(file.length));
        else continue;
        if (key !== 'tsize') oack.push(key, String(key === 'blksize' ? blksize : windowsize));
      }
      const t: Transfer = {
        socket,
        file,
        blksize,
        windowsize,
        blocks: Math.floor(file.length / blksize) + 1,
        acked: 0,
        sent: 0,
        packets: Array.from({ length: windowsize }, () => Buffer.alloc(blksize + 4)),
        lastHeard: Date.now(),
      };
      live.add(t);
      socket.on('message', (m) => onAck(t, m));
      socket.on('error', () => end(t));
      if (oack.length > 0)
        socket.send(Buffer.from(`\0\x06${oack.map((o) => `${o}\0`).join('')}`, 'latin1'));
      else sendWindow(t);
    });
  });
}

const listener = createSocket('udp4');
listener.on('message', (msg, rinfo) => {
  if (msg.length > 4 && msg.readUInt16BE(0) === 1) start(msg, rinfo.port, rinfo.address);
});
listener.bind({ address, port: Number(portText) }, () =>
  process.stderr.write(`node-floor-tftpd listening on ${address}:${portText}\n`),
);
setInterval(() => {
  const now = Date.now();
  for (const t of live) if (now - t.lastHeard > 10_000) end(t);
}, 1000).unref();
process.on('SIGTERM', () => process.exit(0));
