//! Marketplace installs: a Workspace installs this app for an organization, creates an OAuth
//! client for it and delivers the client by a signed webhook (`app.installed`), and tells of
//! its removal (`app.uninstalled`). `signature` authenticates a delivery on its raw bytes
//! (Standard Webhooks), `payload` reads it only after, `lifecycle` judges what it does to the
//! organization's installations (no forged, replayed, duplicated, late or reordered delivery
//! can install, resurrect or break one), `store` applies it once, in one transaction.

pub mod lifecycle;
pub mod payload;
pub mod signature;
pub mod store;

pub use store::{InstallationError, InstallationRow, InstallationStore, Receipt};
