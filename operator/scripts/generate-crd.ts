/**
 * Writes crds/bootclients.rtftp.io.yaml from common/src/bootclient-schema.ts, the one
 * source of truth. Run after changing the schema: `node --import tsx operator/scripts/generate-crd.ts`
 * (common/src/bootclient-schema.test.ts fails until the committed YAML matches).
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderCrdYaml } from './crd-yaml.ts';

const target = fileURLToPath(new URL('../../crds/bootclients.rtftp.io.yaml', import.meta.url));
writeFileSync(target, renderCrdYaml());
console.log(`wrote ${target}`);
