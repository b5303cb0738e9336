import { expect, type APIRequestContext, type Page, type TestInfo } from '@playwright/test';

const workspacePort = Number(process.env.E2E_WORKSPACE_PORT ?? 3100);
// Control calls go to 127.0.0.1: the control API answers only on loopback, and Node may
// resolve `localhost` to ::1 first.
export const controlURL = `http://127.0.0.1:${workspacePort}/__dev`;
/** The dev Workspace's own pages (its marketplace), as a person's browser opens them. */
export const workspaceURL = `http://localhost:${workspacePort}`;

/** POST a control action to the dev Workspace, e.g. `control(request, 'reset')`. */
export async function control(request: APIRequestContext, action: string): Promise<void> {
  const response = await request.post(`${controlURL}/${action}`);
  expect(response.ok(), `${action}: ${response.status()} ${await response.text()}`).toBeTruthy();
}

/** On the dev Workspace's consent page: pick the organization and approve. */
export async function approve(page: Page, organization: string): Promise<void> {
  await expect(page.getByRole('heading', { name: /^Authorize/ })).toBeVisible();
  await page.getByLabel(organization).check();
  await page.getByRole('button', { name: 'Approve' }).click();
}

/** Waits until hydration is done (a no-op with JavaScript off). */
export async function hydrated(page: Page, javaScriptEnabled: boolean): Promise<void> {
  if (javaScriptEnabled) {
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  }
}

/** From a fresh browser: home → Authorize with Qentrah → consent → back, connected. */
export async function connect(page: Page, organization: string, javaScriptEnabled: boolean): Promise<void> {
  await page.goto('/');
  await hydrated(page, javaScriptEnabled);
  await page.getByRole('link', { name: 'Authorize with Qentrah' }).click();
  await approve(page, organization);
  await expect(page.getByText('Connected to')).toBeVisible();
}

/** Keeps a screenshot of the current state as a test artifact. */
export async function keepScreenshot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  await page.screenshot({ path: testInfo.outputPath(`${name}.png`), fullPage: true });
}
