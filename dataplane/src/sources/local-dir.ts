/**
 * A local directory as a source: `<root>/<client ip>/` (per client) or `<root>/default/`.
 */
import { join } from 'node:path';
import { openConfined } from './confine.ts';
import type { FileSource, OpenResult, ViewRequest } from './source.ts';

export class LocalDirSource implements FileSource {
  /**
   * @param dirOf the directory for a client, e.g. `ip => join(root, ip)`; null = none
   */
  constructor(
    readonly name: string,
    private readonly dirOf: (clientIp: string) => string | null,
  ) {}

  static perClient(root: string): LocalDirSource {
    return new LocalDirSource('client-dir', (ip) => join(root, ip));
  }

  static shared(root: string, dirName = 'default'): LocalDirSource {
    return new LocalDirSource(dirName, () => join(root, dirName));
  }

  async open(request: ViewRequest): Promise<OpenResult> {
    const dir = this.dirOf(request.clientIp);
    if (dir === null) return { status: 'not-found' };
    const r = await openConfined(dir, request.components);
    if (r.status === 'found')
      return { status: 'found', file: r.file, source: this.name, location: r.path };
    return r;
  }
}
