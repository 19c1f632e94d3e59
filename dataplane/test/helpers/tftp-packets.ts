/**
 * A TFTP packet codec written for the tests only, from RFC 1350/2347/7440, on purpose
 * independent of the server's codec: a test oracle that shares the server's parser
 * would agree with any bug in it.
 */

export const Opcode = { Rrq: 1, Wrq: 2, Data: 3, Ack: 4, Error: 5, Oack: 6 } as const;

export const ErrorCode = {
  NotDefined: 0,
  FileNotFound: 1,
  AccessViolation: 2,
  DiskFull: 3,
  IllegalOperation: 4,
  UnknownTid: 5,
  FileExists: 6,
  NoSuchUser: 7,
  OptionRefused: 8,
} as const;

export type TftpOptions = Record<string, string>;

export type Packet =
  | { kind: 'rrq' | 'wrq'; file: string; mode: string; options: TftpOptions }
  | { kind: 'data'; block: number; data: Buffer }
  | { kind: 'ack'; block: number }
  | { kind: 'error'; code: number; message: string }
  | { kind: 'oack'; options: TftpOptions }
  | { kind: 'unknown'; opcode: number; raw: Buffer };

function strings(...parts: string[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(`${p}\0`, 'latin1')));
}

function opcodeBytes(opcode: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(opcode);
  return b;
}

/** An RRQ with the options in the order given (firmware sends them in a fixed order). */
export function encodeRrq(file: string, mode = 'octet', options: TftpOptions = {}): Buffer {
  const opts = Object.entries(options).flatMap(([k, v]) => [k, v]);
  return Buffer.concat([opcodeBytes(Opcode.Rrq), strings(file, mode, ...opts)]);
}

export function encodeWrq(file: string, mode = 'octet'): Buffer {
  return Buffer.concat([opcodeBytes(Opcode.Wrq), strings(file, mode)]);
}

export function encodeAck(block: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(Opcode.Ack, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

export function encodeError(code: number, message: string): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(Opcode.Error, 0);
  b.writeUInt16BE(code, 2);
  return Buffer.concat([b, strings(message)]);
}

export function encodeData(block: number, data: Buffer): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(Opcode.Data, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return Buffer.concat([b, data]);
}

function splitStrings(body: Buffer): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    if (body[i] === 0) {
      out.push(body.subarray(start, i).toString('latin1'));
      start = i + 1;
    }
  }
  return out;
}

function optionPairs(list: string[]): TftpOptions {
  const options: TftpOptions = {};
  for (let i = 0; i + 1 < list.length; i += 2) options[list[i]!.toLowerCase()] = list[i + 1]!;
  return options;
}

/** Parses what a server sends; anything unknown comes back as `raw` so a test can report it. */
export function decodePacket(msg: Buffer): Packet {
  const opcode = msg.length >= 2 ? msg.readUInt16BE(0) : -1;
  const hasBlock = msg.length >= 4;
  switch (opcode) {
    case Opcode.Data:
      if (!hasBlock) break;
      return { kind: 'data', block: msg.readUInt16BE(2), data: msg.subarray(4) };
    case Opcode.Ack:
      if (!hasBlock) break;
      return { kind: 'ack', block: msg.readUInt16BE(2) };
    case Opcode.Error:
      if (!hasBlock) break;
      return {
        kind: 'error',
        code: msg.readUInt16BE(2),
        message: splitStrings(msg.subarray(4))[0] ?? '',
      };
    case Opcode.Oack:
      return { kind: 'oack', options: optionPairs(splitStrings(msg.subarray(2))) };
    case Opcode.Rrq:
    case Opcode.Wrq: {
      const [file = '', mode = '', ...rest] = splitStrings(msg.subarray(2));
      return {
        kind: opcode === Opcode.Rrq ? 'rrq' : 'wrq',
        file,
        mode,
        options: optionPairs(rest),
      };
    }
  }
  return { kind: 'unknown', opcode, raw: msg };
}

export function describePacket(msg: Buffer): string {
  const p = decodePacket(msg);
  switch (p.kind) {
    case 'data':
      return `DATA ${p.block} (${p.data.length} bytes)`;
    case 'ack':
      return `ACK ${p.block}`;
    case 'error':
      return `ERROR ${p.code} "${p.message}"`;
    case 'oack':
      return `OACK ${JSON.stringify(p.options)}`;
    case 'rrq':
    case 'wrq':
      return `${p.kind.toUpperCase()} ${p.file} ${p.mode} ${JSON.stringify(p.options)}`;
    case 'unknown':
      return `opcode ${p.opcode} (${msg.length} bytes: ${msg.subarray(0, 16).toString('hex')})`;
  }
}
