/**
 * The storage of the fake API server: objects by resource, one global resourceVersion
 * counter (as etcd's revision), and a bounded history of changes that watches replay
 * from. A watch from a resourceVersion older than the history gets 410 Gone, as from a
 * compacted etcd.
 */
import { randomUUID } from 'node:crypto';

export type Obj = Record<string, unknown> & {
  metadata: Record<string, unknown> & { name: string; namespace?: string };
};

export interface ChangeEvent {
  rv: number;
  resource: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
  previous: Obj | undefined;
}

export type Listener = (e: ChangeEvent) => void;

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly causes: string[] = [],
  ) {
    super(message);
  }
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}

export class Store {
  private rv = 1;
  private readonly objects = new Map<string, Map<string, Obj>>();
  private history: ChangeEvent[] = [];
  /** The oldest resourceVersion a watch can still start from. */
  private oldestRv = 1;
  private readonly listeners = new Set<Listener>();

  constructor(private readonly maxHistory = 100_000) {}

  get resourceVersion(): number {
    return this.rv;
  }

  private bucket(resource: string): Map<string, Obj> {
    let b = this.objects.get(resource);
    if (!b) this.objects.set(resource, (b = new Map()));
    return b;
  }

  static key(namespace: string | undefined, name: string): string {
    return `${namespace ?? ''}/${name}`;
  }

  get(resource: string, namespace: string | undefined, name: string): Obj | undefined {
    return this.bucket(resource).get(Store.key(namespace, name));
  }

  list(resource: string, namespace: string | undefined): Obj[] {
    const all = [...this.bucket(resource).values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  private record(resource: string, type: ChangeEvent['type'], object: Obj, previous?: Obj): void {
    const e: ChangeEvent = { rv: this.rv, resource, type, object, previous };
    this.history.push(e);
    if (this.history.length > this.maxHistory) {
      const drop = this.history.length - this.maxHistory;
      this.oldestRv = this.history[drop - 1]!.rv + 1;
      this.history = this.history.slice(drop);
    }
    for (const l of this.listeners) l(e);
  }

  /** Stores a new object; metadata.uid, creationTimestamp and resourceVersion set here. */
  create(resource: string, obj: Obj): Obj {
    const b = this.bucket(resource);
    const key = Store.key(obj.metadata.namespace, obj.metadata.name);
    if (b.has(key))
      throw new ApiError(409, 'AlreadyExists', `${resource} "${obj.metadata.name}" already exists`);
    this.rv++;
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    obj.metadata.resourceVersion = String(this.rv);
    b.set(key, obj);
    this.record(resource, 'ADDED', clone(obj));
    return obj;
  }

  /** Replaces an object already checked by the caller (preconditions, immutable fields). */
  update(resource: string, obj: Obj): Obj {
    const b = this.bucket(resource);
    const key = Store.key(obj.metadata.namespace, obj.metadata.name);
    const previous = b.get(key);
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    b.set(key, obj);
    this.record(resource, 'MODIFIED', clone(obj), previous && clone(previous));
    return obj;
  }

  remove(resource: string, obj: Obj): Obj {
    this.bucket(resource).delete(Store.key(obj.metadata.namespace, obj.metadata.name));
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    this.record(resource, 'DELETED', clone(obj));
    return obj;
  }

  /** Changes after `fromRv` for a resource; throws 410 when history no longer reaches back. */
  since(resource: string, fromRv: number): ChangeEvent[] {
    if (fromRv + 1 < this.oldestRv)
      throw new ApiError(
        410,
        'Expired',
        `too old resource version: ${fromRv} (${this.oldestRv - 1})`,
      );
    return this.history.filter((e) => e.rv > fromRv && e.resource === resource);
  }

  /** Forgets all history, as an etcd compaction: every watch must then resume from now. */
  compact(): void {
    this.history = [];
    this.oldestRv = this.rv + 1;
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** Equality-based label selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-joined. */
export function matchesLabels(selector: string | null, obj: Obj): boolean {
  if (!selector) return true;
  const labels = (obj.metadata.labels ?? {}) as Record<string, string>;
  return selector.split(',').every((term) => {
    const t = term.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([^!=]+)!=(.*)$/.exec(t))) return labels[m[1]!.trim()] !== m[2]!.trim();
    if ((m = /^([^!=]+)==?(.*)$/.exec(t))) return labels[m[1]!.trim()] === m[2]!.trim();
    if (t.startsWith('!')) return !(t.slice(1) in labels);
    return t in labels;
  });
}
