//! The server binary refuses bad configuration with one line naming the variable.

use std::process::Command;

const SECRET: &str = "a-perfectly-long-session-secret-value-0123456789";

fn run_with(vars: &[(&str, &str)]) -> (bool, String) {
    // A temporary working directory: no `.env` or `Leptos.toml` of the checkout can interfere.
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_qentrah-connect"))
        .env_clear()
        .envs(vars.iter().copied())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.stdout.is_empty(), "nothing on stdout");
    (
        output.status.success(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn valid() -> Vec<(&'static str, &'static str)> {
    vec![
        ("QENTRAH_WORKSPACE_API_URL", "http://localhost:3000"),
        ("QENTRAH_CLIENT_ID", "partners_client_dev"),
        ("PARTNER_APP_URL", "http://localhost:3001"),
        ("SESSION_SECRET", SECRET),
    ]
}

fn with(name: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut vars: Vec<_> = valid().into_iter().filter(|(n, _)| *n != name).collect();
    vars.push((name, value));
    vars
}

fn assert_refused(vars: &[(&str, &str)], variable: &str, rule: &str) {
    let (success, stderr) = run_with(vars);
    assert!(!success, "the server must not start");
    assert_eq!(stderr.lines().count(), 1, "exactly one line: {stderr:?}");
    assert!(stderr.contains(variable), "names {variable}: {stderr:?}");
    assert!(stderr.contains(rule), "states the rule: {stderr:?}");
    for (_, value) in vars {
        if value.len() >= 8 && !value.starts_with("http") {
            assert!(!stderr.contains(value), "printed a value: {stderr:?}");
        }
    }
}

#[test]
fn short_session_secret_stops_the_server() {
    assert_refused(
        &with("SESSION_SECRET", "short-secret-xyz"),
        "SESSION_SECRET",
        "at least 32 characters",
    );
}

#[test]
fn malformed_url_stops_the_server() {
    assert_refused(
        &with("QENTRAH_WORKSPACE_API_URL", "localhost 3000"),
        "QENTRAH_WORKSPACE_API_URL",
        "absolute URL",
    );
    assert_refused(
        &with("PARTNER_APP_URL", "http://partner.example"),
        "PARTNER_APP_URL",
        "https",
    );
}

#[test]
fn missing_required_variable_stops_the_server() {
    for name in [
        "QENTRAH_WORKSPACE_API_URL",
        "QENTRAH_CLIENT_ID",
        "PARTNER_APP_URL",
        "SESSION_SECRET",
    ] {
        let vars: Vec<_> = valid().into_iter().filter(|(n, _)| *n != name).collect();
        assert_refused(&vars, name, "is required");
    }
}

#[test]
fn client_secret_is_never_printed() {
    let mut vars = with("SESSION_SECRET", "short");
    vars.push(("QENTRAH_CLIENT_SECRET", "confidential-client-secret-value"));
    let (_, stderr) = run_with(&vars);
    assert!(!stderr.contains("confidential-client-secret-value"));
}

/// `.env` is read from the working directory only, as the README says: one in a parent folder
/// (another checkout, a home directory) configures nothing.
#[test]
fn a_parent_folders_env_file_is_not_read() {
    let parent = tempfile::tempdir().unwrap();
    let env: String = valid()
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    std::fs::write(parent.path().join(".env"), env).unwrap();
    let child = parent.path().join("elsewhere");
    std::fs::create_dir(&child).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_qentrah-connect"))
        .env_clear()
        .current_dir(&child)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(
        stderr.contains("QENTRAH_WORKSPACE_API_URL") && stderr.contains("is required"),
        "{stderr}"
    );
}
