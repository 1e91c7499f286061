// Builds the page's static files into examples/dapp/dist/: app.js (src/ with viem from
// node_modules, bundled by esbuild so the page needs no network and no framework) and
// DigitRecognizer.json (the contract's creation bytecode, compiled by the repository's pinned
// forge, for the page's "Deploy" button). Usage: node examples/dapp/build.mjs
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

/** Writes dist/app.js and dist/DigitRecognizer.json; returns the dist directory. */
export async function build() {
  const dist = join(here, 'dist');
  mkdirSync(dist, { recursive: true });
  await esbuild.build({
    entryPoints: [join(here, 'src', 'main.js')],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    outfile: join(dist, 'app.js'),
    logLevel: 'warning',
  });
  const bytecode = execFileSync(
    join(root, 'node_modules', '.bin', 'forge'),
    ['inspect', 'contracts/src/examples/DigitRecognizer.sol:DigitRecognizer', 'bytecode'],
    { cwd: root, encoding: 'utf8' },
  ).trim();
  if (!/^0x[0-9a-f]+$/.test(bytecode)) throw new Error(`forge inspect gave no bytecode: ${bytecode.slice(0, 200)}`);
  writeFileSync(join(dist, 'DigitRecognizer.json'), JSON.stringify({ bytecode }) + '\n');
  return dist;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dist = await build();
  console.log(`built ${dist}`);
}
