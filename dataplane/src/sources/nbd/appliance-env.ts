/**
 * The environment every guestfish child runs in: a private TMPDIR (a killed guestfish
 * leaves its temp dir behind, so ours is emptied at start-up) and a persistent
 * LIBGUESTFS_CACHEDIR (the supermin appliance, ~680 MB, built once and kept: rebuilding
 * it costs 3-4 s per daemon start), the direct backend, and force_tcg when KVM is unusable.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface ApplianceEnvOptions {
  workDir: string;
  /** Where the supermin appliance is built and kept (default <workDir>/cache). */
  cacheDir?: string;
  kvmAvailable: boolean;
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
  else env.LIBGUESTFS_BACKEND_SETTINGS = 'force_tcg';
  // Debug switches would flood stderr and the framing with trace lines.
  delete env.LIBGUESTFS_DEBUG;
  delete env.LIBGUESTFS_TRACE;
  return env;
}
