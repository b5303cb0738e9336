//! OAuth tokens as secret newtypes: below both the OAuth client that receives them and the
//! vault that seals them, so neither has to import the other for them.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// An OAuth access token.
///
/// # Security
/// Redacted in `Debug`, no `Display`, never `Serialize`: it cannot reach a log or the browser
/// by accident. Exposed only to build the `Authorization` header.
#[derive(Clone)]
pub struct AccessToken(SecretString);

/// An OAuth refresh token. Same guarantees as [`AccessToken`].
#[derive(Clone)]
pub struct RefreshToken(SecretString);

impl AccessToken {
    pub fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl RefreshToken {
    pub fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// An OpenID Connect ID token as received (a signed JWT: who signed in, for which client).
/// Same guarantees as [`AccessToken`]: it proves a sign-in to anyone who holds it while it is
/// valid, so it goes from the token response to the verifier and nowhere else.
#[derive(Clone)]
pub struct RawIdToken(SecretString);

impl RawIdToken {
    pub fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for RawIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawIdToken([redacted])")
    }
}

/// What a token endpoint returned, already out of the oauth2 crate's `Serialize` types.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    /// `None` when the server sent no `expires_in`.
    pub expires_in: Option<std::time::Duration>,
    /// `None` when the server sent no `scope` (RFC 6749 §5.1: then it is the requested set).
    pub scopes: Option<Vec<String>>,
    /// The `client_id` of the client the tokens were issued to.
    pub client_id: String,
    /// Qentrah's `organization_id` field, when it is a usable one.
    pub organization_id: Option<crate::server::ids::OrganizationId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let access = AccessToken::new("qat_very_secret".to_owned());
        let refresh = RefreshToken::new("qrt_very_secret".to_owned());
        let id_token = RawIdToken::new("eyJ.very_secret.sig".to_owned());
        let printed = format!("{access:?} {refresh:?} {id_token:?}");
        assert!(!printed.contains("very_secret"));
        let set = TokenSet {
            access_token: access,
            refresh_token: Some(refresh),
            expires_in: None,
            scopes: None,
            client_id: "partners_client".to_owned(),
            organization_id: crate::server::ids::OrganizationId::parse("org_1"),
        };
        assert!(!format!("{set:?}").contains("very_secret"));
    }
}
