import { defineConfig } from '@playwright/test';

// The app under test is the release build (Debian's wasm-opt once broke only release bundles;
// testing what ships catches that class of bug). The Makefile passes APP_BIN.
const port = Number(process.env.E2E_APP_PORT ?? 3101);
const baseURL = `http://localhost:${port}`;
const appBin = process.env.APP_BIN ?? '../target/release/qentrah-connect';
const workspaceBin = process.env.WORKSPACE_BIN ?? '../target/release/qentrah-dev-workspace';
const workspacePort = Number(process.env.E2E_WORKSPACE_PORT ?? 3100);
export const workspaceURL = `http://localhost:${workspacePort}`;
// AUTH_MODE=sso: a second app with its own dev Workspace (each Workspace's marketplace delivers
// to one app), so the connect-mode suite runs unchanged beside it.
const ssoPort = Number(process.env.E2E_SSO_APP_PORT ?? 3104);
const ssoURL = `http://localhost:${ssoPort}`;
const ssoWorkspacePort = Number(process.env.E2E_SSO_WORKSPACE_PORT ?? 3103);
const ssoWorkspaceURL = `http://localhost:${ssoWorkspacePort}`;
// The marketplace's webhook signing secret, the same on both sides (as .env.example has it).
const webhookSecret = 'whsec_ZW5kLXRvLWVuZC1tYXJrZXRwbGFjZS1zaWduaW5nLWtleQ==';

/** A dev Workspace on `port` whose clients and marketplace are registered for the app at `app`. */
function workspaceServer(port: number, url: string, app: string) {
  return {
    command: workspaceBin,
    url: `http://127.0.0.1:${port}/.well-known/oauth-authorization-server`,
    reuseExistingServer: false,
    timeout: 30_000,
    stdout: 'ignore' as const,
    stderr: 'pipe' as const,
    env: {
      DEV_WORKSPACE_URL: url,
      DEV_WORKSPACE_ADDR: `127.0.0.1:${port}`,
      PARTNER_APP_URL: app,
      // Every secret the Workspace issues, for the leak tests: a file, never an HTTP endpoint.
      DEV_WORKSPACE_SECRETS_FILE: '../target/e2e/issued-secrets.txt',
      DEV_WORKSPACE_WEBHOOK_SECRET: webhookSecret,
    },
  };
}

/** The app on `port` against the Workspace at `workspace`, logging at the most verbose level into
 * `target/e2e/{name}.log` (the leak tests read it), on a database of its own. */
function appServer(port: number, url: string, workspace: string, name: string, extra: Record<string, string>) {
  return {
    command: `exec '${appBin}' >> target/e2e/${name}.log 2>&1`,
    cwd: '..',
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore' as const,
    stderr: 'pipe' as const,
    env: {
      PARTNER_APP_URL: url,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      DATABASE_URL: process.env[`E2E_${name.toUpperCase()}_DATABASE_URL`] ?? `sqlite://target/e2e/${name}.db`,
      QENTRAH_WORKSPACE_API_URL: workspace,
      QENTRAH_CLIENT_ID: 'partners_client_dev_public',
      QENTRAH_CLIENT_SECRET: '',
      SESSION_SECRET: 'end-to-end-test-session-secret-0123456789',
      RUST_LOG: 'trace',
      QENTRAH_WEBHOOK_SECRETS: webhookSecret,
      // The suite runs dozens of flows from one address within a minute.
      AUTH_RATE_LIMIT_PER_MINUTE: '10000',
      ...extra,
    },
  };
}

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  retries: 0,
  // One worker: the tests share one dev Workspace and change its state through the control API.
  workers: 1,
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  outputDir: 'test-results',
  use: {
    baseURL,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      // Debian's Chromium: Playwright never downloads a browser here.
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      // Without the background-networking flags Chromium keeps calling out to the internet,
      // which these machines refuse.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  // Every page is tested as it hydrates and as it works with JavaScript off.
  projects: [
    { name: 'js', use: { javaScriptEnabled: true } },
    { name: 'no-js', use: { javaScriptEnabled: false } },
  ],
  webServer: [
    workspaceServer(workspacePort, workspaceURL, baseURL),
    appServer(port, baseURL, workspaceURL, 'app', {}),
    workspaceServer(ssoWorkspacePort, ssoWorkspaceURL, ssoURL),
    appServer(ssoPort, ssoURL, ssoWorkspaceURL, 'sso', { AUTH_MODE: 'sso' }),
  ],
});
