import { readFileSync } from 'node:fs';
import { expect, test, type Page } from '@playwright/test';
import { approve, connect, control } from './support';

// Everything the browser receives or holds during real flows, checked against every code,
// token and PKCE verifier the dev Workspace issued or received, every client secret its
// marketplace delivered, and its webhook signing secret. Not one may appear, in the
// browser or in the app's own logs at the most verbose level.

type Seen = { where: string; text: string };

const CALLBACK = '/api/auth/qentrah/callback?';

function watch(page: Page, seen: Seen[]) {
  // What the browser sends onward (a Referer carrying the callback URL would leak the code).
  page.on('request', async (request) => {
    if (request.url().includes(CALLBACK)) return;
    seen.push({ where: `request headers to ${request.url()}`, text: JSON.stringify(await request.allHeaders()) });
  });
  page.on('response', async (response) => {
    const url = response.url();
    // The callback URL carries the code by design (RFC 6749 §4.1.2); every URL after it must not.
    if (!url.includes(CALLBACK)) seen.push({ where: `url ${url}`, text: url });
    const headers = await response.allHeaders();
    seen.push({ where: `headers of ${url}`, text: JSON.stringify(headers) });
    try {
      const body = await response.body();
      seen.push({ where: `body of ${url}`, text: body.toString('latin1') });
    } catch {
      // Redirects have no body to read.
    }
  });
  page.on('framenavigated', (frame) => seen.push({ where: 'navigation', text: frame.url() }));
}

async function snapshotStorage(page: Page, seen: Seen[]) {
  if (!page.url().startsWith('http://localhost')) return;
  const storage = await page.evaluate(() => ({
    cookie: document.cookie,
    local: JSON.stringify({ ...localStorage }),
    session: JSON.stringify({ ...sessionStorage }),
    html: document.documentElement.outerHTML,
  }));
  seen.push({ where: `storage at ${page.url()}`, text: JSON.stringify(storage) });
  const cookies = await page.context().cookies();
  seen.push({ where: 'cookie jar', text: JSON.stringify(cookies) });
}

test('no token, code, verifier or secret reaches the browser or the logs', async ({ page, request, javaScriptEnabled }) => {
  test.skip(!javaScriptEnabled, 'runs once, with JavaScript: server-function payloads included');
  test.setTimeout(120_000);
  await control(request, 'reset');
  const seen: Seen[] = [];
  watch(page, seen);
  const visit = async (path: string) => {
    await page.goto(path);
    await snapshotStorage(page, seen);
  };

  // Connect, then read every page.
  await connect(page, 'Acme Property Group', true);
  await snapshotStorage(page, seen);
  for (const path of ['/organization', '/clients', '/properties', '/connection']) await visit(path);

  // Refresh: the Workspace rejects the token, the server refreshes and retries.
  await control(request, 'organizations/org_acme/expire-access-tokens');
  await visit('/organization');
  await expect(page.getByRole('heading', { level: 1, name: 'Acme Property Group' })).toBeVisible();

  // Each error state.
  await control(request, 'approval?approved=false');
  await visit('/clients');
  await control(request, 'approval?approved=true');
  await control(request, 'organizations/org_acme/withhold-scope?scope=client:read');
  await visit('/clients');
  await control(request, 'organizations/org_acme/withhold-scope?scope=client:read&withheld=false');
  await control(request, 'failures?endpoint=properties&status=503');
  await visit('/properties');

  // Reconnect after the connection expired.
  await control(request, 'organizations/org_acme/expire-connection');
  await visit('/clients');
  await page.getByRole('link', { name: 'Reconnect to Qentrah' }).click();
  await approve(page, 'Acme Property Group');
  await expect(page.getByRole('heading', { level: 1, name: 'Clients' })).toBeVisible();
  await snapshotStorage(page, seen);

  // Disconnect.
  await visit('/connection?confirm=disconnect');
  await page.getByRole('button', { name: 'Yes, disconnect' }).click();
  await expect(page.getByText('Not connected to Qentrah.')).toBeVisible();
  await snapshotStorage(page, seen);

  // A marketplace install: the client secret it delivers, and the webhook signing secret, are
  // secrets like the tokens (both are in the Workspace's list).
  await control(request, 'marketplace/install?organization_id=org_harbor');
  await expect(async () => {
    await visit('/admin/installations');
    await expect(page.getByRole('row').filter({ hasText: 'org_harbor' }).first()).toContainText('active', { timeout: 500 });
  }).toPass({ timeout: 10_000 });
  await page.goto('/api/auth/qentrah/start?organization_id=org_harbor');
  await approve(page, 'Harbor & Pine Estates');
  await expect(page.getByText('Connected to')).toBeVisible();
  await snapshotStorage(page, seen);
  for (const path of ['/organization', '/connection']) await visit(path);
  await control(request, 'marketplace/uninstall?organization_id=org_harbor');
  await expect(async () => {
    await visit('/admin/installations');
    await expect(page.getByRole('row').filter({ hasText: 'org_harbor' }).first()).toContainText('done', { timeout: 500 });
  }).toPass({ timeout: 10_000 });

  const secrets: string[] = readFileSync('../target/e2e/issued-secrets.txt', 'utf8')
    .split('\n')
    .filter((line) => line.length > 0);
  expect(secrets.length).toBeGreaterThanOrEqual(8); // codes, verifiers, access and refresh tokens
  const logs = readFileSync('../target/e2e/app.log', 'utf8');
  expect(logs.length).toBeGreaterThan(1000);
  seen.push({ where: 'app logs (RUST_LOG=trace)', text: logs });

  // Responses from the Workspace itself (its consent page and redirects) carry codes by design;
  // what matters is everything from the app and everything the browser keeps.
  const fromApp = seen.filter((s) => !s.where.includes('localhost:3100') || s.where.startsWith('storage'));
  const leaks: string[] = [];
  for (const secret of secrets) {
    for (const item of fromApp) {
      if (item.text.includes(secret)) leaks.push(`${secret.slice(0, 4)}… in ${item.where}`);
    }
  }
  expect(leaks).toEqual([]);
  console.log(`leak scan: ${secrets.length} secrets × ${fromApp.length} places, none found`);
});
