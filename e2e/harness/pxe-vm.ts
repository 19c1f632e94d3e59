/**
 * A virtual machine that network-boots on the test's LAN: qemu under TCG (nested KVM
 * is broken on these hosts) with its serial console on stdout, so the test reads what
 * the booted initrd printed. Firmware:
 *  - 'bios-ipxe': SeaBIOS with iPXE as the e1000's option ROM (Debian ipxe-qemu; its
 *    virtio ROM is not run by this SeaBIOS, the e1000 one is);
 *  - 'ovmf': OVMF with EDK2's own PXE client — the NIC gets no option ROM, and OVMF
 *    carries a driver only for virtio-net.
 */
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BootNetwork } from './boot-network.ts';
import { HarnessError, tail } from './processes.ts';
import type { OutputLine, TrackedProcess } from './processes.ts';

export type Firmware = 'bios-ipxe' | 'ovmf';

export interface VmOptions {
  name: string;
  firmware: Firmware;
  mac: string;
  tap: string;
  /** Private dir for the VM's writable files (the OVMF variable store). */
  workDir: string;
  memoryMiB?: number;
}

const IPXE_E1000_ROM = '/usr/lib/ipxe/qemu/pxe-e1000.rom';
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS.fd';

export interface RunningVm {
  readonly process: TrackedProcess;
  readonly startedAt: number;
  /** Resolves with the serial line matching `pattern`; rejects on timeout or exit. */
  waitForSerial(pattern: RegExp, timeoutMs: number): Promise<OutputLine>;
  /** The serial console so far, escape sequences removed. */
  serialText(): string;
  stop(): Promise<void>;
}

// Terminal escape sequences the firmware prints, which would split a marker.
// eslint-disable-next-line no-control-regex
const ESCAPES = /\u001b(\[[0-9;?]*[a-zA-Z]|[()][0-9A-Za-z]|[a-zA-Z])/g;

export function cleanSerial(text: string): string {
  return text.replace(ESCAPES, '').replace(/\r/g, '');
}

export async function startVm(net: BootNetwork, opts: VmOptions): Promise<RunningVm> {
  const nic =
    opts.firmware === 'bios-ipxe'
      ? `e1000,netdev=n0,mac=${opts.mac},romfile=${IPXE_E1000_ROM},bootindex=1`
      : `virtio-net-pci,netdev=n0,mac=${opts.mac},romfile=,bootindex=1`;
  const args = [
    '-machine',
    'pc,accel=tcg',
    '-m',
    String(opts.memoryMiB ?? 512),
    '-nographic', // also tells SeaBIOS to print on the serial port
    '-monitor',
    'none',
    '-no-reboot', // a kernel panic (panic=-1) ends qemu instead of looping
    '-netdev',
    `tap,id=n0,ifname=${opts.tap},script=no,downscript=no`,
    '-device',
    nic,
  ];
  if (opts.firmware === 'ovmf') {
    const vars = join(opts.workDir, `${opts.name}-OVMF_VARS.fd`);
    await copyFile(OVMF_VARS, vars);
    args.push(
      '-drive',
      `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      '-drive',
      `if=pflash,format=raw,unit=1,file=${vars}`,
    );
  }
  const startedAt = Date.now();
  const proc = net.start(`vm ${opts.name}`, 'qemu-system-x86_64', args, { maxLines: 5_000 });
  return {
    process: proc,
    startedAt,
    waitForSerial: (pattern, timeoutMs) =>
      proc.waitForLine((l) => pattern.test(cleanSerial(l.text)), timeoutMs),
    serialText: () => proc.lines.map((l) => cleanSerial(l.text)).join('\n'),
    stop: () => proc.stop(2_000),
  };
}

export interface BootResult {
  /** Milliseconds from qemu's start to the marker on the serial console. */
  bootMs: number;
  markerLine: string;
}

/**
 * Waits for `marker` on the serial console, then for the VM to power itself off.
 * Fails fast (with the serial tail) if another boot marker appears instead: a wrong
 * payload is a failure now, not a timeout later.
 */
export async function expectBootMarker(
  vm: RunningVm,
  marker: string,
  timeoutMs: number,
  wrongMarkers: readonly string[] = [],
): Promise<BootResult> {
  const any = new RegExp(
    [...[marker, ...wrongMarkers].map(escapeRegExp), BOOT_FAILED.source].join('|'),
  );
  const line = await vm.waitForSerial(any, timeoutMs);
  const text = cleanSerial(line.text);
  if (BOOT_FAILED.test(text)) {
    throw new HarnessError(
      'E2E_ERR_BOOT_FAILED',
      `${vm.process.name} failed to boot: ${text.trim()}; serial:\n` + tail(vm.process.lines, 25),
    );
  }
  if (!text.includes(marker)) {
    throw new HarnessError(
      'E2E_ERR_WRONG_PAYLOAD',
      `${vm.process.name} booted the wrong payload: ${text.trim()} (expected ${marker}); serial:\n` +
        tail(vm.process.lines, 25),
    );
  }
  const exitCode = await Promise.race([
    vm.process.exited,
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000)),
  ]);
  if (exitCode === 'timeout') {
    throw new HarnessError('E2E_ERR_NO_POWEROFF', `${vm.process.name} did not power off`);
  }
  return { bootMs: line.at - vm.startedAt, markerLine: text.trim() };
}

/** What the firmware or kernel prints when this boot can no longer succeed. */
const BOOT_FAILED =
  /No bootable device|No more network devices|Kernel panic|PXE-E\d\d|Failed to load|Boot Failed\. EFI Network/;

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
