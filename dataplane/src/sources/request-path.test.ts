import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequestPath } from './request-path.ts';

test('a leading slash and backslashes are relative to the view', () => {
  assert.deepEqual(parseRequestPath('/boot/grub/grub.cfg'), {
    ok: true,
    components: ['boot', 'grub', 'grub.cfg'],
  });
  assert.deepEqual(parseRequestPath('\\EFI\\boot\\bootx64.efi'), {
    ok: true,
    components: ['EFI', 'boot', 'bootx64.efi'],
  });
  assert.deepEqual(parseRequestPath('./a//b/./c'), { ok: true, components: ['a', 'b', 'c'] });
});

const hostile: [string, string][] = [
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
for (const [name, reason] of hostile) {
  test(`refuses ${JSON.stringify(name.slice(0, 40))} (${reason})`, () => {
    assert.deepEqual(parseRequestPath(name), { ok: false, reason });
  });
}

test('accepts names of exactly 1024 bytes and dots inside names', () => {
  assert.equal(parseRequestPath('x'.repeat(1024)).ok, true);
  assert.deepEqual(parseRequestPath('...'), { ok: true, components: ['...'] });
  assert.deepEqual(parseRequestPath('a..b'), { ok: true, components: ['a..b'] });
});
