use crate::domain::SessionUser;

/// The signed-in Workspace user of the request being rendered (`AUTH_MODE=sso`), as the
/// sign-in guard found them; `None` in `connect` mode and on public pages. Read on the server
/// only: the header and pages that use it are not islands, so the browser never renders them.
pub fn session_user() -> Option<SessionUser> {
    #[cfg(feature = "ssr")]
    {
        leptos::prelude::use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<SessionUser>().cloned())
    }
    #[cfg(not(feature = "ssr"))]
    {
        None
    }
}

/// Whether this visitor may connect, reconnect or disconnect: anyone in `connect` mode (the
/// browser owns its connection), only admins when signed in.
pub fn can_manage_connection() -> bool {
    session_user().is_none_or(|user| user.is_admin())
}
