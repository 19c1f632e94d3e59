import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequestTarget } from './request-target.ts';

test('origin- and absolute-form paths, query ignored, percent-decoded as UTF-8', () => {
  const table: [string, string][] = [
    ['/boot.ipxe', 'boot.ipxe'],
    ['//grub/grub.cfg', '/grub/grub.cfg'],
    ['/boot.ipxe?mac=52:54:00:12:34:56', 'boot.ipxe'],
    ['http://10.0.0.1:8080/vmlinuz', 'vmlinuz'],
    ['HTTP://10.0.0.1', ''],
    ['/a%20b/%C3%A9t%C3%A9.img', 'a b/été.img'],
    ['/%2e%2e/etc/passwd', '../etc/passwd'],
    ['/dir%2Ffile', 'dir/file'],
    ['/k%00.img', 'k\u0000.img'],
    ['/' + 'x'.repeat(1024), 'x'.repeat(1024)],
  ];
  for (const [target, name] of table)
    assert.deepEqual(parseRequestTarget(target), { ok: true, name }, target);
});

test('a target that is not a path, or malformed encoding, is refused (400)', () => {
  for (const target of [
    undefined,
    '',
    '*',
    'boot.ipxe',
    'example.com:443',
    'ftp://x/y',
    '/a#b',
    '/%zz',
    '/%4',
    '/%C3',
    '/%FF%FE',
    '/%C0%AF',
  ])
    assert.equal(parseRequestTarget(target).ok, false, String(target));
});
