/**
 * What a worker sees of the main thread's parts: the configs of its own clients, relayed
 * from the one config watcher; and the listening sockets, which only the main thread has
 * (a worker's refusals go out through them).
 */
import { EventEmitter } from 'node:events';
import type { NbdConfig } from '../../../common/src/nbd-config.ts';
import type { ConfigEntryStatus, NbdConfigWatcherEvents } from '../config/nbd-config-watcher.ts';
import type { ConfigFeed } from '../sources/nbd/index.ts';
import type { RequestListeners } from '../tftp/server.ts';
import type { FromWorker } from './messages.ts';

/** The config feed of a worker's disk registry: added/changed/removed as the main thread says. */
export class RelayedConfigs extends EventEmitter<NbdConfigWatcherEvents> implements ConfigFeed {
  private readonly configs = new Map<string, { config: NbdConfig; file: string }>();

  async start(): Promise<void> {}
  stop(): void {}
  /** The main thread's watcher reports configs (/status): a worker has nothing to add. */
  status(): ConfigEntryStatus[] {
    return [];
  }

  set(clientIp: string, config: NbdConfig, file: string): void {
    const previous = this.configs.get(clientIp);
    this.configs.set(clientIp, { config, file });
    if (previous) this.emit('changed', clientIp, config, previous.config, file);
    else this.emit('added', clientIp, config, file);
  }

  remove(clientIp: string): void {
    const previous = this.configs.get(clientIp);
    if (!previous) return;
    this.configs.delete(clientIp);
    this.emit('removed', clientIp, previous.config, previous.file);
  }
}

/** A worker's listening side: requests come by message, refusals leave through the main thread. */
export class RelayedListeners implements RequestListeners {
  constructor(
    private readonly post: (m: FromWorker) => void,
    readonly port: number,
    readonly addresses: string[],
  ) {}

  async start(): Promise<void> {}
  close(): void {}

  send(local: string, buf: Buffer, port: number, address: string): void {
    this.post({ type: 'send', local, packet: buf, port, address });
  }
}
