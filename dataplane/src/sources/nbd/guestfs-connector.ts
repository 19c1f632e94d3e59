/**
 * The 'guestfs' DiskConnector: decides KVM once (kvm-probe.ts), prepares the children's
 * environment once, then launches one GuestfishSession per connect. Each connect passes
 * the NBD target gate first (../nbd-target-gate.ts), and the appliance is given the
 * address the gate checked, never the name.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DataplaneMetrics } from '../../metrics.ts';
import type { DiskConnector } from '../disk-session.ts';
import { CONFIG_ONLY_GATE, type NbdTargetGate } from '../nbd-target-gate.ts';
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
  /** The check before the connect (--nbd-allow); a config's own nbd_allow without one. */
  gate?: NbdTargetGate;
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
    gate = CONFIG_ONLY_GATE,
    ...tuning
  } = opts;
  const connect: DiskConnector = async ({ config, configName, logger, signal }) => {
    // Before anything runs: a refused target launches nothing. qemu takes one server
    // address, so the first address the gate checked.
    const [endpoint] = await gate.admit(config);
    const env = await prepare();
    return GuestfishSession.connect(
      {
        ...tuning,
        config: endpoint === config.endpoint ? config : { ...config, endpoint: endpoint! },
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
