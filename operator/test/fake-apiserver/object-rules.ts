/**
 * What the API server does to an object on create, update and delete: server-owned
 * metadata, optimistic concurrency (409 on a stale resourceVersion), the status
 * subresource split (status ignored on the main resource, only status on /status),
 * generation bumps on spec change, no-op updates that change nothing (no new
 * resourceVersion, no watch event), finalizers and deletionTimestamp.
 */
import { isDeepStrictEqual } from 'node:util';
import { ApiError, clone, type Obj, type Store } from './store.ts';
import type { ResourceDef } from './resources.ts';

const SERVER_OWNED = [
  'uid',
  'creationTimestamp',
  'deletionTimestamp',
  'generation',
  'resourceVersion',
];

function check(def: ResourceDef, obj: Obj): void {
  const bad = def.decodeProblems(obj);
  if (bad.length) throw new ApiError(400, 'BadRequest', bad.join('; '), bad);
  const invalid = def.validate(obj);
  if (invalid.length)
    throw new ApiError(
      422,
      'Invalid',
      `${def.kind}.${def.group || 'core'} "${obj.metadata.name}" is invalid: ${invalid.join(', ')}`,
      invalid,
    );
}

function typeMeta(def: ResourceDef, obj: Obj): void {
  obj.apiVersion = def.group ? `${def.group}/${def.version}` : def.version;
  obj.kind = def.kind;
}

export function applyCreate(store: Store, def: ResourceDef, ns: string | undefined, obj: Obj): Obj {
  if (typeof obj.metadata !== 'object' || obj.metadata === null) obj.metadata = { name: '' };
  const meta = obj.metadata;
  if (!meta.name && typeof meta.generateName === 'string')
    meta.name = meta.generateName + Math.random().toString(36).slice(2, 7);
  if (typeof meta.name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(meta.name))
    throw new ApiError(
      422,
      'Invalid',
      `metadata.name: Invalid value: ${JSON.stringify(meta.name)}`,
    );
  if (def.namespaced) {
    if (meta.namespace !== undefined && meta.namespace !== ns)
      throw new ApiError(
        400,
        'BadRequest',
        'the namespace of the object does not match the namespace of the request',
      );
    meta.namespace = ns;
  }
  for (const k of SERVER_OWNED) delete meta[k];
  typeMeta(def, obj);
  if (def.statusSubresource) delete obj.status;
  if (def.hasGeneration) meta.generation = 1;
  check(def, obj);
  return store.create(def.id, obj);
}

/** PUT (or merged PATCH) of the main resource or of /status. */
export function applyUpdate(
  store: Store,
  def: ResourceDef,
  existing: Obj,
  body: Obj,
  statusOnly: boolean,
): { object: Obj; changed: boolean } {
  const rv = body.metadata?.resourceVersion;
  if (rv !== undefined && rv !== existing.metadata.resourceVersion)
    throw new ApiError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${def.plural} "${existing.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
    );
  if (body.metadata?.name !== undefined && body.metadata.name !== existing.metadata.name)
    throw new ApiError(
      400,
      'BadRequest',
      'the name of the object does not match the name in the URL',
    );
  let next: Obj;
  if (statusOnly) {
    next = clone(existing);
    next.status = body.status;
  } else {
    next = {
      ...clone(body),
      metadata: { ...clone(body.metadata ?? {}), name: existing.metadata.name },
    } as Obj;
    for (const k of SERVER_OWNED) {
      if (existing.metadata[k] === undefined) delete next.metadata[k];
      else next.metadata[k] = existing.metadata[k];
    }
    next.metadata.namespace = existing.metadata.namespace;
    if (def.statusSubresource) next.status = clone(existing.status);
    if (next.status === undefined) delete next.status;
    // A deleting object takes no new finalizers (the real server forbids adding them).
    if (existing.metadata.deletionTimestamp) {
      const had = new Set((existing.metadata.finalizers as string[] | undefined) ?? []);
      const added = ((next.metadata.finalizers as string[] | undefined) ?? []).filter(
        (f) => !had.has(f),
      );
      if (added.length)
        throw new ApiError(
          422,
          'Invalid',
          'metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted',
        );
    }
  }
  typeMeta(def, next);
  check(def, next);
  if (def.hasGeneration && !statusOnly && !isDeepStrictEqual(next.spec, existing.spec))
    next.metadata.generation = Number(existing.metadata.generation ?? 0) + 1;
  const comparable = (o: Obj) => ({
    ...o,
    metadata: { ...o.metadata, resourceVersion: undefined },
  });
  if (isDeepStrictEqual(comparable(next), comparable(existing)))
    return { object: existing, changed: false };
  const finalizers = (next.metadata.finalizers as string[] | undefined) ?? [];
  if (next.metadata.deletionTimestamp && finalizers.length === 0)
    return { object: store.remove(def.id, next), changed: true };
  return { object: store.update(def.id, next), changed: true };
}

export function applyDelete(store: Store, def: ResourceDef, existing: Obj): Obj {
  const finalizers = (existing.metadata.finalizers as string[] | undefined) ?? [];
  if (finalizers.length === 0) return store.remove(def.id, existing);
  if (existing.metadata.deletionTimestamp) return existing;
  const next = clone(existing);
  next.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return store.update(def.id, next);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(
  target: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete target[k];
    else if (typeof v === 'object' && !Array.isArray(v)) {
      const t = target[k];
      target[k] = mergePatch(
        typeof t === 'object' && t !== null && !Array.isArray(t)
          ? (t as Record<string, unknown>)
          : {},
        v as Record<string, unknown>,
      );
    } else target[k] = v;
  }
  return target;
}
