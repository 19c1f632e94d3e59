/**
 * The environment every guestfish child runs in: a private TMPDIR (a killed guestfish
 * leaves its temp dir behind, so ours is emptied at start-up) and a persistent
 * LIBGUESTFS_CACHEDIR (the supermin appliance, ~680 MB, built once and kept: rebuilding
 * it costs 3-4 s per daemon start), the direct backend, and when KVM is unusable
 * force_tcg plus bin/qemu-tcg-wrapper.sh as qemu (a 64 MiB translation cache instead of
 * QEMU's 1 GiB default: 164 MiB less RSS per appliance).
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const WRAPPER = join('bin', 'qemu-tcg-wrapper.sh');

/** bin/qemu-tcg-wrapper.sh of this checkout or image (sources in a checkout, dist/ in it). */
export function findQemuTcgWrapper(from = dirname(fileURLToPath(import.meta.url))): string | null {
  for (let dir = from, up = 0; up < 8; dir = dirname(dir), up++) {
    if (existsSync(join(dir, WRAPPER))) return join(dir, WRAPPER);
  }
  return null;
}

export interface ApplianceEnvOptions {
  workDir: string;
  /** Where the supermin appliance is built and kept (default <workDir>/cache). */
  cacheDir?: string;
  kvmAvailable: boolean;
  /** MiB of translation cache per appliance under TCG; 0 leaves QEMU's 1 GiB. */
  tcgCacheMiB: number;
}

export async function prepareApplianceEnv(opts: ApplianceEnvOptions): Promise<NodeJS.ProcessEnv> {
  const tmp = join(opts.workDir, 'tmp');
  const cache = opts.cacheDir ?? join(opts.workDir, 'cache');
  // libguestfs puts qemu's sockets in $XDG_RUNTIME_DIR, else in /tmp itself (short paths
  // for sun_path's 108 bytes): ours, when the path is short enough.
  const run = join(opts.workDir, 'run');
  const ownRunDir = run.length < 60;
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  if (ownRunDir) await mkdir(run, { recursive: true, mode: 0o700 });
  await mkdir(cache, { recursive: true, mode: 0o700 });
  // Leftovers of children killed before this start (their qemu sockets, overlays).
  for (const dir of ownRunDir ? [tmp, run] : [tmp]) {
    await Promise.all(
      (await readdir(dir)).map((n) => rm(join(dir, n), { recursive: true, force: true })),
    );
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TMPDIR: tmp,
    LIBGUESTFS_CACHEDIR: cache,
    LIBGUESTFS_BACKEND: 'direct',
  };
  if (ownRunDir) env.XDG_RUNTIME_DIR = run;
  if (opts.kvmAvailable) delete env.LIBGUESTFS_BACKEND_SETTINGS;
  else {
    env.LIBGUESTFS_BACKEND_SETTINGS = 'force_tcg';
    // A qemu the user chose (LIBGUESTFS_HV) is theirs to tune.
    const wrapper = env.LIBGUESTFS_HV || opts.tcgCacheMiB === 0 ? null : findQemuTcgWrapper();
    if (wrapper) {
      env.LIBGUESTFS_HV = wrapper;
      env.RTFTP_TCG_CACHE_MIB = String(opts.tcgCacheMiB);
    }
  }
  // Debug switches would flood stderr and the framing with trace lines.
  delete env.LIBGUESTFS_DEBUG;
  delete env.LIBGUESTFS_TRACE;
  return env;
}
