import { expect, test } from '@playwright/test';

test('home page is rendered on the server, readable without JavaScript', async ({ page }) => {
  const response = await page.goto('/');
  expect(response?.status()).toBe(200);

  await expect(page).toHaveTitle('Qentrah Connect');
  await expect(page.getByRole('banner').getByRole('link', { name: 'Qentrah Connect' })).toBeVisible();
  await expect(page.getByRole('heading', { level: 1, name: 'Connect your Qentrah Workspace' })).toBeVisible();
  await expect(page.getByRole('main')).toBeVisible();
  // The steps are open in the server's HTML, so they need no script to read.
  await expect(page.getByRole('list').filter({ hasText: 'sign in to Qentrah' })).toBeVisible();
  // The stylesheet from the bundle is applied.
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  expect(background).toBe('rgb(246, 247, 249)');
});

test('without JavaScript the page stays static and hides controls that could not respond', async ({
  page,
  javaScriptEnabled,
}) => {
  test.skip(javaScriptEnabled, 'checks the no-JavaScript rendering');
  await page.goto('/');
  await expect(page.getByRole('button', { name: /the steps/ })).toBeHidden();
  await expect(page.locator('body')).not.toHaveAttribute('data-hydrated', 'true');
});

test('with JavaScript the page hydrates and its controls respond', async ({ page, javaScriptEnabled }) => {
  test.skip(!javaScriptEnabled, 'needs JavaScript');
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  // A CSP that blocked Leptos's scripts or the wasm would show up here.
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });

  await page.goto('/');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');

  const toggle = page.getByRole('button', { name: 'Hide the steps' });
  await expect(toggle).toBeVisible();
  await expect(toggle).toHaveAttribute('aria-expanded', 'true');
  const steps = page.getByRole('list').filter({ hasText: 'sign in to Qentrah' });

  await toggle.click();
  await expect(steps).toBeHidden();
  const show = page.getByRole('button', { name: 'Show the steps' });
  await expect(show).toHaveAttribute('aria-expanded', 'false');

  await show.click();
  await expect(steps).toBeVisible();
  expect(errors).toEqual([]);
});

test('an unknown address shows a 404 page with a way home', async ({ page }) => {
  const response = await page.goto('/no/such/page');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await page.getByRole('link', { name: 'Go to the home page' }).click();
  await expect(page).toHaveURL('/');
});
