//! The test-support crate's harness, and what needs this package's own binary.

use std::net::SocketAddr;

pub use qentrah_test_support::harness::*;

/// The shipped binary (this package's), serving `app` on `addr`; see [`start_binary_at`].
pub async fn start_binary(app: &TestApp, addr: SocketAddr) -> tokio::process::Child {
    start_binary_at(env!("CARGO_BIN_EXE_qentrah-connect"), app, addr).await
}
