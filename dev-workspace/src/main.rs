//! `qentrah-dev-workspace`: the emulator as a process, for `make dev` and the browser tests.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use qentrah_dev_workspace::{
    start, DevWorkspaceConfig, CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET,
    DEFAULT_ACCESS_TOKEN_TTL, PUBLIC_CLIENT_ID,
};

fn fail(message: &str) -> ExitCode {
    eprintln!("qentrah-dev-workspace: {message}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    // Shares the app's `.env` (for PARTNER_APP_URL); the real environment wins.
    let _ = dotenvy::dotenv();
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEV_WORKSPACE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();

    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    // By default the emulator is the Workspace the app is configured for, so that the app's
    // QENTRAH_WORKSPACE_API_URL is the one source of its address.
    let public_url = var("DEV_WORKSPACE_URL")
        .or_else(|| var("QENTRAH_WORKSPACE_API_URL"))
        .unwrap_or_else(|| "http://localhost:3000".to_owned());
    let Some(public_port) = url::Url::parse(&public_url)
        .ok()
        .filter(|u| u.scheme() == "http")
        .and_then(|u| u.port_or_known_default())
    else {
        return fail(
            "DEV_WORKSPACE_URL (or QENTRAH_WORKSPACE_API_URL) must be an http URL such as http://localhost:3000",
        );
    };
    let listen: SocketAddr = match var("DEV_WORKSPACE_ADDR")
        .unwrap_or_else(|| format!("127.0.0.1:{public_port}"))
        .parse()
    {
        Ok(addr) => addr,
        Err(_) => return fail("DEV_WORKSPACE_ADDR must be an address such as 127.0.0.1:3000"),
    };
    let partner_app_url =
        var("PARTNER_APP_URL").unwrap_or_else(|| "http://localhost:3001".to_owned());
    if url::Url::parse(&partner_app_url).is_err() {
        return fail("PARTNER_APP_URL must be an absolute URL such as http://localhost:3001");
    }
    let access_token_ttl = match var("DEV_WORKSPACE_ACCESS_TOKEN_TTL_SECS") {
        None => DEFAULT_ACCESS_TOKEN_TTL,
        Some(raw) => match raw.parse::<u64>() {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => {
                return fail("DEV_WORKSPACE_ACCESS_TOKEN_TTL_SECS must be a positive whole number")
            }
        },
    };

    // The marketplace's signing secret (the app's QENTRAH_WEBHOOK_SECRETS holds the same):
    // without it, the Workspace has no marketplace.
    let marketplace = match var("DEV_WORKSPACE_WEBHOOK_SECRET") {
        None => None,
        Some(secret) => {
            if qentrah_dev_workspace::marketplace::secret_key(&secret).len() < 24 {
                return fail(
                    "DEV_WORKSPACE_WEBHOOK_SECRET must be a Standard Webhooks secret whsec_<base64> of at least 24 bytes",
                );
            }
            Some(DevWorkspaceConfig::marketplace_for(
                &partner_app_url,
                &secret,
                qentrah_dev_workspace::marketplace::standard_retry_schedule(),
            ))
        }
    };
    let marketplace_on = marketplace.is_some();
    let config = DevWorkspaceConfig {
        marketplace,
        listen,
        public_url: Some(public_url),
        clients: DevWorkspaceConfig::default_clients(&partner_app_url),
        access_token_ttl,
        issuer_path: String::new(),
        profile: &qentrah_dev_workspace::profile::QENTRAH,
        // For leak tests run outside the process (Playwright): every secret issued, one a line.
        secrets_file: var("DEV_WORKSPACE_SECRETS_FILE").map(std::path::PathBuf::from),
    };
    let workspace = match start(config).await {
        Ok(workspace) => workspace,
        Err(error) => return fail(&format!("could not listen on {listen}: {error}")),
    };
    println!(
        "Qentrah dev Workspace on {} (listening on {})",
        workspace.base_url, workspace.addr
    );
    println!("  public client:       {PUBLIC_CLIENT_ID}");
    println!(
        "  confidential client: {CONFIDENTIAL_CLIENT_ID} (secret {CONFIDENTIAL_CLIENT_SECRET})"
    );
    println!(
        "  redirect URI:        {}/api/auth/qentrah/callback",
        partner_app_url.trim_end_matches('/')
    );
    println!("  control page:        {}/__dev", workspace.base_url);
    if marketplace_on {
        println!(
            "  marketplace:         {}/marketplace (deliveries to {}/api/webhooks/qentrah)",
            workspace.base_url,
            partner_app_url.trim_end_matches('/')
        );
    } else {
        println!("  marketplace:         off (set DEV_WORKSPACE_WEBHOOK_SECRET)");
    }
    workspace
        .run_until(async {
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                () = terminate => {},
            }
        })
        .await;
    ExitCode::SUCCESS
}
