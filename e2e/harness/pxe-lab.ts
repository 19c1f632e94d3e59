/**
 * One PXE lab per test file: a boot network, dnsmasq for its hosts, the dataplane on
 * UDP 69 serving `root`, and a private work dir — all torn down by `close()`, which a
 * test file calls from its `after` hook whatever happened. The expensive parts (the
 * dataplane and its appliances) are shared by the scenarios of the file.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BootNetwork, pxeUnsupportedReason, stopAll } from './boot-network.ts';
import {
  buildMarkerInitrd,
  findHostKernel,
  ipxeScript,
  makeNonce,
  markerText,
} from './boot-payload.ts';
import { dataplaneMissingReason, startDataplane, transferStart } from './dataplane-process.ts';
import type { RunningDataplane } from './dataplane-process.ts';
import { startDhcp } from './dhcp-server.ts';
import type { DhcpHost } from './dhcp-server.ts';
import { startVm, expectBootMarker } from './pxe-vm.ts';
import type { Firmware, RunningVm, BootResult } from './pxe-vm.ts';
import type { TrackedProcess } from './processes.ts';
import { formatBootReport } from './boot-report.ts';

/** Why the PXE tests of this machine must be skipped, or null. */
export async function pxeSkipReason(): Promise<string | null> {
  return (
    pxeUnsupportedReason() ??
    dataplaneMissingReason() ??
    ((await findHostKernel()) ? null : 'no /boot/vmlinuz-* (linux-image-amd64) to boot')
  );
}

/** What an iPXE boot fetches, in order: the script, then what it names. */
const IPXE_FILES = ['boot.ipxe', 'vmlinuz', 'initrd.gz'];

export interface LabHost extends DhcpHost {
  name: string;
}

export class PxeLab {
  readonly vms = new Set<RunningVm>();
  dataplane: RunningDataplane | undefined;
  dhcp: TrackedProcess | undefined;

  private constructor(
    readonly workDir: string,
    readonly root: string,
    readonly kernel: string,
    readonly net: BootNetwork,
  ) {}

  /** Makes the work dir, root/ and default/, and the network; nothing started yet. */
  static async create(label: string): Promise<PxeLab> {
    const workDir = await mkdtemp(join(tmpdir(), `rtftp-e2e-${label}-`));
    const root = join(workDir, 'root');
    await mkdir(join(root, 'default'), { recursive: true });
    const hostKernel = await findHostKernel();
    // A copy inside the work dir: the dataplane never follows a symlink out of its root.
    const kernel = join(workDir, 'vmlinuz');
    await copyFile(hostKernel!, kernel);
    try {
      return new PxeLab(workDir, root, kernel, await BootNetwork.create());
    } catch (err) {
      await rm(workDir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * default/'s rescue payload for iPXE (script, kernel, an initrd with its own marker),
   * which any client whose own files cannot be found boots; returns that marker.
   */
  async installRescuePayload(): Promise<string> {
    const def = join(this.root, 'default');
    const nonce = makeNonce();
    await copyFile(this.kernel, join(def, 'vmlinuz'));
    await buildMarkerInitrd(join(def, 'initrd.gz'), 'rescue', nonce);
    await writeFile(join(def, 'boot.ipxe'), ipxeScript());
    return markerText('rescue', nonce);
  }

  /** [file, source] of each transfer completed for `host` since `since`, in order. */
  servedFiles(host: LabHost, since: number): [string, string][] {
    return this.dataplane!.transfers(host.ip, since)
      .filter((t) => t.outcome === 'completed')
      .map((t) => [t.file, String(t.source)]);
  }

  /** Asserts an iPXE boot fetched exactly its three files, all from `source`. */
  assertIpxeBootFrom(host: LabHost, since: number, source: string): void {
    assert.deepEqual(
      this.servedFiles(host, since),
      IPXE_FILES.map((f) => [f, source]),
    );
  }

  /**
   * The host's disk was connected (proactively: no request of this boot waited for it)
   * before the first request of the boot that started at `since`; prints the margin.
   */
  assertDiskConnectedBeforeFirstRequest(host: LabHost, since: number): void {
    const dp = this.dataplane!;
    const connected = dp
      .entries()
      .findLast((e) => e.msg === 'Disk connected' && e.client === host.ip);
    assert.ok(connected, `no "Disk connected" line for ${host.ip}`);
    const first = dp.transfers(host.ip, since)[0];
    assert.ok(first, `no transfer for ${host.ip}`);
    assert.ok(
      connected.time <= transferStart(first),
      `disk of ${host.ip} connected at ${new Date(connected.time).toISOString()}, after the ` +
        `first request (${first.file} at ${new Date(transferStart(first)).toISOString()})`,
    );
    console.log(
      `[pxe] ${host.ip}: disk connected (${String(connected.backend)}, ` +
        `${String(connected.durationMs)} ms) ` +
        `${((transferStart(first) - connected.time) / 1000).toFixed(1)} s before the first request`,
    );
  }

  async start(hosts: readonly LabHost[], dataplaneArgs: string[] = []): Promise<void> {
    this.dhcp = await startDhcp(this.net, this.workDir, hosts);
    this.dataplane = await startDataplane(this.net, {
      root: this.root,
      // Private to this lab: a dataplane empties its work dir's tmp/ when it starts.
      workDir: join(this.workDir, 'dataplane'),
      extraArgs: dataplaneArgs,
    });
  }

  /**
   * Like start(), with the dataplane started by `launch` instead of as a local process
   * (e2e/containers runs the built image under podman in this lab's namespace).
   */
  async startWith(
    hosts: readonly LabHost[],
    launch: (net: BootNetwork) => Promise<RunningDataplane>,
  ): Promise<void> {
    this.dhcp = await startDhcp(this.net, this.workDir, hosts);
    this.dataplane = await launch(this.net);
  }

  async bootVm(host: LabHost, firmware: Firmware): Promise<RunningVm> {
    const vm = await startVm(this.net, {
      name: host.name,
      firmware,
      mac: host.mac,
      tap: await this.net.addTap(),
      workDir: this.workDir,
    });
    this.vms.add(vm);
    void vm.process.exited.then(() => this.vms.delete(vm));
    return vm;
  }

  /**
   * Boots `host` with `firmware`, expects `marker` (failing at once on a wrong one),
   * prints the boot time and the per-file TFTP figures, and returns them.
   */
  async bootAndExpect(
    scenario: string,
    host: LabHost,
    firmware: Firmware,
    marker: string,
    wrongMarkers: readonly string[],
    timeoutMs = 150_000,
  ): Promise<BootResult & { vm: RunningVm }> {
    const vm = await this.bootVm(host, firmware);
    try {
      const result = await expectBootMarker(vm, marker, timeoutMs, wrongMarkers);
      // The transfer lines of this boot: the marker is printed after the last one ended.
      const transfers = this.dataplane!.transfers(host.ip, vm.startedAt);
      console.log(formatBootReport(scenario, result.bootMs, transfers));
      return { ...result, vm };
    } finally {
      await vm.stop();
    }
  }

  async close(): Promise<void> {
    await stopAll(...[...this.vms].map((vm) => vm.process));
    await stopAll(this.dataplane?.process, this.dhcp);
    await this.net.destroy();
    await rm(this.workDir, { recursive: true, force: true });
  }
}
