/**
 * The 'guestfs' DiskConnector: decides KVM once (kvm-probe.ts), prepares the children's
 * environment once, then launches one GuestfishSession per connect.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DataplaneMetrics } from '../../metrics.ts';
import type { DiskConnector } from '../disk-session.ts';
import { prepareApplianceEnv } from './appliance-env.ts';
import { GuestfishSession } from './guestfish-session.ts';
import type { ApplianceTuning } from './guestfish-session.ts';
import { decideKvm } from './kvm-probe.ts';
import type { KvmMode } from './kvm-probe.ts';

export interface GuestfsConnectorOptions extends ApplianceTuning {
  workDir: string;
  cacheDir?: string;
  logger: Logger;
  metrics: DataplaneMetrics;
  kvm: KvmMode;
  /** MiB of translation cache per appliance under TCG; 0 leaves QEMU's default. */
  tcgCacheMiB: number;
}

export interface GuestfsConnector {
  connect: DiskConnector;
  /** Probes KVM and prepares the environment; connect() waits for it anyway. */
  prepare(): Promise<void>;
  readonly kvmAvailable: boolean | undefined;
}

export function createGuestfsConnector(opts: GuestfsConnectorOptions): GuestfsConnector {
  let envPromise: Promise<NodeJS.ProcessEnv> | undefined;
  let kvmAvailable: boolean | undefined;
  const prepare = () => {
    envPromise ??= (async () => {
      const cacheDir = opts.cacheDir ?? join(opts.workDir, 'cache');
      await mkdir(cacheDir, { recursive: true, mode: 0o700 });
      const kvm = await decideKvm(opts.kvm, { cacheFile: join(cacheDir, 'rtftp-kvm-probe.json') });
      kvmAvailable = kvm.available;
      opts.metrics.kvmAvailable.set(kvm.available ? 1 : 0);
      const fields = { kvm: kvm.available, reason: kvm.reason, durationMs: kvm.durationMs };
      if (kvm.available) opts.logger.info(fields, 'KVM probed: appliances use KVM');
      else
        opts.logger.warn(fields, 'KVM probed: unusable, appliances fall back to TCG (force_tcg)');
      return prepareApplianceEnv({
        workDir: opts.workDir,
        ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
        kvmAvailable: kvm.available,
        tcgCacheMiB: opts.tcgCacheMiB,
      });
    })();
    return envPromise;
  };
  const {
    workDir: _w,
    cacheDir: _c,
    logger: _l,
    metrics: _m,
    kvm: _k,
    tcgCacheMiB: _t,
    ...tuning
  } = opts;
  const connect: DiskConnector = async ({ config, configName, logger, signal }) => {
    const env = await prepare();
    return GuestfishSession.connect(
      {
        ...tuning,
        config,
        configName,
        logger,
        env,
        onRead: (n) => opts.metrics.nbdReadBytes.inc({ backend: 'guestfs' }, n),
        onReadError: () => opts.metrics.nbdReadErrors.inc({ backend: 'guestfs' }),
      },
      signal,
    );
  };
  return {
    connect,
    prepare: async () => {
      await prepare();
    },
    get kvmAvailable() {
      return kvmAvailable;
    },
  };
}
