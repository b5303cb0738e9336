//! The network-free half of the flow: generating `state` and the PKCE pair, building the
//! authorization URL, and judging a callback. Everything here is a pure function of its inputs
//! (time included), so every rule has a unit test.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

use super::provider::ProviderConfig;

/// How long a flow may take from start to callback.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(600);

/// 256 random bits, base64url without padding (43 characters).
fn random_b64() -> Result<String, FlowError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| FlowError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The `state` parameter: 256 random bits binding the callback to this flow (RFC 9700 §4.7.1).
#[derive(Clone)]
pub struct State(String);

impl State {
    pub fn generate() -> Result<Self, FlowError> {
        random_b64().map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the database keeps instead of the state itself.
    pub fn digest(&self) -> [u8; 32] {
        digest(&self.0)
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("State([redacted])")
    }
}

/// SHA-256 of a value, for lookups that must not store the value.
pub fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The PKCE code verifier (RFC 7636 §4.1): 43 characters carrying 256 random bits.
///
/// # Security
/// Redacted in `Debug`, never serialized; sealed before it is stored.
#[derive(Clone)]
pub struct PkceVerifier(SecretString);

impl PkceVerifier {
    pub fn generate() -> Result<Self, FlowError> {
        random_b64().map(|v| Self(SecretString::from(v)))
    }

    pub fn from_stored(value: String) -> Self {
        Self(SecretString::from(value))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The S256 challenge: `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.expose().as_bytes()))
    }
}

impl std::fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PkceVerifier([redacted])")
    }
}

/// Why a flow could not start or a callback was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("the random number generator failed")]
    Random,
}

/// The authorization request URL, with exactly the brief's parameters.
pub fn authorization_url(
    provider: &ProviderConfig,
    client_id: &str,
    state: &State,
    verifier: &PkceVerifier,
) -> Url {
    let mut url = provider.authorize_url.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", provider.redirect_uri.as_str())
        .append_pair("scope", &provider.scopes.join(" "));
    if let Some(resource) = &provider.resource {
        url.query_pairs_mut().append_pair("resource", resource);
    }
    url.query_pairs_mut()
        .append_pair("state", state.as_str())
        .append_pair("code_challenge", &verifier.challenge())
        .append_pair("code_challenge_method", "S256");
    url
}

/// A `return_to` we will honour: a same-origin relative path, nothing that a browser could
/// read as another origin (open redirects, RFC 9700 §4.11).
pub fn safe_return_to(raw: Option<&str>) -> String {
    let Some(path) = raw else {
        return "/".to_owned();
    };
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.contains(['\\', '\r', '\n', '\t'])
        && !path.chars().any(char::is_control)
        && path.len() <= 512
        && !path.starts_with("/api/auth/");
    if ok {
        path.to_owned()
    } else {
        "/".to_owned()
    }
}

/// The callback's query, as received (extra parameters such as `session_state` are ignored).
#[derive(Debug, Default, Clone)]
pub struct CallbackParams {
    pub code: Option<SecretString>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// A parameter we rely on appeared more than once: refuse rather than pick one.
    pub repeated: bool,
}

impl CallbackParams {
    /// Parses a raw query string. Never fails: what is missing is judged by [`judge_callback`].
    pub fn parse(query: &str) -> Self {
        let mut params = CallbackParams::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "state" => &mut params.state,
                "iss" => &mut params.iss,
                "error" => &mut params.error,
                "error_description" => &mut params.error_description,
                "code" => {
                    if params.code.is_some() {
                        params.repeated = true;
                    }
                    params.code = Some(SecretString::from(value.into_owned()));
                    continue;
                }
                _ => continue,
            };
            if slot.is_some() {
                params.repeated = true;
            }
            *slot = Some(value.into_owned());
        }
        params
    }
}

/// Why a callback is refused before any token request. Each maps to a page that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackRefusal {
    /// The Workspace (or the person) answered with `error=`.
    Denied { error: String },
    /// No state, or none of this browser's flows has it (forged, foreign, replayed or expired).
    UnknownState,
    /// `iss` names another issuer (RFC 9207 §2.4: a mix-up attack).
    WrongIssuer,
    /// No `code` and no `error`, or a repeated parameter.
    Malformed,
}

/// What the callback may do next, decided before any token request.
#[derive(Debug)]
pub enum CallbackStep {
    /// Look up this state's flow; then exchange `code`.
    Exchange {
        state_digest: [u8; 32],
        code: SecretString,
    },
    Refuse(CallbackRefusal),
}

/// Judges a callback's parameters (state lookup comes next, in `flows`).
///
/// `iss_required`: the provider's metadata says it always sends `iss` (RFC 9207 §3).
pub fn judge_callback(
    params: &CallbackParams,
    expected_issuer: &str,
    iss_required: bool,
) -> CallbackStep {
    if params.repeated {
        return CallbackStep::Refuse(CallbackRefusal::Malformed);
    }
    // RFC 9207 §2.4: `iss` must be the issuer we sent the person to, even on an error
    // response, compared as simple strings (RFC 3986 §6.2.1; no trailing-slash folding: to a
    // provider, `https://a/` and `https://a` may be two issuers); and from a provider that
    // always sends it, a response without it is refused.
    match &params.iss {
        Some(iss) if iss != expected_issuer => {
            return CallbackStep::Refuse(CallbackRefusal::WrongIssuer);
        }
        None if iss_required => {
            return CallbackStep::Refuse(CallbackRefusal::WrongIssuer);
        }
        _ => {}
    }
    if let Some(error) = &params.error {
        let error = if error
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && error.len() <= 64
        {
            error.clone()
        } else {
            "invalid_response".to_owned()
        };
        return CallbackStep::Refuse(CallbackRefusal::Denied { error });
    }
    let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) else {
        return CallbackStep::Refuse(CallbackRefusal::UnknownState);
    };
    let Some(code) = params
        .code
        .clone()
        .filter(|c| !c.expose_secret().is_empty())
    else {
        return CallbackStep::Refuse(CallbackRefusal::Malformed);
    };
    CallbackStep::Exchange {
        state_digest: digest(state),
        code,
    }
}

/// Whether a stored flow is still usable at `now`.
pub fn flow_is_live(expires_at: SystemTime, now: SystemTime) -> bool {
    now < expires_at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> ProviderConfig {
        ProviderConfig {
            name: crate::server::ids::ProviderId::qentrah(),
            issuer: "http://localhost:3000".into(),
            metadata_url: Url::parse(
                "http://localhost:3000/.well-known/oauth-authorization-server",
            )
            .unwrap(),
            authorize_url: Url::parse("http://localhost:3000/oauth/authorize").unwrap(),
            token_url: Url::parse("http://localhost:3000/oauth/token").unwrap(),
            revocation_url: Url::parse("http://localhost:3000/oauth/revoke").unwrap(),
            client_authentication:
                crate::server::platform::config::ClientAuthentication::ClientSecretPost,
            iss: crate::server::platform::config::IssPolicy::FromMetadata,
            resource: Some("http://localhost:3000/api/v1/partner".into()),
            tenant: super::super::provider::TenantSource::TokenField("organization_id".into()),
            redirect_uri: Url::parse("http://localhost:3001/api/auth/qentrah/callback").unwrap(),
            scopes: vec!["organization:read".into(), "offline_access".into()],
            start_path: "/api/auth/qentrah/start".into(),
            callback_path: "/api/auth/qentrah/callback".into(),
        }
    }

    #[test]
    fn state_and_verifier_carry_256_bits_and_differ_every_time() {
        let a = State::generate().unwrap();
        let b = State::generate().unwrap();
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 43);
        let v = PkceVerifier::generate().unwrap();
        assert!((43..=128).contains(&v.expose().len()));
        assert!(v
            .expose()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(v.expose(), PkceVerifier::generate().unwrap().expose());
        assert!(!format!("{a:?}{v:?}").contains(v.expose()));
    }

    #[test]
    fn s256_challenge_matches_rfc_7636_appendix_b() {
        let v = PkceVerifier::from_stored("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(v.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn authorization_url_has_exactly_the_briefs_parameters() {
        let state = State::generate().unwrap();
        let verifier = PkceVerifier::generate().unwrap();
        let url = authorization_url(&provider(), "client_1", &state, &verifier);
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "resource",
                "state",
                "code_challenge",
                "code_challenge_method"
            ]
        );
        let get = |k: &str| params.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("code_challenge_method"), "S256");
        assert_eq!(get("scope"), "organization:read offline_access");
        assert_eq!(get("resource"), "http://localhost:3000/api/v1/partner");
        assert_eq!(get("code_challenge"), verifier.challenge());
        assert!(!url.as_str().contains(verifier.expose()));
    }

    #[test]
    fn a_provider_without_a_resource_indicator_is_sent_none() {
        let provider = ProviderConfig {
            resource: None,
            ..provider()
        };
        let state = State::generate().unwrap();
        let verifier = PkceVerifier::generate().unwrap();
        let url = authorization_url(&provider, "client_1", &state, &verifier);
        assert!(
            url.query_pairs().all(|(name, _)| name != "resource"),
            "{url}"
        );
        assert_eq!(provider.resource_key(), "");
    }

    #[test]
    fn return_to_accepts_only_same_origin_paths() {
        assert_eq!(safe_return_to(Some("/clients?page=2")), "/clients?page=2");
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "javascript:alert(1)",
            "clients",
            "/x\r\nSet-Cookie: a=b",
            "/api/auth/qentrah/start",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(None), "/");
    }

    /// Judges `query` from a provider that always sends `iss`; `query` is given one unless
    /// it names one itself (the cases without `iss` are judged directly).
    fn judge(query: &str) -> CallbackStep {
        let query = if query.contains("iss=") {
            query.to_owned()
        } else {
            format!("{query}&iss=http%3A%2F%2Flocalhost%3A3000")
        };
        judge_callback(
            &CallbackParams::parse(&query),
            "http://localhost:3000",
            true,
        )
    }

    #[test]
    fn iss_is_compared_as_a_simple_string() {
        let judge = |iss: &str| {
            let query = format!(
                "code=c&state=s&iss={}",
                url::form_urlencoded::byte_serialize(iss.as_bytes()).collect::<String>()
            );
            judge_callback(
                &CallbackParams::parse(&query),
                "http://localhost:3000",
                true,
            )
        };
        assert!(matches!(
            judge("http://localhost:3000"),
            CallbackStep::Exchange { .. }
        ));
        for other in [
            "http://localhost:3000/",
            "http://localhost:3000//",
            "HTTP://localhost:3000",
        ] {
            assert!(
                matches!(
                    judge(other),
                    CallbackStep::Refuse(CallbackRefusal::WrongIssuer)
                ),
                "{other}"
            );
        }
    }

    #[test]
    fn callback_judgement() {
        assert!(matches!(
            judge("code=c&state=s&iss=http%3A%2F%2Flocalhost%3A3000&session_state=x"),
            CallbackStep::Exchange { .. }
        ));
        // RFC 9207 §2.4: without `iss` from a provider that always sends it, refused; a
        // provider that does not send it is judged on the rest.
        let without_iss = CallbackParams::parse("code=c&state=s");
        assert!(matches!(
            judge_callback(&without_iss, "http://localhost:3000", true),
            CallbackStep::Refuse(CallbackRefusal::WrongIssuer)
        ));
        assert!(matches!(
            judge_callback(&without_iss, "http://localhost:3000", false),
            CallbackStep::Exchange { .. }
        ));
        assert!(matches!(
            judge("code=c&state=s&iss=https%3A%2F%2Fevil.example"),
            CallbackStep::Refuse(CallbackRefusal::WrongIssuer)
        ));
        assert!(matches!(
            judge("error=access_denied&state=s"),
            CallbackStep::Refuse(CallbackRefusal::Denied { ref error }) if error == "access_denied"
        ));
        assert!(matches!(
            judge("error=%3Cscript%3E&state=s"),
            CallbackStep::Refuse(CallbackRefusal::Denied { ref error }) if error == "invalid_response"
        ));
        assert!(matches!(
            judge("code=c"),
            CallbackStep::Refuse(CallbackRefusal::UnknownState)
        ));
        assert!(matches!(
            judge("state=s"),
            CallbackStep::Refuse(CallbackRefusal::Malformed)
        ));
        assert!(matches!(
            judge("code=a&code=b&state=s"),
            CallbackStep::Refuse(CallbackRefusal::Malformed)
        ));
        assert!(matches!(
            judge("code=a&state=s&state=t"),
            CallbackStep::Refuse(CallbackRefusal::Malformed)
        ));
    }
}
