// The CRD generator's YAML writer (operator/scripts/generate-crd.ts, operator/test/crd-schema.test.ts):
// not run-time code, so it lives outside src/ and yaml stays a dev dependency.
import { stringify } from 'yaml';
import { buildBootClientCrd } from '../../common/src/bootclient-schema.ts';

export const CRD_YAML_HEADER =
  '# Generated from common/src/bootclient-schema.ts by operator/scripts/generate-crd.ts: do not edit.\n';

/** The committed CRD file's exact text. */
export function renderCrdYaml(): string {
  return CRD_YAML_HEADER + stringify(buildBootClientCrd(), { lineWidth: 0 });
}
