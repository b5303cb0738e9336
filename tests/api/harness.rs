//! The test-support crate's harness, and what needs this package's own binary.

use std::net::SocketAddr;

pub use qentrah_test_support::harness::*;

/// The shipped binary (this package's), serving `app` on `addr`; see [`start_binary_at`].
pub async fn start_binary(app: &TestApp, addr: SocketAddr) -> tokio::process::Child {
    start_binary_at(env!("CARGO_BIN_EXE_qentrah-connect"), app, addr).await
}

/// A `TestApp` for the binary: the dev Workspace in-process, a free port the binary is to
/// listen on, a fresh database.
pub async fn binary_app() -> TestApp {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let origin = format!("http://localhost:{}", addr.port());
    let ws = qentrah_dev_workspace::start(qentrah_dev_workspace::DevWorkspaceConfig::for_tests(
        &origin,
    ))
    .await
    .unwrap();
    TestApp::external(origin, addr, ws, TestDatabase::for_suite().await)
}
