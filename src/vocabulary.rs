//! The words the product and its providers share, spelled once: the route paths of a provider's
//! flow, and Qentrah's name and scopes with what each lets the app do. The server's Qentrah
//! profile is built from these, and the pages link and describe with them (they are not
//! server-only: the pages are compiled for the browser too).

/// Qentrah's name: the `provider` of its connections and the segment of its routes.
pub const QENTRAH: &str = "qentrah";

/// The partner API's scopes (the integration brief), each with what it lets the app do in the
/// words the pages use. Requested by default, all of them (`QENTRAH_SCOPES` narrows the set).
pub const QENTRAH_SCOPES: &[(&str, &str)] = &[
    ("organization:read", "read your organization's profile"),
    ("client:read", "read your clients"),
    ("property:read", "read your properties"),
    ("offline_access", "stay connected while you are away"),
];

/// Where a provider's flow starts: a plain link (`GET`) the person follows.
pub fn flow_start_path(provider: &str) -> String {
    format!("/api/auth/{provider}/start")
}

/// Where the provider sends the person back (the redirect URI's path).
pub fn flow_callback_path(provider: &str) -> String {
    format!("/api/auth/{provider}/callback")
}

/// What a scope lets the app do, in words.
pub fn describe_scope(scope: &str) -> &'static str {
    QENTRAH_SCOPES
        .iter()
        .find(|(name, _)| *name == scope)
        .map_or("an access this app does not describe", |(_, words)| words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qentrahs_paths_and_scopes() {
        assert_eq!(flow_start_path(QENTRAH), "/api/auth/qentrah/start");
        assert_eq!(flow_callback_path(QENTRAH), "/api/auth/qentrah/callback");
        assert_eq!(describe_scope("client:read"), "read your clients");
        assert_eq!(
            describe_scope("admin"),
            "an access this app does not describe"
        );
    }
}
