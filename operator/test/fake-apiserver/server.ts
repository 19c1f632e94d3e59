/**
 * An in-process Kubernetes API server over real HTTP, for tests and the benchmark: the
 * real @kubernetes/client-node and the real operator process talk to it through a
 * kubeconfig. It keeps the semantics the operator depends on (see store.ts, resources.ts,
 * object-rules.ts) and can inject faults: drop or stall all watches, compact history,
 * fail a share of writes, add latency.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { ApiError, Store, clone, matchesLabels, type ChangeEvent, type Obj } from './store.ts';
import { REPO_CRD_DIR, defaultResources, type ResourceDef } from './resources.ts';
import { applyCreate, applyDelete, applyUpdate, mergePatch } from './object-rules.ts';

export interface Faults {
  /** Milliseconds added before every request is handled. */
  latencyMs: number;
  /** Share (0..1) of writes answered 500 without effect. */
  failWriteRatio: number;
  /** Which writes may fail, matched against `VERB group/version/plural[/status]`; all when unset. */
  failWriteMatch?: RegExp;
}

export interface FakeApiServerOptions {
  crdDir?: string;
  maxHistory?: number;
  /** How often watches that asked for bookmarks get one. */
  bookmarkIntervalMs?: number;
  /** Called for every request before it is handled (benchmarks time the first list with it). */
  onRequest?: (method: string, url: URL) => void;
}

interface WatchConn {
  res: ServerResponse;
  stalled: boolean;
  close: () => void;
}

const JSON_TYPE = { 'content-type': 'application/json' };

function statusBody(e: ApiError) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: e.message,
    reason: e.reason,
    code: e.code,
    details: e.causes.length ? { causes: e.causes.map((message) => ({ message })) } : undefined,
  };
}

export class FakeApiServer {
  readonly store: Store;
  readonly faults: Faults = { latencyMs: 0, failWriteRatio: 0 };
  /** Writes that reached storage or were refused, by `VERB group/version/plural[/status]`. */
  readonly writeCounts = new Map<string, number>();
  /** Status writes that changed something, by `namespace/name` of the object. */
  readonly statusWrites = new Map<string, number>();
  private readonly resources: ResourceDef[];
  private readonly watches = new Set<WatchConn>();
  private server: Server | undefined;
  private readonly bookmarkIntervalMs: number;
  private readonly onRequest: FakeApiServerOptions['onRequest'];

  constructor(options: FakeApiServerOptions = {}) {
    this.store = new Store(options.maxHistory);
    this.resources = defaultResources(options.crdDir ?? REPO_CRD_DIR);
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
    this.onRequest = options.onRequest;
  }

  /**
   * Listens on `port` (0: any free one). After close() it can listen again, on the same
   * port, with its store intact: an API server that went away and came back.
   */
  async listen(port = 0): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => {
        this.server!.off('error', reject);
        resolve();
      });
    });
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  /** Writes a kubeconfig pointing at this server (a token the server ignores). */
  writeKubeconfig(path: string, namespace = 'default'): string {
    return writeKubeconfig(this.url, path, namespace);
  }

  async close(): Promise<void> {
    for (const w of this.watches) w.close();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Ends every open watch, as an API server restart or a load balancer timeout does. */
  dropWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) w.close();
    return n;
  }

  /** Keeps every open watch connected but silent from now on: only a watchdog notices. */
  stallWatches(): number {
    for (const w of this.watches) w.stalled = true;
    return this.watches.size;
  }

  get openWatches(): number {
    return this.watches.size;
  }

  resource(plural: string, group = ''): ResourceDef {
    const def = this.resources.find((r) => r.plural === plural && r.group === group);
    if (!def) throw new Error(`fake-apiserver: no resource ${group}/${plural}`);
    return def;
  }

  private count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  private route(url: URL) {
    const core = /^\/api\/v1(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/(status))?$/.exec(
      url.pathname,
    );
    const group =
      /^\/apis\/([^/]+)\/([^/]+)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/(status))?$/.exec(
        url.pathname,
      );
    const parts = core
      ? { group: '', version: 'v1', ns: core[1], plural: core[2]!, name: core[3], sub: core[4] }
      : group
        ? {
            group: group[1]!,
            version: group[2]!,
            ns: group[3],
            plural: group[4]!,
            name: group[5],
            sub: group[6],
          }
        : null;
    if (!parts)
      throw new ApiError(
        404,
        'NotFound',
        `the server could not find the requested resource (${url.pathname})`,
      );
    const def = this.resources.find(
      (r) => r.group === parts.group && r.version === parts.version && r.plural === parts.plural,
    );
    if (!def)
      throw new ApiError(
        404,
        'NotFound',
        `the server could not find the requested resource (${url.pathname})`,
      );
    const ns = parts.ns === undefined ? undefined : decodeURIComponent(parts.ns);
    const name = parts.name === undefined ? undefined : decodeURIComponent(parts.name);
    // A cluster-scoped resource has no namespaced path; a namespaced object has no
    // cluster-wide one (only its collection does: list and watch across namespaces).
    if (!def.namespaced && ns !== undefined)
      throw new ApiError(
        404,
        'NotFound',
        `the server could not find the requested resource (${url.pathname})`,
      );
    return { def, ns, name, sub: parts.sub };
  }

  private async body(req: IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > 3 * 1024 * 1024)
        throw new ApiError(413, 'RequestEntityTooLarge', 'request is too large');
      chunks.push(c as Buffer);
    }
    try {
      const v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      return v;
    } catch (err) {
      throw new ApiError(400, 'BadRequest', `could not decode the body: ${(err as Error).message}`);
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (this.faults.latencyMs) await new Promise((r) => setTimeout(r, this.faults.latencyMs));
      const url = new URL(req.url ?? '/', 'http://x');
      this.onRequest?.(req.method ?? 'GET', url);
      const { def, ns, name, sub } = this.route(url);
      const method = req.method ?? 'GET';
      if (method !== 'GET') {
        const what = `${method} ${def.id}${sub ? '/' + sub : ''}`;
        this.count(this.writeCounts, what);
        const mayFail = !this.faults.failWriteMatch || this.faults.failWriteMatch.test(what);
        if (mayFail && this.faults.failWriteRatio && Math.random() < this.faults.failWriteRatio)
          throw new ApiError(500, 'InternalError', 'injected write failure');
      }
      if (sub && !(sub === 'status' && def.statusSubresource))
        throw new ApiError(404, 'NotFound', `no subresource ${sub}`);
      if (method === 'GET' && !name) {
        if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1')
          return this.watch(def, ns, url, res);
        return this.send(res, 200, this.list(def, ns, url.searchParams.get('labelSelector')));
      }
      // Across namespaces there is only the collection (list, watch), never an object.
      if (def.namespaced && ns === undefined)
        throw new ApiError(
          404,
          'NotFound',
          `the server could not find the requested resource (${url.pathname})`,
        );
      if (method === 'POST' && !name) {
        const obj = (await this.body(req)) as Obj;
        return this.send(res, 201, applyCreate(this.store, def, ns, obj));
      }
      if (!name) throw new ApiError(405, 'MethodNotAllowed', `${method} needs an object name`);
      const existing = this.store.get(def.id, ns, name);
      if (method === 'GET') {
        if (!existing) throw notFound(def, name);
        return this.send(res, 200, existing);
      }
      if (method === 'DELETE')
        return this.send(
          res,
          200,
          applyDelete(this.store, def, existing ?? notFoundThrow(def, name)),
        );
      if (method === 'PUT' || method === 'PATCH') {
        if (!existing) throw notFound(def, name);
        let body = await this.body(req);
        if (method === 'PATCH') {
          const type = req.headers['content-type'] ?? '';
          if (!type.startsWith('application/merge-patch+json'))
            throw new ApiError(
              415,
              'UnsupportedMediaType',
              `the fake server only takes merge patches, not ${type}`,
            );
          body = mergePatch(clone(existing), body);
        }
        const { object, changed } = applyUpdate(
          this.store,
          def,
          existing,
          body as Obj,
          sub === 'status',
        );
        if (sub === 'status' && changed) this.count(this.statusWrites, `${ns ?? ''}/${name}`);
        return this.send(res, 200, object);
      }
      throw new ApiError(405, 'MethodNotAllowed', `method ${method} not allowed`);
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(500, 'InternalError', String(err));
      if (!res.headersSent) this.send(res, e.code, statusBody(e));
      else res.end();
    }
  }

  private send(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, JSON_TYPE).end(JSON.stringify(body));
  }

  private list(def: ResourceDef, ns: string | undefined, selector: string | null) {
    const items = this.store
      .list(def.id, ns)
      .filter((o) => matchesLabels(selector, o))
      .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
    return {
      kind: `${def.kind}List`,
      apiVersion: def.group ? `${def.group}/${def.version}` : def.version,
      metadata: { resourceVersion: String(this.store.resourceVersion) },
      items,
    };
  }

  private watch(def: ResourceDef, ns: string | undefined, url: URL, res: ServerResponse): void {
    const selector = url.searchParams.get('labelSelector');
    const rvParam = url.searchParams.get('resourceVersion') ?? '';
    res.writeHead(200, { ...JSON_TYPE, 'transfer-encoding': 'chunked' });
    // As the real server: the response starts now, not with the first event (client-node's
    // watch() resolves only once it has the headers).
    res.flushHeaders();
    const conn: WatchConn = { res, stalled: false, close: () => undefined };
    const write = (type: string, object: unknown) => {
      if (!conn.stalled) res.write(JSON.stringify({ type, object }) + '\n');
    };
    const inScope = (o: Obj | undefined) =>
      o !== undefined &&
      (ns === undefined || o.metadata.namespace === ns) &&
      matchesLabels(selector, o);
    const deliver = (e: ChangeEvent) => {
      if (e.resource !== def.id) return;
      const now = inScope(e.object);
      const before = e.type === 'MODIFIED' && inScope(e.previous);
      if (e.type === 'MODIFIED' && now && !before) write('ADDED', e.object);
      else if (e.type === 'MODIFIED' && !now && before) write('DELETED', e.object);
      else if (now) write(e.type, e.object);
    };
    let replay: ChangeEvent[] = [];
    if (rvParam === '' || rvParam === '0') {
      for (const o of this.list(def, ns, selector).items) write('ADDED', o);
    } else {
      try {
        replay = this.store.since(def.id, Number(rvParam));
      } catch (err) {
        // The real server answers 200 and then an ERROR event carrying the 410 Status.
        write('ERROR', statusBody(err as ApiError));
        res.end();
        return;
      }
    }
    replay.forEach(deliver);
    const unsubscribe = this.store.subscribe(deliver);
    const timers: NodeJS.Timeout[] = [];
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 0);
    if (timeout > 0) timers.push(setTimeout(() => !conn.stalled && conn.close(), timeout * 1000));
    if (url.searchParams.get('allowWatchBookmarks') === 'true') {
      const kind = def.kind;
      const apiVersion = def.group ? `${def.group}/${def.version}` : def.version;
      timers.push(
        setInterval(
          () =>
            write('BOOKMARK', {
              kind,
              apiVersion,
              metadata: { resourceVersion: String(this.store.resourceVersion) },
            }),
          this.bookmarkIntervalMs,
        ),
      );
    }
    conn.close = () => {
      unsubscribe();
      timers.forEach((t) => clearTimeout(t));
      this.watches.delete(conn);
      res.end();
    };
    res.on('close', conn.close);
    this.watches.add(conn);
  }
}

/** A kubeconfig for a server at `url` (this one, or a proxy in front of it). */
export function writeKubeconfig(url: string, path: string, namespace = 'default'): string {
  const kc = {
    apiVersion: 'v1',
    kind: 'Config',
    // client-node refuses plain http unless told to skip TLS verification.
    clusters: [{ name: 'fake', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'fake', user: { token: 'fake-token' } }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake', namespace } }],
    'current-context': 'fake',
  };
  writeFileSync(path, JSON.stringify(kc, null, 2));
  return path;
}

function notFound(def: ResourceDef, name: string): ApiError {
  return new ApiError(
    404,
    'NotFound',
    `${def.plural}${def.group ? '.' + def.group : ''} "${name}" not found`,
  );
}

function notFoundThrow(def: ResourceDef, name: string): never {
  throw notFound(def, name);
}
