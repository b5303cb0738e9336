// Prints the size of the hydrate bundle (wasm + JS + CSS) as raw, gzip and brotli bytes, the
// figures later work tracks (what a browser downloads with compression on).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const dir = process.argv[2] ?? 'target/site/pkg';
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const rows = [];
let total = { raw: 0, gzip: 0, brotli: 0 };
for (const name of readdirSync(dir).sort()) {
  const path = join(dir, name);
  if (!statSync(path).isFile() || !/\.(wasm|js|css)$/.test(name)) continue;
  const data = readFileSync(path);
  const sizes = {
    raw: data.length,
    gzip: gzipSync(data, { level: 9 }).length,
    brotli: brotliCompressSync(data, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length },
    }).length,
  };
  if (/\.(wasm|js)$/.test(name)) {
    for (const k of Object.keys(total)) total[k] += sizes[k];
  }
  rows.push([name, sizes]);
}
if (rows.length === 0) {
  console.error(`bundle-sizes: no files in ${dir}; run the release build first`);
  process.exit(1);
}
console.log(`Bundle sizes (${dir}):`);
for (const [name, s] of rows) {
  console.log(`  ${name.padEnd(28)} raw ${kb(s.raw).padStart(10)}  gzip ${kb(s.gzip).padStart(10)}  brotli ${kb(s.brotli).padStart(10)}`);
}
console.log(`  ${'wasm + js'.padEnd(28)} raw ${kb(total.raw).padStart(10)}  gzip ${kb(total.gzip).padStart(10)}  brotli ${kb(total.brotli).padStart(10)}`);
