// Shared by the bin/ entry points. In a checkout (TypeScript sources present) runs the
// sources through tsx, so a stale build can never shadow them; in the image (only the
// `npm run build` output) runs dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** @param {string} entry path below the repo without extension, e.g. 'dataplane/src/main' */
export async function runEntry(entry) {
  const source = fileURLToPath(new URL(`../${entry}.ts`, import.meta.url));
  const built = fileURLToPath(new URL(`../dist/${entry}.js`, import.meta.url));
  if (existsSync(source)) {
    const { register } = await import('tsx/esm/api');
    register();
    await import(pathToFileURL(source).href);
  } else {
    await import(pathToFileURL(built).href);
  }
}
