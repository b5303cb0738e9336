//! Who is asking: an anonymous browser with its session (`AUTH_MODE=connect`), or a Workspace
//! user signed in with OpenID Connect (`AUTH_MODE=sso`); API keys join here.

/// The Workspace as an OpenID provider: discovery, keys, ID tokens, UserInfo.
pub mod oidc;
/// Session cookie settings, the session store, and the typed `BrowserSession`.
pub mod session;
/// Where a sign-in lands (`target_link_uri`): only inside this app.
pub mod target;
/// Signed-in users, their memberships, and the sign-ins of sessions.
pub mod users;
