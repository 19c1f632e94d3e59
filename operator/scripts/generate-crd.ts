/**
 * Writes the CRDs in crds/ from their one source of truth, common/src/*-schema.ts
 * (bootclients.rtftp.io.yaml, bootnetworks.rtftp.io.yaml). Run after changing a schema:
 * `node --import tsx operator/scripts/generate-crd.ts` (operator/test/crd-schema.test.ts
 * fails until the committed YAML matches).
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CRD_FILES } from './crd-yaml.ts';

for (const [file, render] of Object.entries(CRD_FILES)) {
  const target = fileURLToPath(new URL(`../../crds/${file}`, import.meta.url));
  writeFileSync(target, render());
  console.log(`wrote ${target}`);
}
