//! Components and pages: isomorphic, rendered on the server and hydrated in the browser.
//! Nothing here may import `crate::server`: whatever a page shows reaches it as a view model.

/// Dates and scope descriptions.
pub mod format;
/// The header and other chrome shared by every page.
pub mod layout;
/// One component per route.
pub mod pages;
/// The filterable, sortable list of clients or properties.
pub mod records;
/// A screen for every connection and Workspace state.
pub mod states;

use leptos::prelude::*;

/// `false` on the server and during hydration, `true` once the page is interactive: controls
/// that need JavaScript stay hidden until they can respond.
pub fn use_hydrated() -> ReadSignal<bool> {
    let (hydrated, set_hydrated) = signal(false);
    // Effects run only in the browser, after hydration.
    Effect::new(move |_| set_hydrated.set(true));
    hydrated
}
