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
  kvmAvailable: boolean;
}

export async function prepareApplianceEnv(opts: ApplianceEnvOptions): Promise<NodeJS.ProcessEnv> {
  const tmp = join(opts.workDir, 'tmp');
  const cache = join(opts.workDir, 'cache');
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  await mkdir(cache, { recursive: true, mode: 0o700 });
  // Leftovers of children killed before this start (their qemu sockets, overlays).
  await Promise.all(
    (await readdir(tmp)).map((n) => rm(join(tmp, n), { recursive: true, force: true })),
  );
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TMPDIR: tmp,
    LIBGUESTFS_CACHEDIR: cache,
    LIBGUESTFS_BACKEND: 'direct',
  };
  if (opts.kvmAvailable) delete env.LIBGUESTFS_BACKEND_SETTINGS;
  else env.LIBGUESTFS_BACKEND_SETTINGS = 'force_tcg';
  // Debug switches would flood stderr and the framing with trace lines.
  delete env.LIBGUESTFS_DEBUG;
  delete env.LIBGUESTFS_TRACE;
  return env;
}
