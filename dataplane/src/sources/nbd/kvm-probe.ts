/**
 * Decides once, at start, whether libguestfs appliances can use KVM. On nested
 * virtualisation /dev/kvm often exists but does not work: here qemu with accel=kvm
 * either aborts ("failed to set MSR 0x10a") or hangs with a CPU spinning and nothing on
 * the console, so libguestfs (which would pick kvm) never finishes launching. The
 * cheapest check that catches both: boot the host kernel under accel=kvm and wait for its
 * first console line ("Linux version", printed within ~0.3 s under a working KVM).
 */
import { spawn } from 'node:child_process';
import { access, constants, readdir } from 'node:fs/promises';

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
    const finish = (available: boolean, reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
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

/** Applies a mode: 'on'/'off' skip the probe. */
export async function decideKvm(mode: KvmMode, timeoutMs?: number): Promise<KvmProbeResult> {
  if (mode === 'on') return { available: true, reason: 'forced on (--nbd-kvm on)', durationMs: 0 };
  if (mode === 'off')
    return { available: false, reason: 'forced off (--nbd-kvm off)', durationMs: 0 };
  return probeKvm(timeoutMs === undefined ? {} : { timeoutMs });
}
