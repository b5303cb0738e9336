import { readFileSync } from 'node:fs';
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { hydrated, keepScreenshot } from './support';

// AUTH_MODE=sso in a real browser, JavaScript on and off: "Open App" from the Workspace's
// marketplace in both of its shapes, pages guarded by role, sign-out, and every /login state.

const ssoPort = Number(process.env.E2E_SSO_APP_PORT ?? 3104);
const app = `http://localhost:${ssoPort}`;
const wsPort = Number(process.env.E2E_SSO_WORKSPACE_PORT ?? 3103);
const ws = `http://localhost:${wsPort}`;
const control = `http://127.0.0.1:${wsPort}/__dev`;

/** A fresh Workspace with Acme installed, its delivery applied by the app. */
async function installAcme(request: APIRequestContext) {
  expect((await request.post(`${control}/reset`)).ok()).toBeTruthy();
  const installed = await request.post(`${control}/marketplace/install?organization_id=org_acme`);
  expect(installed.ok(), await installed.text()).toBeTruthy();
  await expect
    .poll(async () => {
      const overview = await (await request.get(`${control}/marketplace`)).json();
      return overview.deliveries?.at(-1)?.state;
    })
    .toBe('delivered');
}

/** From the Workspace's marketplace: "Open App" for Acme, signing in to the Workspace as `sub`. */
async function openApp(page: Page, sub: string, mode: 'initiate' | 'legacy') {
  await page.goto(`${ws}/marketplace`);
  const name = mode === 'initiate' ? 'Open App for Acme Property Group' : 'Open App (legacy) for Acme Property Group';
  await page.getByRole('link', { name }).click();
  // Signed in to the Workspace already (its session cookie), the app opens straight away;
  // otherwise the Workspace's sign-in page comes first.
  await page.waitForURL((url) => url.href.startsWith(app) || url.pathname === '/signin');
  if (new URL(page.url()).pathname === '/signin') await page.locator(`button[value="${sub}"]`).click();
  await expect(page).toHaveURL(new RegExp(`^${app}/`));
}

test('Open App signs a member in; pages follow the role; sign-out ends it', async ({ page, request, javaScriptEnabled }, testInfo) => {
  await installAcme(request);
  await openApp(page, 'usr_milo', 'initiate');
  await hydrated(page, javaScriptEnabled);
  const header = page.locator('header.site-header');
  await expect(header.getByText('Milo Brandt')).toBeVisible();
  await expect(header.getByRole('button', { name: 'Sign out' })).toBeVisible();
  await expect(header.getByRole('link', { name: 'Users' })).toHaveCount(0);
  await keepScreenshot(page, testInfo, 'sso-member-home');

  await page.goto(`${app}/connection`);
  await expect(page.getByRole('heading', { name: 'Ask a Workspace admin to connect Qentrah Connect' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Authorize with Qentrah' })).toHaveCount(0);
  await keepScreenshot(page, testInfo, 'sso-member-connection');

  const admin = await page.goto(`${app}/admin/users`);
  expect(admin?.status()).toBe(403);
  await expect(page.getByRole('heading', { name: 'Only Workspace admins can see the admin pages' })).toBeVisible();

  await page.goto(`${app}/`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(`${app}/login?signed_out=1`);
  await expect(page.getByText('You are signed out.')).toBeVisible();
  await keepScreenshot(page, testInfo, 'sso-signed-out');
  await page.goto(`${app}/clients`);
  await expect(page).toHaveURL(`${app}/login?return_to=%2Fclients`);
});

test('the legacy Open App is bounced to a proper sign-in; an admin sees the users', async ({ page, request, javaScriptEnabled }, testInfo) => {
  await installAcme(request);
  await openApp(page, 'usr_ada', 'legacy');
  await hydrated(page, javaScriptEnabled);
  // The final URL carries neither the code nor the state.
  expect(page.url()).toBe(`${app}/`);
  const header = page.locator('header.site-header');
  await header.getByRole('link', { name: 'Users' }).click();
  await expect(page).toHaveURL(`${app}/admin/users`);
  await expect(page.getByRole('cell', { name: 'ada@acme.test' })).toBeVisible();
  await keepScreenshot(page, testInfo, 'sso-admin-users');
  await page.goto(`${app}/connection`);
  await expect(page.getByRole('link', { name: 'Authorize with Qentrah' })).toBeVisible();
});

test('every /login state says what happened', async ({ page }, testInfo) => {
  const reasons: Record<string, string> = {
    cancelled: 'Sign-in was cancelled.',
    failed: 'Sign-in did not complete.',
    invalid_state: 'This sign-in link was not started from this browser',
    untrusted: 'could not be verified',
    unavailable: 'could not be reached',
    session_expired: 'Your session ended.',
    removed: 'no longer lists you',
    recheck_failed: 'could not confirm your access',
    wrong_issuer: 'did not come from the configured Qentrah Workspace',
  };
  for (const [reason, text] of Object.entries(reasons)) {
    await page.goto(`${app}/login?reason=${reason}`);
    await expect(page.getByText(text)).toBeVisible();
    await expect(page.getByText('Open Qentrah Connect from your Qentrah Workspace (Apps → Qentrah Connect → Open).')).toBeVisible();
    await keepScreenshot(page, testInfo, `sso-login-${reason}`);
  }
  // An unknown reason shows no reason at all, never the text it was given.
  await page.goto(`${app}/login?reason=%3Cscript%3Ealert(1)%3C%2Fscript%3E`);
  await expect(page.locator('[data-reason]')).toHaveCount(0);
  await expect(page.getByLabel('Or enter your organization id')).toBeVisible();
});

test('no sign-in code, ID token, sign-in token or nonce reaches the browser or the logs', async ({ page, request, javaScriptEnabled }) => {
  test.skip(!javaScriptEnabled, 'runs once, with JavaScript');
  await installAcme(request);
  const seen: { where: string; text: string }[] = [];
  page.on('response', async (response) => {
    const url = response.url();
    if (!url.startsWith(app)) return; // the Workspace's own redirects carry codes by design
    // The callback URL carries the code by design (RFC 6749 §4.1.2); every URL after it must not.
    if (!url.includes('/auth/callback?')) seen.push({ where: `url ${url}`, text: url });
    const headers = await response.allHeaders();
    // /auth/login's Location is the authorization request, which carries the nonce by design
    // (OIDC Core §3.1.2.1, like `state`).
    if (url.startsWith(`${app}/auth/login`)) delete headers.location;
    seen.push({ where: `headers of ${url}`, text: JSON.stringify(headers) });
    try {
      seen.push({ where: `body of ${url}`, text: (await response.body()).toString('latin1') });
    } catch {
      // Redirects have no body to read.
    }
  });
  page.on('request', async (req) => {
    if (req.url().startsWith(app) && !req.url().includes('/auth/callback?')) {
      seen.push({ where: `request to ${req.url()}`, text: JSON.stringify(await req.allHeaders()) });
    }
  });
  await openApp(page, 'usr_ada', 'initiate');
  for (const path of ['/', '/clients', '/connection', '/admin/users']) await page.goto(`${app}${path}`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await openApp(page, 'usr_ada', 'legacy');
  seen.push({ where: 'cookie jar', text: JSON.stringify(await page.context().cookies()) });
  seen.push({ where: 'page', text: await page.content() });

  const secrets = readFileSync('../target/e2e/issued-secrets.txt', 'utf8').split('\n').filter((l) => l.length > 0);
  expect(secrets.some((s) => s.startsWith('eyJ'))).toBeTruthy(); // ID tokens are in the list
  seen.push({ where: 'sso app logs (RUST_LOG=trace)', text: readFileSync('../target/e2e/sso.log', 'utf8') });
  const leaks: string[] = [];
  for (const secret of secrets) {
    for (const item of seen) if (item.text.includes(secret)) leaks.push(`${secret.slice(0, 4)}… in ${item.where}`);
  }
  expect(leaks).toEqual([]);
});
