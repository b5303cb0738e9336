//! Qentrah Connect: a Leptos app (server-rendered, its interactive islands hydrated in the browser) that connects a
//! partner product to a customer's Qentrah Workspace. The server alone holds OAuth tokens; the
//! browser only ever sees view models.
//!
//! The crate is built twice: with `ssr` for the server binary and with `hydrate` for the wasm
//! bundle. Everything that may only exist on the server lives under [`server`], gated once.

/// Server functions and the browser-safe error they return.
pub mod api;
/// The application shell, the root component and its routes.
pub mod app;
/// View models: what the browser may know.
pub mod domain;
/// Components and pages. Never imports [`server`].
pub mod ui;
/// Route paths and Qentrah's name and scopes, spelled once for the server and the pages.
pub mod vocabulary;

/// Server-only code: configuration, state, database, sessions, routes.
#[cfg(feature = "ssr")]
pub mod server;

/// Browser entry point: hydrates the interactive islands of the server-rendered page (the rest
/// of the page is plain HTML and needs no code in the browser).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
