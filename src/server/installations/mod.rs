//! Marketplace installs: a Workspace installs this app for an organization, creates an OAuth
//! client for it and delivers the client by a signed webhook (`app.installed`), and tells of
//! its removal (`app.uninstalled`). `signature` authenticates a delivery on its raw bytes
//! (Standard Webhooks), `payload` reads it only after, `lifecycle` judges what it does to the
//! organization's installations (no forged, replayed, duplicated, late or reordered delivery
//! can install, resurrect or break one), `store` applies it once, in one transaction, and serves
//! the installations' clients to the client registry; `purge` makes what an uninstalled
//! installation left behind unusable, then deletes it.

pub mod lifecycle;
pub mod payload;
pub mod purge;
pub mod signature;
pub mod store;

pub use purge::Purger;
pub use store::{InstallationError, InstallationRow, InstallationStore, Receipt};
