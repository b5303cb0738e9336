import { expect, test } from '@playwright/test';
import { control } from './support';

test.beforeEach(async ({ request }) => {
  await control(request, 'reset');
});

// The whole flow in a real browser: the app, the dev Workspace's consent page, and back.
test('authorize with Qentrah, consent, and come back connected', async ({ page, javaScriptEnabled }) => {
  await page.goto('/');
  const authorize = page.getByRole('link', { name: 'Authorize with Qentrah' });
  await expect(authorize).toBeVisible();
  if (javaScriptEnabled) {
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  }
  await authorize.click();

  // The dev Workspace's sign-in and consent page.
  await expect(page.getByRole('heading', { name: /Authorize/ })).toBeVisible();
  await page.getByLabel('Acme Property Group').check();
  await page.getByRole('button', { name: 'Approve' }).click();

  // Back on the app, on a clean URL.
  await expect(page.getByText('Connected to')).toBeVisible();
  await expect(page.getByText('Acme Property Group')).toBeVisible();
  expect(page.url()).not.toContain('code=');
  expect(page.url()).not.toContain('state=');
});

test('denying consent explains what happened and offers to try again', async ({ page }) => {
  await page.goto('/');
  await page.getByRole('link', { name: 'Authorize with Qentrah' }).click();
  await page.getByRole('button', { name: 'Deny' }).click();
  await expect(page.getByRole('heading', { name: 'Access was not granted' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Try again' })).toHaveAttribute('href', '/api/auth/qentrah/start');
});
