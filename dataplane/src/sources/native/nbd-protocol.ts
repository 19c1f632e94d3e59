/**
 * NBD protocol numbers (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md),
 * the subset a read-only client without structured replies needs.
 */
export const NBD_INIT_MAGIC = Buffer.from('NBDMAGIC', 'latin1');
export const NBD_OPTS_MAGIC = 0x49484156454f5054n; // "IHAVEOPT": newstyle negotiation
export const NBD_OLDSTYLE_MAGIC = 0x0000420281861253n;
export const NBD_REP_MAGIC = 0x0003e889045565a9n;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

export const HandshakeFlag = { FixedNewstyle: 1, NoZeroes: 2 } as const;
export const ClientFlag = { FixedNewstyle: 1, NoZeroes: 2 } as const;

export const Option = { ExportName: 1, Go: 7 } as const;
export const Reply = { Ack: 1, Info: 3 } as const;
export const ReplyError = {
  Unsupported: 0x80000001,
  Policy: 0x80000002,
  Invalid: 0x80000003,
  TlsRequired: 0x80000005,
  Unknown: 0x80000006,
} as const;
export const Info = { Export: 0, BlockSize: 3 } as const;
export const Command = { Read: 0, Disconnect: 2 } as const;

/** Largest payload a server must accept without NBD_INFO_BLOCK_SIZE (proto.md: 32 MiB). */
export const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;
/** Largest option reply we accept: a server may not make us buffer without bound. */
export const MAX_OPTION_REPLY = 64 * 1024;

export function encodeOption(option: number, data: Buffer): Buffer {
  const b = Buffer.alloc(16 + data.length);
  b.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(data.length, 12);
  data.copy(b, 16);
  return b;
}

export function encodeGo(exportName: string, infos: readonly number[]): Buffer {
  const name = Buffer.from(exportName, 'utf8');
  const b = Buffer.alloc(4 + name.length + 2 + 2 * infos.length);
  b.writeUInt32BE(name.length, 0);
  name.copy(b, 4);
  b.writeUInt16BE(infos.length, 4 + name.length);
  infos.forEach((info, i) => b.writeUInt16BE(info, 6 + name.length + 2 * i));
  return encodeOption(Option.Go, b);
}

export function encodeRequest(
  type: number,
  handle: number,
  offset: number,
  length: number,
): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  b.writeUInt16BE(0, 4);
  b.writeUInt16BE(type, 6);
  b.writeUInt32BE(0, 8);
  b.writeUInt32BE(handle, 12);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}
