// The CRD generator's YAML writer (operator/scripts/generate-crd.ts, operator/test/crd-schema.test.ts):
// not run-time code, so it lives outside src/ and yaml stays a dev dependency.
import { stringify } from 'yaml';
import { buildBootClientCrd } from '../../common/src/bootclient-schema.ts';
import { buildBootNetworkCrd } from '../../common/src/bootnetwork-schema.ts';

const header = (source: string) =>
  `# Generated from common/src/${source} by operator/scripts/generate-crd.ts: do not edit.\n`;

export const CRD_YAML_HEADER = header('bootclient-schema.ts');
export const BOOTNETWORK_CRD_YAML_HEADER = header('bootnetwork-schema.ts');

/** The committed CRD file's exact text. */
export function renderCrdYaml(): string {
  return CRD_YAML_HEADER + stringify(buildBootClientCrd(), { lineWidth: 0 });
}

/** The committed BootNetwork CRD file's exact text. */
export function renderBootNetworkCrdYaml(): string {
  return BOOTNETWORK_CRD_YAML_HEADER + stringify(buildBootNetworkCrd(), { lineWidth: 0 });
}

/** Every CRD file in crds/, by file name, with the text that generates it. */
export const CRD_FILES: Record<string, () => string> = {
  'bootclients.rtftp.io.yaml': renderCrdYaml,
  'bootnetworks.rtftp.io.yaml': renderBootNetworkCrdYaml,
};
