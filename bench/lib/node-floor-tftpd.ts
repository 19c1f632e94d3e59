/**
 * The floor of a TFTP server on Node's `dgram`: the least a Node server must do per block —
 * one `recvmsg` and one JavaScript callback per ACK, one `send` per DATA — and nothing else.
 * No view, no NBD, no admission, no logs, no metrics; each file read once into memory
 * (a measuring tool, never a server: it holds the whole payload). `bench/storm.ts
 * --servers node-floor` runs it beside rtftp, so the gap between rtftp and dnsmasq splits
 * into what Node itself costs per datagram and what rtftp adds on top.
 *
 *   node --import tsx bench/lib/node-floor-tftpd.ts <root> <address> <port> [shared]
 *
 * `shared`: every transfer is served from the listening socket itself (demultiplexed by
 * the client's address and port) instead of a socket of its own: fewer sockets for the
 * event loop to poll, more datagrams per wakeup.
 *
 * RRQ with blksize, tsize and windowsize (RFC 2347-2349, 7440), octet only; a repeated
 * ACK gets its window again; a transfer idle for 10 s is dropped.
 */
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join, normalize } from 'node:path';

const [root, address, portText, mode] = process.argv.slice(2);
const shared = mode === 'shared';
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
  /** Sends one datagram to the client (from its own socket, or the shared one). */
  out(packet: Buffer): void;
  key: string;
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
const byClient = new Map<string, Transfer>();

function send(t: Transfer, block: number): void {
  const start = (block - 1) * t.blksize;
  const len = Math.max(0, Math.min(t.blksize, t.file.length - start));
  const packet = t.packets[block % t.windowsize]!;
  packet.writeUInt16BE(3, 0);
  packet.writeUInt16BE(block & 0xffff, 2);
  t.file.copy(packet, 4, start, start + len);
  t.out(len === t.blksize ? packet : packet.subarray(0, 4 + len));
}

function sendWindow(t: Transfer): void {
  for (let b = t.acked + 1; b <= Math.min(t.acked + t.windowsize, t.blocks); b++) send(t, b);
  t.sent = Math.min(t.acked + t.windowsize, t.blocks);
}

function end(t: Transfer): void {
  live.delete(t);
  byClient.delete(t.key);
  if (!shared) t.socket.close();
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

function begin(socket: Socket, out: (p: Buffer) => void, key: string, msg: Buffer): void {
  const fields = msg.subarray(2).toString('latin1').split('\0');
  const [name, , ...opts] = fields;
  const file = name ? fileOf(name) : undefined;
  if (!file) {
    out(Buffer.from('\0\x05\0\x01file not found\0', 'latin1'));
    if (!shared) socket.close();
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
    out,
    key,
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
  byClient.set(key, t);
  if (oack.length > 0) out(Buffer.from(`\0\x06${oack.map((o) => `${o}\0`).join('')}`, 'latin1'));
  else sendWindow(t);
}

/** A transfer on a socket of its own, connected to the client. */
function start(msg: Buffer, port: number, host: string): void {
  const socket = createSocket('udp4');
  socket.bind({ address, port: 0 }, () => {
    socket.connect(port, host, () => {
      const key = `${host}:${port}`;
      socket.on('message', (m) => {
        const t = byClient.get(key);
        if (t) onAck(t, m);
      });
      socket.on('error', () => socket.close());
      begin(socket, (p) => socket.send(p), key, msg);
    });
  });
}

const listener = createSocket('udp4');
listener.on('message', (msg, rinfo) => {
  const key = `${rinfo.address}:${rinfo.port}`;
  const t = shared ? byClient.get(key) : undefined;
  if (t) onAck(t, msg);
  else if (msg.length > 4 && msg.readUInt16BE(0) === 1) {
    if (!shared) start(msg, rinfo.port, rinfo.address);
    else begin(listener, (p) => listener.send(p, rinfo.port, rinfo.address), key, msg);
  }
});
listener.bind({ address, port: Number(portText) }, () => {
  // As rtftp's --listen-buffer: a storm's burst of requests waits here, not in the kernel's drops.
  listener.setRecvBufferSize(8 * 1024 * 1024);
  process.stderr.write(`node-floor-tftpd listening on ${address}:${portText}\n`);
});
setInterval(() => {
  const now = Date.now();
  for (const t of live) if (now - t.lastHeard > 10_000) end(t);
}, 1000).unref();
process.on('SIGTERM', () => process.exit(0));
