import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { findQemuTcgWrapper, prepareApplianceEnv } from './appliance-env.ts';

const work = mkdtempSync(join(tmpdir(), 'rtftp-appliance-env-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('qemu TCG wrapper', () => {
  const wrapper = findQemuTcgWrapper();
  // A stand-in qemu that prints each argument it was given, bracketed.
  const fakeQemu = join(work, 'fake-qemu');
  writeFileSync(fakeQemu, '#!/bin/sh\nfor a in "$@"; do printf "[%s]" "$a"; done\n');
  chmodSync(fakeQemu, 0o755);
  const run = (args: string[], env: Record<string, string> = {}) =>
    execFileSync(wrapper!, args, {
      env: { PATH: process.env.PATH, RTFTP_QEMU: fakeQemu, ...env },
      encoding: 'utf8',
    });

  it('is found from the sources (the image finds it from dist/ the same way)', () => {
    assert.ok(wrapper?.endsWith('bin/qemu-tcg-wrapper.sh'), String(wrapper));
  });

  it("turns libguestfs's -machine accel=tcg into -accel with a bounded translation cache", () => {
    assert.equal(
      run(['-nodefaults', '-machine', 'accel=tcg', '-m', '256', '-append', 'a b  c']),
      '[-nodefaults][-accel][tcg,tb-size=64][-m][256][-append][a b  c]',
    );
    assert.equal(
      run(['-machine', 'q35,accel=tcg,usb=off'], { RTFTP_TCG_CACHE_MIB: '32' }),
      '[-machine][q35,usb=off][-accel][tcg,tb-size=32]',
    );
  });

  it("leaves everything else alone (libguestfs's own probes of qemu)", () => {
    assert.equal(run(['-machine', 'accel=kvm:tcg', '-help']), '[-machine][accel=kvm:tcg][-help]');
    assert.equal(run(['-version']), '[-version]');
  });
});

describe('appliance environment', () => {
  it('uses the wrapper only under TCG with a cache size, never over a qemu the user chose', async () => {
    const saved = process.env.LIBGUESTFS_HV;
    delete process.env.LIBGUESTFS_HV;
    try {
      const tcg = await prepareApplianceEnv({
        workDir: join(work, 'a'),
        kvmAvailable: false,
        tcgCacheMiB: 64,
      });
      assert.equal(tcg.LIBGUESTFS_BACKEND_SETTINGS, 'force_tcg');
      assert.equal(tcg.LIBGUESTFS_HV, findQemuTcgWrapper());
      assert.equal(tcg.RTFTP_TCG_CACHE_MIB, '64');
      const kvm = await prepareApplianceEnv({
        workDir: join(work, 'b'),
        kvmAvailable: true,
        tcgCacheMiB: 64,
      });
      assert.equal(kvm.LIBGUESTFS_HV, undefined);
      const qemuDefault = await prepareApplianceEnv({
        workDir: join(work, 'd'),
        kvmAvailable: false,
        tcgCacheMiB: 0,
      });
      assert.equal(qemuDefault.LIBGUESTFS_HV, undefined, '--tcg-cache 0: QEMU as it is');
      process.env.LIBGUESTFS_HV = '/opt/my-qemu';
      const own = await prepareApplianceEnv({
        workDir: join(work, 'c'),
        kvmAvailable: false,
        tcgCacheMiB: 64,
      });
      assert.equal(own.LIBGUESTFS_HV, '/opt/my-qemu');
    } finally {
      if (saved === undefined) delete process.env.LIBGUESTFS_HV;
      else process.env.LIBGUESTFS_HV = saved;
    }
  });
});
