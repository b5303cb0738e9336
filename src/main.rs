//! The server binary: configuration → telemetry → database → state → router.

use std::process::ExitCode;
use std::sync::Arc;

use qentrah_connect::server::platform::clock::SystemClock;
use qentrah_connect::server::platform::telemetry;
use qentrah_connect::server::startup::{shutdown_signal, Application};
use qentrah_connect::server::AppConfig;

/// The file the server reads its Leptos runtime options from (overridable by `LEPTOS_*`).
const LEPTOS_CONFIG_FILE: &str = "Leptos.toml";

#[tokio::main]
async fn main() -> ExitCode {
    // `.env` in the working directory (only there: not a parent folder's, which would quietly
    // configure an app started from the wrong place) fills in only what the real environment
    // leaves unset. A malformed file is fatal: silently ignoring it would run the app with
    // configuration nobody intended.
    match dotenvy::from_path(".env") {
        Ok(_) => {}
        Err(error) if error.not_found() => {}
        Err(_) => return fail("the .env file could not be read or parsed"),
    }

    let config = match AppConfig::from_env() {
        Ok(config) => config,
        Err(error) => return fail(&format!("configuration error: {error}")),
    };
    let leptos_options = match leptos::config::get_configuration(Some(LEPTOS_CONFIG_FILE)) {
        Ok(conf) => conf.leptos_options,
        Err(error) => {
            return fail(&format!(
                "configuration error: {LEPTOS_CONFIG_FILE} could not be read: {error}"
            ))
        }
    };

    telemetry::init();
    let app = match Application::build(config, leptos_options, Arc::new(SystemClock)).await {
        Ok(app) => app,
        Err(error) => return fail(&format!("start-up failed: {error:?}")),
    };
    if let Some(addr) = app.local_addr() {
        tracing::info!(
            %addr,
            public_url = app.state().config.partner_app_url.origin(),
            "listening"
        );
    }
    match app.serve(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&format!("{error:?}")),
    }
}

/// One line on stderr, naming what is wrong (never a secret value), and a non-zero exit.
fn fail(message: &str) -> ExitCode {
    eprintln!("qentrah-connect: {message}");
    ExitCode::from(2)
}
