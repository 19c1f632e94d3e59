import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequestPath } from './request-path.ts';
import { HOSTILE_NAMES } from '../../test/helpers/hostile-names.ts';

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

for (const [name, reason] of HOSTILE_NAMES) {
  test(`refuses ${JSON.stringify(name.slice(0, 40))} (${reason})`, () => {
    assert.deepEqual(parseRequestPath(name), { ok: false, reason });
  });
}

test('accepts names of exactly 1024 bytes and dots inside names', () => {
  assert.equal(parseRequestPath('x'.repeat(1024)).ok, true);
  assert.deepEqual(parseRequestPath('...'), { ok: true, components: ['...'] });
  assert.deepEqual(parseRequestPath('a..b'), { ok: true, components: ['a..b'] });
});
