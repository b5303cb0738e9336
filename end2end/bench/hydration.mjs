// First byte → hydrated, in headless Chromium, against the wasm compile time alone, measured
// side by side in one run (a fresh browser for every sample, so no compiled-code cache helps).
// Run by `make bench` after `cargo bench`; prints in the same format.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from '@playwright/test';

const appBin = process.env.APP_BIN ?? '../target/release/qentrah-connect';
const port = 3301;
const base = `http://localhost:${port}`;
const samples = Number(process.env.SAMPLES ?? 9);
const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const dir = mkdtempSync(join(tmpdir(), 'qc-bench-'));
const app = spawn(appBin, [], {
  cwd: '..',
  stdio: 'ignore',
  env: {
    PATH: process.env.PATH,
    PARTNER_APP_URL: base,
    LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
    DATABASE_URL: `sqlite://${dir}/bench.db`,
    QENTRAH_WORKSPACE_API_URL: 'http://127.0.0.1:9',
    QENTRAH_CLIENT_ID: 'bench',
    SESSION_SECRET: 'hydration-benchmark-session-secret-0123456789',
    RUST_LOG: 'error',
  },
});

async function waitHealthy() {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('app did not start');
}

async function hydrationSample() {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args });
  const page = await browser.newPage();
  await page.addInitScript(() => {
    document.addEventListener('DOMContentLoaded', () => { window.__loadedAt = performance.now(); });
    new MutationObserver((_, observer) => {
      if (document.body?.getAttribute('data-hydrated') === 'true') {
        window.__hydratedAt = performance.now();
        observer.disconnect();
      }
    }).observe(document, { attributes: true, subtree: true, attributeFilter: ['data-hydrated'] });
  });
  await page.goto(base + '/');
  await page.waitForFunction(() => window.__hydratedAt !== undefined, null, { timeout: 30_000 });
  const sample = await page.evaluate(() => {
    const start = performance.getEntriesByType('navigation')[0].responseStart;
    const requested = Math.min(...performance.getEntriesByType('resource')
      .filter((e) => /\.(js|wasm)$/.test(e.name)).map((e) => e.startTime));
    return {
      hydrated: window.__hydratedAt - start,
      requested: requested - start,
      loaded: window.__loadedAt - start,
    };
  });
  await browser.close();
  return sample;
}

// V8 compiles wasm lazily: `WebAssembly.compile` alone validates the module and compiles each
// function on its first call. `eager` compiles every function up front with the baseline
// compiler (Liftoff), which is the whole module's compile time.
async function compileSample(wasmBase64, eager) {
  const flags = eager ? ['--js-flags=--no-wasm-lazy-compilation'] : [];
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: [...args, ...flags] });
  const page = await browser.newPage();
  // A blank page: no CSP of ours in the way, and no copy of the module compiled yet.
  const ms = await page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const t0 = performance.now();
    await WebAssembly.compile(bytes);
    return performance.now() - t0;
  }, wasmBase64);
  await browser.close();
  return ms;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  await waitHealthy();
  const wasm = Buffer.from(await (await fetch(`http://127.0.0.1:${port}/pkg/qentrah-connect.wasm`)).arrayBuffer());
  const hydration = [];
  const requested = [];
  const loaded = [];
  const ours = [];
  const lazy = [];
  const eager = [];
  for (let i = 0; i < samples; i++) {
    const sample = await hydrationSample();
    hydration.push(sample.hydrated);
    requested.push(sample.requested);
    loaded.push(sample.loaded);
    ours.push(sample.hydrated - sample.loaded);
    lazy.push(await compileSample(wasm.toString('base64'), false));
    eager.push(await compileSample(wasm.toString('base64'), true));
  }
  const row = (name, measured, target, met) =>
    console.log(`${name.padEnd(58)} ${measured.padStart(22)}   target ${target.padEnd(14)} ${met ? 'met' : 'NOT MET'}`);
  const ms = (xs) => median(xs).toFixed(0);
  const ratio = median(hydration) / median(eager);
  row('first byte → hydrated ÷ wasm compile (medians, Chromium)', `${ratio.toFixed(2)}× (${ms(hydration)}/${ms(eager)} ms)`, '≤ 2×', ratio <= 2);
  const explain = (name, measured, what) => console.log(`${name.padEnd(58)} ${measured.padStart(22)}   ${what}`);
  const before = median(requested) / median(eager);
  explain('  of which before the browser asks for the bundle', `${before.toFixed(2)}× (${ms(requested)} ms)`, "the browser's");
  const pageLoad = median(loaded) / median(eager);
  explain('  … until the page is parsed and its scripts loaded (DCL)', `${pageLoad.toFixed(2)}× (${ms(loaded)} ms)`, "the browser's floor");
  const oursRatio = median(ours) / median(eager);
  explain('  then instantiating and hydrating (DCL → hydrated)', `${oursRatio.toFixed(2)}× (${ms(ours)} ms)`, 'ours');
  const lazyRatio = median(hydration) / median(lazy);
  explain('  ÷ lazy compile (validation only) instead', `${lazyRatio.toFixed(2)}× (${ms(lazy)} ms)`, 'for reference');
} finally {
  app.kill();
}
