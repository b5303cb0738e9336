//! What the integration tests (`tests/api`) and the benchmarks (`benches/`) stand on: the app
//! spawned in-process or as its binary against the dev Workspace, a fresh database (SQLite, or
//! PostgreSQL with `TEST_DATABASE=postgres`), and browsers that keep cookies and follow no
//! redirects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod database;
pub mod harness;
