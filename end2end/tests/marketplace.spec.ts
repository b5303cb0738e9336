import { expect, test, type Page } from '@playwright/test';
import { approve, control, workspaceURL } from './support';

test.beforeEach(async ({ request }) => {
  await control(request, 'reset');
});

/** The app's admin page, reloaded until `text` shows in the row of `clientId` (deliveries are
 * async; earlier specs' installations of Harbor may be listed too, in the same second). */
async function expectInstallation(page: Page, clientId: string, text: RegExp): Promise<void> {
  await expect(async () => {
    await page.goto('/admin/installations');
    const rows = page.getByRole('row').filter({ hasText: clientId });
    await expect(rows.first()).toContainText(text, { timeout: 500 });
  }).toPass({ timeout: 10_000 });
}

// A Workspace admin installs Qentrah Connect for an organization in the Workspace's marketplace;
// the signed delivery arrives, the organization connects with its own client; the admin
// uninstalls it, and the app forgets the connection and refuses to start one.
test('the marketplace installs and uninstalls, and the app follows', async ({ page }) => {
  await page.goto(`${workspaceURL}/marketplace`);
  await expect(page.getByRole('heading', { name: 'Marketplace' })).toBeVisible();
  await page.getByRole('button', { name: 'Install for Harbor & Pine Estates' }).click();
  const installed = page.getByRole('row').filter({ hasText: 'org_harbor' }).first();
  await expect(installed).toContainText('Installed');
  const clientId = (await installed.locator('code').nth(1).textContent()) ?? '';
  expect(clientId).toMatch(/^app_/);
  await expectInstallation(page, clientId, /active/);

  // Connect that organization with its installation's client.
  await page.goto('/api/auth/qentrah/start?organization_id=org_harbor');
  await approve(page, 'Harbor & Pine Estates');
  await expect(page.getByText('Connected to')).toBeVisible();
  await page.goto('/connection');
  await expect(page.getByRole('heading', { name: 'Connected' })).toBeVisible();

  await page.goto(`${workspaceURL}/marketplace`);
  await page.getByRole('button', { name: 'Uninstall for Harbor & Pine Estates' }).click();
  await expect(page.getByRole('row').filter({ hasText: 'org_harbor' }).first()).toContainText('Not installed');
  await expectInstallation(page, clientId, /uninstalled.*done/);

  // The purge ended this browser's session with that organization's connection.
  await page.goto('/connection');
  await expect(page.getByText('Not connected to Qentrah.')).toBeVisible();
  // And no new flow starts for it.
  await page.goto('/api/auth/qentrah/start?organization_id=org_harbor');
  await expect(page.getByRole('heading', { name: 'Qentrah Connect was uninstalled from this Workspace' })).toBeVisible();
});
