/**
 * Decides once, at start, whether libguestfs appliances can use KVM. On nested
 * virtualisation /dev/kvm often exists but does not work: here qemu with accel=kvm
 * either aborts ("failed to set MSR 0x10a") or hangs with a CPU spinning and nothing on
 * the console, so libguestfs (which would pick kvm) never finishes launching. The
 * cheapest check that catches both: boot the host kernel under accel=kvm and wait for its
 * first console line ("Linux version", printed within ~0.3 s under a working KVM).
 */
import { spawn } from 'node:child_process';
import { access, constants, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import type { Logger } from 'pino';

export type KvmMode = 'auto' | 'on' | 'off';

export interface KvmProbeResult {
  available: boolean;
  /** Why, for the log line. */
  reason: string;
  durationMs: number;
}

async function hostKernel(): Promise<string | null> {
  try {
    const names = (await readdir('/boot')).filter((n) => n.startsWith('vmlinuz-')).sort();
    const last = names.at(-1);
    return last ? `/boot/${last}` : null;
  } catch {
    return null;
  }
}

export async function probeKvm(
  opts: { timeoutMs?: number; qemu?: string } = {},
): Promise<KvmProbeResult> {
  const started = Date.now();
  const done = (available: boolean, reason: string): KvmProbeResult => ({
    available,
    reason,
    durationMs: Date.now() - started,
  });
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (err) {
    return done(false, `/dev/kvm is not usable: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const kernel = await hostKernel();
  if (!kernel) return done(false, 'no kernel in /boot to probe KVM with');
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise<KvmProbeResult>((resolve) => {
    const child = spawn(
      opts.qemu ?? 'qemu-system-x86_64',
      [
        ...['-machine', 'accel=kvm', '-cpu', 'max', '-m', '128', '-nodefaults'],
        ...['-display', 'none', '-no-reboot', '-monitor', 'none', '-serial', 'stdio'],
        ...['-kernel', kernel, '-append', 'console=ttyS0 earlyprintk=ttyS0 panic=-1'],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    let settled = false;
    // Under a broken KVM the guest spins forever: it must not outlive a daemon that exits
    // while probing (a pod stopped in its first seconds).
    const killChild = () => child.kill('SIGKILL');
    process.once('exit', killChild);
    const finish = (available: boolean, reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      process.removeListener('exit', killChild);
      killChild();
      resolve(done(available, reason));
    };
    const timer = setTimeout(
      () =>
        finish(false, `a KVM guest printed nothing within ${timeoutMs} ms (nested KVM broken?)`),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      output = (output + d.toString()).slice(-4096);
      if (output.includes('Linux version')) finish(true, 'a KVM guest booted');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (err) => finish(false, `cannot run qemu: ${err.message}`));
    child.once('exit', (code) => {
      const last = output.trim().split('\n').at(-1) ?? '';
      finish(false, `qemu with accel=kvm exited (code ${code}): ${last}`);
    });
  });
}

/**
 * Applies a mode: 'on'/'off' skip the probe. 'auto' probes once per process (every caller
 * gets that one decision: KVM does not start or stop working until a reboot) and, with
 * `cacheFile`, once per boot (keyed by the kernel's boot_id): a broken-KVM probe spins a
 * CPU for its whole timeout.
 */
export function decideKvm(
  mode: KvmMode,
  opts: { timeoutMs?: number; cacheFile?: string } = {},
): Promise<KvmProbeResult> {
  if (mode === 'on')
    return Promise.resolve({ available: true, reason: 'forced on (--nbd-kvm on)', durationMs: 0 });
  if (mode === 'off')
    return Promise.resolve({
      available: false,
      reason: 'forced off (--nbd-kvm off)',
      durationMs: 0,
    });
  autoDecision ??= probeOncePerBoot(opts);
  return autoDecision;
}

let autoDecision: Promise<KvmProbeResult> | undefined;

async function probeOncePerBoot(opts: {
  timeoutMs?: number;
  cacheFile?: string;
}): Promise<KvmProbeResult> {
  const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
  if (opts.cacheFile && bootId) {
    try {
      const cached = JSON.parse(await readFile(opts.cacheFile, 'utf8')) as KvmProbeResult & {
        bootId: string;
      };
      if (cached.bootId === bootId && typeof cached.available === 'boolean') {
        return {
          available: cached.available,
          reason: `${cached.reason} (probed earlier this boot)`,
          durationMs: 0,
        };
      }
    } catch {
      // no cache yet
    }
  }
  const result = await probeKvm(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
  if (opts.cacheFile && bootId) {
    const file = opts.cacheFile;
    await mkdir(dirname(file), { recursive: true, mode: 0o700 })
      .then(() => writeFile(file, JSON.stringify({ ...result, bootId })))
      .catch(() => undefined);
  }
  return result;
}

/** Whether an executable `name` is on PATH. */
export async function onPath(name: string, path = process.env.PATH ?? ''): Promise<boolean> {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    try {
      await access(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // next directory
    }
  }
  return false;
}

/**
 * Decides KVM when the daemon starts rather than at the first appliance, so
 * `rtftp_kvm_available` says 1 or 0 from the start: it reads -1 until then, and stays -1
 * where libguestfs cannot be used at all (no guestfish installed), since no appliance will
 * ever launch there. Never rejects; the caller does not wait for it (serving does not
 * depend on it, and a broken KVM takes the probe's whole timeout).
 */
export async function decideKvmAtStart(opts: {
  mode: KvmMode;
  cacheFile: string;
  logger: Logger;
  /** rtftp_kvm_available */
  gauge: { set(value: number): void };
  /** Test seam: whether libguestfs is installed. */
  guestfishInstalled?: () => Promise<boolean>;
}): Promise<KvmProbeResult | null> {
  if (!(await (opts.guestfishInstalled ?? (() => onPath('guestfish')))())) {
    opts.logger.info(
      { kvm: null, reason: 'guestfish not on PATH: no libguestfs appliance can launch' },
      'KVM not probed',
    );
    return null;
  }
  try {
    const kvm = await decideKvm(opts.mode, { cacheFile: opts.cacheFile });
    opts.gauge.set(kvm.available ? 1 : 0);
    opts.logger.info(
      { kvm: kvm.available, reason: kvm.reason, durationMs: kvm.durationMs },
      'KVM probed at start',
    );
    return kvm;
  } catch (err) {
    opts.logger.warn({ err: (err as Error).message }, 'KVM probe failed at start');
    return null;
  }
}
