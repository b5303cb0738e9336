import { expect, test } from '@playwright/test';
import { approve, connect, control, hydrated, keepScreenshot } from './support';

test.beforeEach(async ({ request }) => {
  await control(request, 'reset');
});

test('organization, clients and properties are shown after connecting', async ({ page, javaScriptEnabled }, testInfo) => {
  await connect(page, 'Acme Property Group', javaScriptEnabled);
  await expect(page.getByText('Acme Property Group')).toBeVisible();

  await page.getByRole('link', { name: 'View organization' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Acme Property Group' })).toBeVisible();
  await expect(page.getByRole('link', { name: /12\s*Clients/ })).toBeVisible();
  await keepScreenshot(page, testInfo, 'organization');

  await page.getByRole('navigation', { name: 'Primary' }).getByRole('link', { name: 'Clients' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Clients' })).toBeVisible();
  await expect(page.getByRole('row')).toHaveCount(13); // header + 12
  await keepScreenshot(page, testInfo, 'clients');

  // Filter: live after hydration, through the GET form without JavaScript.
  await hydrated(page, javaScriptEnabled);
  await page.getByRole('searchbox', { name: 'Filter' }).fill('Lisbon');
  if (!javaScriptEnabled) {
    await page.getByRole('button', { name: 'Apply' }).click();
  }
  await expect(page.getByText(/of 12 clients/)).toBeVisible();
  const rows = await page.getByRole('row').count();
  expect(rows).toBeGreaterThan(1);
  expect(rows).toBeLessThan(13);

  await page.getByRole('navigation', { name: 'Primary' }).getByRole('link', { name: 'Properties' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Properties' })).toBeVisible();
  await expect(page.getByRole('row')).toHaveCount(9);
});

test('an expired connection offers to reconnect and comes back to the same page', async ({ page, request, javaScriptEnabled }, testInfo) => {
  await connect(page, 'Acme Property Group', javaScriptEnabled);
  await control(request, 'organizations/org_acme/expire-connection');
  await page.goto('/clients');
  await expect(page.getByRole('heading', { name: 'Your connection to Qentrah has expired' })).toBeVisible();
  await keepScreenshot(page, testInfo, 'reconnect');
  await page.getByRole('link', { name: 'Reconnect to Qentrah' }).click();
  await approve(page, 'Acme Property Group');
  await expect(page).toHaveURL(/\/clients$/);
  await expect(page.getByRole('row')).toHaveCount(13);
});

test('a deleted connection offers to reconnect', async ({ page, request, javaScriptEnabled }) => {
  await connect(page, 'Acme Property Group', javaScriptEnabled);
  await control(request, 'organizations/org_acme/delete-connection');
  await page.goto('/properties');
  await expect(page.getByRole('link', { name: 'Reconnect to Qentrah' })).toBeVisible();
});

test('an unapproved app asks for a Workspace admin, and Retry works once approved', async ({ page, request, javaScriptEnabled }, testInfo) => {
  await connect(page, 'Acme Property Group', javaScriptEnabled);
  await control(request, 'approval?approved=false');
  await page.goto('/clients');
  await expect(page.getByRole('heading', { name: 'A Qentrah admin must approve this app' })).toBeVisible();
  await expect(page.getByRole('link', { name: /Reconnect/ })).toHaveCount(0);
  await keepScreenshot(page, testInfo, 'app-not-approved');
  await control(request, 'approval?approved=true');
  await page.getByRole('link', { name: 'Retry' }).click();
  await expect(page.getByRole('row')).toHaveCount(13);
});

test('a missing scope says which, and authorizing again fixes it', async ({ page, request, javaScriptEnabled }, testInfo) => {
  await connect(page, 'Acme Property Group', javaScriptEnabled);
  await control(request, 'organizations/org_acme/withhold-scope?scope=property:read');
  await page.goto('/properties');
  await expect(page.getByRole('heading', { name: 'This app is missing access' })).toBeVisible();
  await expect(page.getByText('property:read')).toBeVisible();
  await keepScreenshot(page, testInfo, 'scope-denied');
  await control(request, 'organizations/org_acme/withhold-scope?scope=property:read&withheld=false');
  await page.getByRole('link', { name: 'Authorize again' }).click();
  await approve(page, 'Acme Property Group');
  await expect(page).toHaveURL(/\/properties$/);
  await expect(page.getByRole('row')).toHaveCount(9);
});

test('a token for another organization offers to connect the right one', async ({ page, request, javaScriptEnabled }, testInfo) => {
  await connect(page, 'Acme Property Group', javaScriptEnabled);
  const body = encodeURIComponent('{"error":{"code":"wrong_organization","message":"other org"}}');
  await control(request, `failures?endpoint=clients&status=403&body=${body}`);
  await page.goto('/clients');
  await expect(page.getByRole('heading', { name: 'This connection is for another organization' })).toBeVisible();
  await keepScreenshot(page, testInfo, 'wrong-organization');
  await page.getByRole('link', { name: 'Connect the right organization' }).click();
  await approve(page, 'Harbor & Pine Estates');
  await expect(page).toHaveURL(/\/clients$/);
  await expect(page.getByText('240 clients')).toBeVisible();
});

test('Qentrah unavailable or malformed shows a working Retry', async ({ page, request, javaScriptEnabled }, testInfo) => {
  await connect(page, 'Acme Property Group', javaScriptEnabled);
  await control(request, 'failures?endpoint=clients&status=503');
  await page.goto('/clients');
  await expect(page.getByRole('heading', { name: 'Qentrah is unavailable' })).toBeVisible();
  await keepScreenshot(page, testInfo, 'unavailable');
  await page.getByRole('link', { name: 'Retry' }).click();
  await expect(page.getByRole('row')).toHaveCount(13);

  await control(request, 'failures?endpoint=me&status=200'); // a malformed 200
  await page.goto('/organization');
  await expect(page.getByRole('heading', { name: 'Qentrah is unavailable' })).toBeVisible();
});

test('disconnect asks for confirmation, revokes, and leaves the app disconnected', async ({ page, javaScriptEnabled }, testInfo) => {
  await connect(page, 'Acme Property Group', javaScriptEnabled);
  await page.getByRole('link', { name: 'Connection' }).first().click();
  await expect(page.getByRole('heading', { name: 'Connected' })).toBeVisible();
  await expect(page.getByText('read your clients')).toBeVisible();
  await keepScreenshot(page, testInfo, 'connection');
  await page.getByRole('link', { name: 'Disconnect…' }).click();
  await page.getByRole('button', { name: 'Yes, disconnect' }).click();
  await expect(page.getByText('Not connected to Qentrah.')).toBeVisible();
  await page.goto('/');
  await expect(page.getByRole('link', { name: 'Authorize with Qentrah' })).toBeVisible();
});

test('coming back connected lands on the overview, each part with its own state', async ({ page, request, javaScriptEnabled }, testInfo) => {
  await connect(page, 'Acme Property Group', javaScriptEnabled);
  await expect(page.getByRole('heading', { level: 2, name: 'Clients' })).toBeVisible();
  await expect(page.getByText('12 clients', { exact: true })).toBeVisible();
  await expect(page.getByText('8 properties', { exact: true })).toBeVisible();
  await expect(page.getByRole('link', { name: 'All 12 clients' })).toHaveAttribute('href', '/clients');
  await keepScreenshot(page, testInfo, 'overview');

  // A withdrawn scope shows, with its fix, in the part it concerns; the rest stands.
  await control(request, 'organizations/org_acme/withhold-scope?scope=property:read');
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'This app is missing access' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Authorize again' })).toBeVisible();
  await expect(page.getByText('12 clients', { exact: true })).toBeVisible();
  await keepScreenshot(page, testInfo, 'overview-part-failing');
});

test('a list of thousands is read a page at a time', async ({ page, request, javaScriptEnabled }, testInfo) => {
  await control(request, 'organizations/org_harbor/client-count?count=1200');
  await connect(page, 'Harbor & Pine Estates', javaScriptEnabled);
  await page.goto('/clients');
  await expect(page.getByText('This page shows 500 clients; the next page has more.')).toBeVisible();
  await expect(page.getByRole('row')).toHaveCount(501);
  await keepScreenshot(page, testInfo, 'clients-paged');
  await page.getByRole('link', { name: 'Next page' }).click();
  await expect(page).toHaveURL(/\/clients\?cursor=/);
  await expect(page.getByRole('row')).toHaveCount(501);
  await page.getByRole('link', { name: 'Next page' }).click();
  await expect(page.getByText('The last page: 200 clients.')).toBeVisible();
  await expect(page.getByRole('link', { name: 'Next page' })).toHaveCount(0);
  await page.getByRole('link', { name: 'First page' }).click();
  await expect(page).toHaveURL(/\/clients$/);
  await expect(page.getByRole('row')).toHaveCount(501);
});
