//! Who is asking. Today an anonymous browser with its session; a signed-in user and API keys
//! join here.

/// Session cookie settings, the session store, and the typed `BrowserSession`.
pub mod session;
/// Where a sign-in lands (`target_link_uri`): only inside this app.
pub mod target;
