//! Components and pages: rendered on the server; the few interactive ones are islands
//! (`#[island]`), the only code the browser runs. Nothing here may import `crate::server`:
//! whatever a page shows reaches it as a view model.

/// Dates and scope descriptions.
pub mod format;
/// The header and other chrome shared by every page.
pub mod layout;
/// One component per route.
pub mod pages;
/// The filterable, sortable list of clients or properties.
pub mod records;
/// The signed-in user (`AUTH_MODE=sso`), as the server rendering the page knows them.
pub mod session;
/// Sign-in's pages: `/login` and `/admin/users`.
pub mod sign_in;
/// A screen for every connection and Workspace state.
pub mod states;

use leptos::prelude::*;

/// Marks `<body data-hydrated="true">` once the islands are hydrated. Effects run only in the
/// browser, so the attribute appears exactly then: tests wait for it instead of guessing.
#[island]
pub fn HydrationMarker() -> impl IntoView {
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}

/// Inside an island: `false` on the server and during hydration, `true` once it is interactive:
/// controls that need JavaScript stay hidden until they can respond.
pub fn use_hydrated() -> ReadSignal<bool> {
    let (hydrated, set_hydrated) = signal(false);
    // Effects run only in the browser, after hydration.
    Effect::new(move |_| set_hydrated.set(true));
    hydrated
}
