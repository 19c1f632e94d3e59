/** TFTP protocol numbers (RFC 1350, 2347, 2348, 2349, 7440), named once. */

export const Opcode = {
  Rrq: 1,
  Wrq: 2,
  Data: 3,
  Ack: 4,
  Error: 5,
  Oack: 6,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** Error codes of RFC 1350 §5 and RFC 2347 (8). */
export const TftpError = {
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
export type TftpErrorCode = (typeof TftpError)[keyof typeof TftpError];

/** Names used in logs and the `code` label of rtftp_errors_sent_total. */
export const TFTP_ERROR_NAMES: Record<number, string> = {
  0: 'not_defined',
  1: 'file_not_found',
  2: 'access_violation',
  3: 'disk_full',
  4: 'illegal_operation',
  5: 'unknown_tid',
  6: 'file_exists',
  7: 'no_such_user',
  8: 'option_refused',
};

export const DEFAULT_BLKSIZE = 512;
/** RFC 2348: 8..65464 octets. */
export const MIN_BLKSIZE = 8;
export const MAX_BLKSIZE = 65464;
/** RFC 2349: 1..255 seconds. */
export const MIN_TIMEOUT_S = 1;
export const MAX_TIMEOUT_S = 255;
/** RFC 7440: 1..65535 blocks. */
export const MIN_WINDOWSIZE = 1;
export const MAX_WINDOWSIZE = 65535;
/** Largest datagram we ever need to parse: a request is at most one MTU; 64 KiB covers all. */
export const MAX_PACKET = 65535;
