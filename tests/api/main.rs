//! Integration tests: the real app, started in-process on port 0 (one test binary, so the app
//! is linked once).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use qentrah_test_support::database;

mod bad_input;
mod cluster;
mod config_errors;
mod connect;
mod durability;
mod hardening;
mod harness;
mod health;
mod leptos_config;
mod marketplace;
mod pages;
mod product;
mod providers;
mod security;
mod sign_in;
mod webhooks;
