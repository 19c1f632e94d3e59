/**
 * Validates custom resources the way the API server does, from the CRD YAML in crds/:
 * the openAPIV3Schema through ajv (unknown fields pruned, as a structural schema does),
 * and x-kubernetes-validations rules through the JS twin of each rule
 * (common/src/bootclient-schema.ts). An unknown CEL rule is an error at load time, so a
 * rule added to the CRD without its twin cannot silently pass here.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import { BOOTCLIENT_CEL_RULES, type CelRule } from '../../../common/src/bootclient-schema.ts';

// ajv-formats is CommonJS; under ESM its default export is the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as (ajv: Ajv) => void;

export interface CrdInfo {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  statusSubresource: boolean;
  validate: (obj: Record<string, unknown>) => string[];
}

const knownRules = new Map<string, CelRule>(BOOTCLIENT_CEL_RULES.map((r) => [r.rule, r]));

/**
 * Replaces each x-kubernetes-validations with an ajv keyword call and drops other x- keys.
 * An object schema with properties and no additionalProperties gets
 * `additionalProperties: false`, which ajv's removeAdditional prunes: the API server's
 * structural pruning, which keeps what an additionalProperties schema allows (a map such
 * as matchLabels) and drops every other unknown field.
 */
function toAjvSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toAjvSchema);
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  const n = node as Record<string, unknown>;
  if (n.properties !== undefined && n.additionalProperties === undefined)
    out.additionalProperties = false;
  for (const [k, v] of Object.entries(node)) {
    if (k === 'x-kubernetes-validations') {
      const rules = (v as { rule: string }[]).map((r) => {
        if (!knownRules.has(r.rule))
          throw new Error(`fake-apiserver: no JS twin for CEL rule ${r.rule}`);
        return r.rule;
      });
      out.celRules = rules;
    } else if (!k.startsWith('x-kubernetes-')) out[k] = toAjvSchema(v);
  }
  return out;
}

function describe(e: ErrorObject): string {
  const path = e.instancePath.replace(/^\//, '').replaceAll('/', '.') || '<root>';
  if (e.keyword === 'celRules') return `${path}: Invalid value: ${e.message}`;
  return `${path}: ${e.message}`;
}

export function loadCrd(file: string): CrdInfo {
  const crd = parse(readFileSync(file, 'utf8'));
  const version = crd.spec.versions.find((v: { storage: boolean }) => v.storage);
  const ajv = new Ajv({ allErrors: true, strict: false, removeAdditional: true });
  addFormats(ajv);
  ajv.addKeyword({
    keyword: 'celRules',
    validate: function cel(rules: string[], data: unknown) {
      const failed = rules.map((r) => knownRules.get(r)!).filter((r) => !r.check(data));
      (cel as unknown as { errors: Partial<ErrorObject>[] }).errors = failed.map((r) => ({
        keyword: 'celRules',
        message: r.message,
      }));
      return failed.length === 0;
    },
  });
  const schema = toAjvSchema(version.schema.openAPIV3Schema) as Record<string, unknown>;
  const props = { ...(schema.properties as Record<string, unknown>) };
  // metadata is the server's, not the schema's; validate the rest.
  delete props.metadata;
  const check = ajv.compile({ ...schema, properties: props, required: schema.required });
  return {
    group: crd.spec.group,
    version: version.name,
    plural: crd.spec.names.plural,
    kind: crd.spec.names.kind,
    namespaced: crd.spec.scope === 'Namespaced',
    statusSubresource: Boolean(version.subresources?.status),
    validate(obj) {
      const { metadata, ...rest } = obj;
      const ok = check(rest);
      Object.assign(obj, rest, { metadata });
      // Pruning happens in place on `rest`; drop what ajv removed.
      for (const k of Object.keys(obj)) if (k !== 'metadata' && !(k in rest)) delete obj[k];
      return ok ? [] : (check.errors ?? []).map(describe);
    },
  };
}
