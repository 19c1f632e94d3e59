/**
 * Packet codec. Parsing never throws: any datagram yields a packet or a reason it is
 * malformed, so nothing a client sends can take the server down.
 */
import { Opcode } from './protocol.ts';

export type Mode = 'octet' | 'netascii' | 'mail';

export interface RequestPacket {
  opcode: typeof Opcode.Rrq | typeof Opcode.Wrq;
  filename: string;
  /** Lower-cased mode as sent (RFC 1350: case-insensitive). */
  mode: string;
  /** Options with lower-cased names (RFC 2347: case-insensitive), values as sent; first wins. */
  options: Map<string, string>;
}
export interface DataPacket {
  opcode: typeof Opcode.Data;
  block: number;
  data: Buffer;
}
export interface AckPacket {
  opcode: typeof Opcode.Ack;
  block: number;
}
export interface ErrorPacket {
  opcode: typeof Opcode.Error;
  code: number;
  message: string;
}
export interface OackPacket {
  opcode: typeof Opcode.Oack;
  options: Map<string, string>;
}
export type Packet = RequestPacket | DataPacket | AckPacket | ErrorPacket | OackPacket;

export type ParseResult =
  { ok: true; packet: Packet } | { ok: false; error: string; opcode?: number };

/** Splits NUL-terminated strings from `start`; null if the last one is unterminated. */
function readStrings(buf: Buffer, start: number): string[] | null {
  const out: string[] = [];
  let i = start;
  while (i < buf.length) {
    const end = buf.indexOf(0, i);
    if (end < 0) return null;
    // latin1: TFTP names are octet strings; latin1 maps bytes 1:1 and never fails.
    out.push(buf.toString('latin1', i, end));
    i = end + 1;
  }
  return out;
}

export function parsePacket(buf: Buffer): ParseResult {
  if (buf.length < 2) return { ok: false, error: 'packet shorter than an opcode' };
  const opcode = buf.readUInt16BE(0);
  switch (opcode) {
    case Opcode.Rrq:
    case Opcode.Wrq: {
      const strings = readStrings(buf, 2);
      if (!strings) return { ok: false, opcode, error: 'request strings not NUL-terminated' };
      if (strings.length < 2)
        return { ok: false, opcode, error: 'request without filename and mode' };
      if (strings.length % 2 !== 0) return { ok: false, opcode, error: 'option without a value' };
      const [filename, mode] = strings as [string, string];
      if (filename === '') return { ok: false, opcode, error: 'empty filename' };
      const options = new Map<string, string>();
      for (let i = 2; i + 1 < strings.length; i += 2) {
        const name = strings[i]!.toLowerCase();
        if (!options.has(name)) options.set(name, strings[i + 1]!);
      }
      return { ok: true, packet: { opcode, filename, mode: mode.toLowerCase(), options } };
    }
    case Opcode.Data:
      if (buf.length < 4) return { ok: false, opcode, error: 'DATA shorter than 4 bytes' };
      return { ok: true, packet: { opcode, block: buf.readUInt16BE(2), data: buf.subarray(4) } };
    case Opcode.Ack:
      // Some clients pad ACKs; only the first 4 bytes matter.
      if (buf.length < 4) return { ok: false, opcode, error: 'ACK shorter than 4 bytes' };
      return { ok: true, packet: { opcode, block: buf.readUInt16BE(2) } };
    case Opcode.Error: {
      if (buf.length < 4) return { ok: false, opcode, error: 'ERROR shorter than 4 bytes' };
      const end = buf.indexOf(0, 4);
      const message = buf.toString('latin1', 4, end < 0 ? buf.length : end);
      return { ok: true, packet: { opcode, code: buf.readUInt16BE(2), message } };
    }
    case Opcode.Oack: {
      const strings = readStrings(buf, 2);
      if (!strings || strings.length % 2 !== 0)
        return { ok: false, opcode, error: 'malformed OACK' };
      const options = new Map<string, string>();
      for (let i = 0; i + 1 < strings.length; i += 2)
        options.set(strings[i]!.toLowerCase(), strings[i + 1]!);
      return { ok: true, packet: { opcode, options } };
    }
    default:
      return { ok: false, opcode, error: `unknown opcode ${opcode}` };
  }
}

export function encodeAck(block: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt16BE(Opcode.Ack, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

/** Writes a DATA header into the first 4 bytes of `packet` (payload follows in place). */
export function writeDataHeader(packet: Buffer, block: number): void {
  // Byte by byte: every block of every transfer passes here (no bounds-checked writes).
  packet[0] = 0;
  packet[1] = Opcode.Data;
  packet[2] = (block >> 8) & 0xff;
  packet[3] = block & 0xff;
}

export function encodeData(block: number, data: Buffer): Buffer {
  const b = Buffer.allocUnsafe(4 + data.length);
  writeDataHeader(b, block);
  data.copy(b, 4);
  return b;
}

export function encodeError(code: number, message: string): Buffer {
  const msg = Buffer.from(message.slice(0, 200), 'latin1');
  const b = Buffer.allocUnsafe(5 + msg.length);
  b.writeUInt16BE(Opcode.Error, 0);
  b.writeUInt16BE(code, 2);
  msg.copy(b, 4);
  b[4 + msg.length] = 0;
  return b;
}

function encodeStrings(opcode: number, strings: readonly string[]): Buffer {
  const parts = strings.map((s) => Buffer.from(s + '\0', 'latin1'));
  const head = Buffer.allocUnsafe(2);
  head.writeUInt16BE(opcode, 0);
  return Buffer.concat([head, ...parts]);
}

export function encodeOack(options: ReadonlyMap<string, string>): Buffer {
  return encodeStrings(Opcode.Oack, [...options].flat());
}

export function encodeRequest(
  opcode: typeof Opcode.Rrq | typeof Opcode.Wrq,
  filename: string,
  mode: string,
  options: ReadonlyMap<string, string> | Record<string, string> = new Map(),
): Buffer {
  const entries = options instanceof Map ? [...options] : Object.entries(options);
  return encodeStrings(opcode, [filename, mode, ...entries.flat()]);
}
