/**
 * A complete TFTP read client (RFC 1350, 2347 options, 7440 windowsize, block-number
 * rollover) in Node, for the lossy-link and load tests and the benchmark's measuring
 * client. It hashes what it receives instead of keeping it, so 100 concurrent 32 MiB
 * downloads stay small; `keep` returns the bytes for small files.
 */
import { createHash } from 'node:crypto';
import { decodePacket, describePacket, encodeAck, encodeRrq } from './tftp-packets.ts';
import type { TftpOptions } from './tftp-packets.ts';
import { UdpEndpoint } from './udp-endpoint.ts';

export interface DownloadRequest {
  host: string;
  port: number;
  file: string;
  mode?: string;
  options?: TftpOptions;
  /** Source address to bind (a loopback alias gives the server a distinct client). */
  localAddress?: string;
  /** Retransmit after this much silence (ms). */
  retransmitMs?: number;
  /** Give up after this many retransmits in a row. */
  maxRetries?: number;
  keep?: boolean;
  /** The exact RRQ bytes to send (firmware replays); built from file/mode/options otherwise. */
  rrq?: Buffer;
}

export interface DownloadResult {
  ok: boolean;
  bytes: number;
  sha256: string;
  data?: Buffer;
  oack?: TftpOptions;
  error?: { code: number; message: string };
  /** DATA packets received, duplicates included. */
  dataPackets: number;
  retransmits: number;
  durationMs: number;
  failure?: string;
}

export async function downloadFile(req: DownloadRequest): Promise<DownloadResult> {
  const started = performance.now();
  const socket = await UdpEndpoint.open(req.localAddress ?? '0.0.0.0');
  const retransmitMs = req.retransmitMs ?? 500;
  const maxRetries = req.maxRetries ?? 8;
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  const result: DownloadResult = {
    ok: false,
    bytes: 0,
    sha256: '',
    dataPackets: 0,
    retransmits: 0,
    durationMs: 0,
  };
  let blksize = 512;
  let windowsize = 1;
  let serverPort: number | undefined;
  let lastSent = req.rrq ?? encodeRrq(req.file, req.mode ?? 'octet', req.options ?? {});
  let lastSentPort = req.port;
  // Total blocks received in order; the wire carries it modulo 65536 (rollover to 0).
  let received = 0;
  let inWindow = 0;
  let retries = 0;
  let gapAckFor = -1;
  let gapAckAt = 0;
  const send = async (msg: Buffer, port: number) => {
    lastSent = msg;
    lastSentPort = port;
    await socket.send(msg, port, req.host);
  };
  try {
    await send(lastSent, lastSentPort);
    for (;;) {
      const d = await socket.receive(retransmitMs);
      if (!d) {
        if (++retries > maxRetries) {
          result.failure = `timed out after ${received} blocks`;
          return result;
        }
        result.retransmits++;
        await socket.send(lastSent, lastSentPort, req.host);
        continue;
      }
      // RFC 1350 §4: the first reply fixes the server's TID; other ports are strangers.
      if (serverPort === undefined) serverPort = d.port;
      else if (d.port !== serverPort) continue;
      const p = decodePacket(d.msg);
      if (p.kind === 'error') {
        result.error = { code: p.code, message: p.message };
        return result;
      }
      if (p.kind === 'oack') {
        if (received > 0) continue;
        retries = 0;
        result.oack = p.options;
        blksize = Number(p.options.blksize ?? 512);
        windowsize = Number(p.options.windowsize ?? 1);
        await send(encodeAck(0), serverPort);
        continue;
      }
      if (p.kind !== 'data') {
        result.failure = `unexpected ${describePacket(d.msg)}`;
        return result;
      }
      result.dataPackets++;
      if (p.block !== ((received + 1) & 0xffff)) {
        // Out of order or a duplicate: RFC 7440 §4 says acknowledge the last block in
        // order so the server resends the window from there; once per gap, or the rest
        // of a stale window would make an ACK storm.
        const now = performance.now();
        if (gapAckFor === received && now - gapAckAt < retransmitMs / 2) continue;
        gapAckFor = received;
        gapAckAt = now;
        inWindow = 0;
        await send(encodeAck(received & 0xffff), serverPort);
        continue;
      }
      retries = 0;
      received++;
      result.bytes += p.data.length;
      hash.update(p.data);
      if (req.keep) kept.push(Buffer.from(p.data));
      const last = p.data.length < blksize;
      if (last || ++inWindow >= windowsize) {
        inWindow = 0;
        await send(encodeAck(p.block), serverPort);
      }
      if (last) {
        result.ok = true;
        return result;
      }
    }
  } finally {
    socket.close();
    result.sha256 = hash.digest('hex');
    if (req.keep) result.data = Buffer.concat(kept);
    result.durationMs = performance.now() - started;
  }
}
