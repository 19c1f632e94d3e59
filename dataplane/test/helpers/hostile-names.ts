/**
 * Names a machine on the boot network may send that never reach a source, with the
 * refusal reason each gets (sources/request-path.ts). One table for every layer that
 * must refuse them the same way: parseRequestPath itself, TFTP on the wire (ERROR 2) and
 * HTTP on the wire (403), each with the same reason in its log line and metric.
 */
export const HOSTILE_NAMES: readonly (readonly [name: string, reason: string])[] = [
  ['../etc/passwd', 'traversal'],
  ['/../../etc/passwd', 'traversal'],
  ['a/../../b', 'traversal'],
  ['a/..', 'traversal'],
  ['..\\..\\windows', 'traversal'],
  ['..', 'traversal'],
  ['kernel\0.img', 'control-character'],
  ['a\nb', 'control-character'],
  ['a\u007fb', 'control-character'],
  ['a\u0085b', 'control-character'],
  ['10.0.0.5.nbd', 'config-file'],
  ['/x/10.0.0.5.NBD', 'config-file'],
  ['..nbd/../x', 'traversal'],
  ['/', 'empty'],
  ['.', 'empty'],
  ['x'.repeat(1025), 'too-long'],
  ['é'.repeat(513), 'too-long'],
];
