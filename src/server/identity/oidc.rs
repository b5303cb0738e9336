//! Sign-in with OpenID Connect: the Workspace's discovery document and keys (cached; a failed
//! fetch keeps the last good copy), ID-token validation (OIDC Core §3.1.3.7) through the
//! openidconnect crate, and UserInfo (§5.3) with its subject check (§5.3.2).

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, ClientId, IdToken, IdTokenVerifier, IssuerUrl,
    JsonWebKeySetUrl, Nonce, SignatureVerificationError,
};
use serde::{Deserialize, Serialize};

use crate::server::credentials::{AccessToken, RawIdToken};
use crate::server::ids::OrganizationId;
use crate::server::platform::clock::SharedClock;
use crate::server::platform::http::read_capped;

/// How long a discovery document (and its keys) is used before it is fetched again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` makes the keys be fetched again at most this often: a flood of tokens with
/// made-up key ids must not become a flood of requests to the Workspace, and a sign-in right
/// after a key rotation waits for at most this.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How far in the future an `iat` may be (clocks differ a little; OIDC Core §3.1.3.7 step 10
/// leaves the range to the client).
pub const IAT_LEEWAY: Duration = Duration::from_secs(60);
/// After a failed discovery fetch, the last good copy is used this long before another try.
pub const DISCOVERY_RETRY: Duration = Duration::from_secs(60);
/// UserInfo answers larger than this are refused rather than read.
const MAX_USERINFO_BYTES: usize = 16 * 1024;

/// The one claim beyond the standard ones: the Workspace organization the ID token is for, a
/// string or (from servers with integer keys) a number.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct OrganizationClaim {
    #[serde(default)]
    organization_id: Option<serde_json::Value>,
}

impl AdditionalClaims for OrganizationClaim {}

type SignInIdToken = IdToken<
    OrganizationClaim,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// Why an ID token was refused (each is a forgery, a mix-up or a replay, never "try again").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenRefusal {
    #[error("the ID token is not a well-formed signed JWT with the required claims")]
    Malformed,
    #[error("the ID token's signature or algorithm is not acceptable")]
    Signature,
    #[error("the ID token is signed with a key the Workspace does not publish")]
    UnknownKey,
    #[error("the ID token names another issuer")]
    Issuer,
    #[error("the ID token is not for this installation's client")]
    Audience,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token was issued in the future")]
    IssuedInFuture,
    #[error("the ID token's nonce is not this sign-in's")]
    Nonce,
    #[error("the ID token names no subject")]
    Subject,
    #[error("the ID token is for another organization")]
    Organization,
}

/// What a valid ID token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdToken {
    pub subject: String,
}

fn organization_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) if number.is_u64() || number.is_i64() => {
            Some(number.to_string())
        }
        _ => None,
    }
}

/// Validates `raw` against `keys` (OIDC Core §3.1.3.7): signature by an allowed asymmetric
/// algorithm (RS256, ES256; never `none`, never HMAC: the verifier holds no shared secret, so
/// a token "signed" with the public key as an HMAC key is refused), `iss`, `aud` containing
/// `client_id` (with several audiences, `azp` must be present and equal it; other audiences
/// are not trusted), `exp`, `iat` not in the future, the nonce, a non-empty `sub`, and an
/// `organization_id`, when present, equal to `organization`.
pub fn verify_id_token(
    raw: &RawIdToken,
    keys: &CoreJsonWebKeySet,
    issuer: &IssuerUrl,
    client_id: &str,
    nonce: &Nonce,
    organization: &OrganizationId,
    now: SystemTime,
) -> Result<VerifiedIdToken, IdTokenRefusal> {
    let token = SignInIdToken::from_str(raw.expose()).map_err(|_| IdTokenRefusal::Malformed)?;
    let now_utc: chrono::DateTime<chrono::Utc> = now.into();
    let latest_iat: chrono::DateTime<chrono::Utc> = (now + IAT_LEEWAY).into();
    let verifier = IdTokenVerifier::new_public_client(
        ClientId::new(client_id.to_owned()),
        issuer.clone(),
        keys.clone(),
    )
    .set_allowed_algs([
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    ])
    .set_time_fn(move || now_utc)
    // Extra audiences are judged below, where OIDC Core §3.1.3.7 steps 4–5 are: several are
    // accepted only with `azp` naming us (the crate would refuse every extra one outright).
    .set_other_audience_verifier_fn(|_| true)
    .set_issue_time_verifier_fn(move |iat| {
        if iat > latest_iat {
            Err("issued in the future".to_owned())
        } else {
            Ok(())
        }
    });
    let claims = token
        .claims(&verifier, nonce)
        .map_err(|error| match error {
            ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            ) => IdTokenRefusal::UnknownKey,
            ClaimsVerificationError::SignatureVerification(_)
            | ClaimsVerificationError::Unsupported(_) => IdTokenRefusal::Signature,
            ClaimsVerificationError::InvalidIssuer(_) => IdTokenRefusal::Issuer,
            ClaimsVerificationError::InvalidAudience(_) => IdTokenRefusal::Audience,
            ClaimsVerificationError::Expired(detail) if detail.contains("future") => {
                IdTokenRefusal::IssuedInFuture
            }
            ClaimsVerificationError::Expired(_) => IdTokenRefusal::Expired,
            ClaimsVerificationError::InvalidNonce(_) => IdTokenRefusal::Nonce,
            ClaimsVerificationError::InvalidSubject(_) => IdTokenRefusal::Subject,
            _ => IdTokenRefusal::Malformed,
        })?;
    // OIDC Core §3.1.3.7 steps 4–5, which the crate leaves to the client: with several
    // audiences the authorized party must be named, and be us.
    let azp = claims.authorized_party().map(|azp| azp.as_str());
    if (claims.audiences().len() > 1 || azp.is_some()) && azp != Some(client_id) {
        return Err(IdTokenRefusal::Audience);
    }
    let subject = claims.subject().as_str();
    if subject.is_empty() {
        return Err(IdTokenRefusal::Subject);
    }
    if let Some(claimed) = &claims.additional_claims().organization_id {
        if organization_text(claimed).as_deref() != Some(organization.as_str()) {
            return Err(IdTokenRefusal::Organization);
        }
    }
    Ok(VerifiedIdToken {
        subject: subject.to_owned(),
    })
}

/// What UserInfo says about the signed-in user (OIDC Core §5.3.2, plus Qentrah's organization
/// and role). Text only: `picture` and the like are never fetched.
#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    organization_id: Option<serde_json::Value>,
    #[serde(default)]
    pub organization_name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

impl UserInfo {
    pub fn organization_id(&self) -> Option<String> {
        self.organization_id.as_ref().and_then(organization_text)
    }
}

/// Why UserInfo gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserInfoError {
    /// 401 or 403: the token no longer speaks for a member (revoked, disabled, removed).
    #[error("UserInfo refused the token ({status})")]
    Refused { status: u16 },
    /// The Workspace is down, slow or answered unreadably: a retryable state.
    #[error("UserInfo is unavailable: {detail}")]
    Unavailable { detail: String },
}

/// Why discovery gave nothing usable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the Workspace's OpenID configuration could not be read: {detail}")]
    Unavailable { detail: String },
}

/// A discovery document and its keys, as last fetched.
#[derive(Debug)]
struct Discovered {
    jwks_uri: JsonWebKeySetUrl,
    userinfo: Option<url::Url>,
    keys: CoreJsonWebKeySet,
    fetched_at: SystemTime,
    keys_fetched_at: SystemTime,
}

/// The Workspace as an OpenID provider: discovery and keys cached per process, shared by every
/// request.
#[derive(Clone)]
pub struct OpenIdProvider(Arc<ProviderParts>);

struct ProviderParts {
    issuer: IssuerUrl,
    http: reqwest::Client,
    clock: SharedClock,
    known: RwLock<Option<Arc<Discovered>>>,
    /// When the last discovery fetch failed (a copy is kept: it is not tried again at once).
    failed_at: RwLock<Option<SystemTime>>,
    /// One fetch at a time: concurrent sign-ins wait for it instead of each fetching.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OpenIdProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenIdProvider")
            .field("issuer", &self.0.issuer.as_str())
            .finish()
    }
}

/// The verifier's answer when the keys could not be had at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignInCheckError {
    #[error(transparent)]
    Refused(#[from] IdTokenRefusal),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
}

impl OpenIdProvider {
    /// `issuer` is `QENTRAH_WORKSPACE_API_URL` exactly: discovery must name it exactly too
    /// (OIDC Discovery 1.0 §4.3).
    pub fn new(issuer: &str, http: reqwest::Client, clock: SharedClock) -> Option<Self> {
        Some(Self(Arc::new(ProviderParts {
            issuer: IssuerUrl::new(issuer.to_owned()).ok()?,
            http,
            clock,
            known: RwLock::new(None),
            failed_at: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })))
    }

    pub fn issuer(&self) -> &str {
        self.0.issuer.as_str()
    }

    fn cached(&self) -> Option<Arc<Discovered>> {
        self.0
            .known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn store(&self, discovered: Discovered) -> Arc<Discovered> {
        let discovered = Arc::new(discovered);
        *self
            .0
            .known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(discovered.clone());
        discovered
    }

    /// The discovery document and keys: cached for [`DISCOVERY_TTL`]; when a fetch fails, the
    /// last good copy goes on being used.
    async fn discovered(&self) -> Result<Arc<Discovered>, DiscoveryError> {
        let now = self.0.clock.now();
        let failed_recently = self
            .0
            .failed_at
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| {
                now.duration_since(at)
                    .is_ok_and(|since| since < DISCOVERY_RETRY)
            });
        let fresh = |d: &Arc<Discovered>| {
            failed_recently
                || now
                    .duration_since(d.fetched_at)
                    .is_ok_and(|age| age < DISCOVERY_TTL)
        };
        if let Some(known) = self.cached().filter(fresh) {
            return Ok(known);
        }
        let _one_at_a_time = self.0.fetching.lock().await;
        if let Some(known) = self.cached().filter(fresh) {
            return Ok(known);
        }
        match CoreProviderMetadata::discover_async(self.0.issuer.clone(), &self.0.http).await {
            Ok(metadata) => {
                let now = self.0.clock.now();
                *self
                    .0
                    .failed_at
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                Ok(self.store(Discovered {
                    jwks_uri: metadata.jwks_uri().clone(),
                    userinfo: metadata.userinfo_endpoint().map(|u| u.url().clone()),
                    keys: metadata.jwks().clone(),
                    fetched_at: now,
                    keys_fetched_at: now,
                }))
            }
            Err(error) => {
                let detail = crate::server::Causes(&error).to_string();
                *self
                    .0
                    .failed_at
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(self.0.clock.now());
                match self.cached() {
                    Some(known) => {
                        tracing::warn!(%detail, "OpenID discovery failed; using the last good copy");
                        Ok(known)
                    }
                    None => Err(DiscoveryError::Unavailable { detail }),
                }
            }
        }
    }

    /// The keys fetched again, once per [`JWKS_REFETCH_INTERVAL`] at most (a rotated key).
    async fn refetch_keys(&self, seen: &Arc<Discovered>) -> Option<Arc<Discovered>> {
        let _one_at_a_time = self.0.fetching.lock().await;
        let current = self.cached()?;
        if current.keys_fetched_at != seen.keys_fetched_at {
            return Some(current);
        }
        let now = self.0.clock.now();
        if now
            .duration_since(current.keys_fetched_at)
            .is_ok_and(|since| since < JWKS_REFETCH_INTERVAL)
        {
            return None;
        }
        match CoreJsonWebKeySet::fetch_async(&current.jwks_uri, &self.0.http).await {
            Ok(keys) => Some(self.store(Discovered {
                jwks_uri: current.jwks_uri.clone(),
                userinfo: current.userinfo.clone(),
                keys,
                fetched_at: current.fetched_at,
                keys_fetched_at: now,
            })),
            Err(error) => {
                tracing::warn!(error = %crate::server::Causes(&error), "could not fetch the Workspace's keys again");
                None
            }
        }
    }

    /// Validates a sign-in's ID token with the Workspace's keys, fetching them once more if
    /// it names a key not seen yet (key rotation).
    pub async fn check_id_token(
        &self,
        raw: &RawIdToken,
        client_id: &str,
        nonce: &Nonce,
        organization: &OrganizationId,
    ) -> Result<VerifiedIdToken, SignInCheckError> {
        let discovered = self.discovered().await?;
        let verify = |keys: &CoreJsonWebKeySet| {
            verify_id_token(
                raw,
                keys,
                &self.0.issuer,
                client_id,
                nonce,
                organization,
                self.0.clock.now(),
            )
        };
        match verify(&discovered.keys) {
            Err(IdTokenRefusal::UnknownKey) => match self.refetch_keys(&discovered).await {
                Some(refetched) => Ok(verify(&refetched.keys)?),
                None => Err(IdTokenRefusal::UnknownKey.into()),
            },
            other => Ok(other?),
        }
    }

    /// UserInfo with the sign-in grant's access token (OIDC Core §5.3.1).
    pub async fn userinfo(&self, access_token: &AccessToken) -> Result<UserInfo, UserInfoError> {
        let unavailable = |detail: String| UserInfoError::Unavailable { detail };
        let discovered = self
            .discovered()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let endpoint = discovered.userinfo.clone().ok_or_else(|| {
            unavailable("the discovery document names no userinfo_endpoint".to_owned())
        })?;
        let response = self
            .0
            .http
            .get(endpoint)
            .bearer_auth(access_token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(UserInfoError::Refused {
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(unavailable(format!("UserInfo answered {status}")));
        }
        let body = read_capped(response, MAX_USERINFO_BYTES)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        serde_json::from_slice(&body)
            .map_err(|_| unavailable("UserInfo is not the expected JSON".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qentrah_dev_workspace::identity::{
        seeded_users, IdTokenClaims, IdTokenFault, Identity, SigningAlg,
    };

    const ISSUER: &str = "http://127.0.0.1:3000";
    const NOW: u64 = 1_800_000_000;

    fn claims() -> IdTokenClaims {
        IdTokenClaims {
            issuer: ISSUER.to_owned(),
            client_id: "app_acme".to_owned(),
            user: seeded_users().remove(0),
            organization_id: "org_acme".to_owned(),
            organization_name: "Acme".to_owned(),
            nonce: Some("nonce-1".to_owned()),
            now: NOW,
            auth_time: NOW,
            scopes: vec!["openid".into(), "organization".into()],
            other_client_id: Some("app_harbor".to_owned()),
            extra_audience: None,
        }
    }

    fn check(
        identity: &mut Identity,
        fault: Option<IdTokenFault>,
    ) -> Result<VerifiedIdToken, IdTokenRefusal> {
        check_claims(identity, fault, &claims())
    }

    fn check_claims(
        identity: &mut Identity,
        fault: Option<IdTokenFault>,
        claims: &IdTokenClaims,
    ) -> Result<VerifiedIdToken, IdTokenRefusal> {
        if let Some(fault) = fault {
            identity.id_token_faults.push_back(fault);
        }
        let raw = RawIdToken::new(identity.id_token(claims).unwrap());
        let keys: CoreJsonWebKeySet =
            serde_json::from_value(serde_json::json!({ "keys": identity.published_keys() }))
                .unwrap();
        verify_id_token(
            &raw,
            &keys,
            &IssuerUrl::new(ISSUER.to_owned()).unwrap(),
            "app_acme",
            &Nonce::new("nonce-1".to_owned()),
            &OrganizationId::parse("org_acme").unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW + 10),
        )
    }

    #[test]
    fn a_good_id_token_gives_its_subject_rs256_and_es256() {
        let mut identity = Identity::default();
        for alg in [SigningAlg::RS256, SigningAlg::ES256] {
            identity.rotate_to(alg).unwrap();
            assert_eq!(
                check(&mut identity, None),
                Ok(VerifiedIdToken {
                    subject: "usr_ada".to_owned()
                }),
                "{alg:?}"
            );
        }
    }

    /// One case per fault the dev Workspace can put into an ID token (OIDC Core §3.1.3.7).
    #[test]
    fn every_faulty_id_token_is_refused_for_its_reason() {
        use IdTokenFault as F;
        use IdTokenRefusal as R;
        let table = [
            (F::WrongIss, R::Issuer),
            (F::WrongAud, R::Audience),
            (F::MissingAud, R::Audience),
            (F::OtherClientAud, R::Audience),
            (F::SeveralAudWithoutAzp, R::Audience),
            (F::WrongNonce, R::Nonce),
            (F::MissingNonce, R::Nonce),
            (F::AlgNone, R::Signature),
            (F::Hs256WithPublicKey, R::Signature),
            (F::BadSignature, R::Signature),
            (F::Expired, R::Expired),
            (F::IatInFuture, R::IssuedInFuture),
            (F::MissingSub, R::Malformed),
            (F::UnknownKid, R::UnknownKey),
            (F::OtherOrganization, R::Organization),
        ];
        assert_eq!(table.len(), F::ALL.len(), "a fault without a case");
        let mut identity = Identity::default();
        let mut wrong: Vec<String> = Vec::new();
        for alg in [SigningAlg::RS256, SigningAlg::ES256] {
            identity.rotate_to(alg).unwrap();
            wrong.extend(table.iter().filter_map(|&(fault, refusal)| {
                let got = check(&mut identity, Some(fault));
                (got != Err(refusal))
                    .then(|| format!("{alg:?} {fault:?}: {got:?}, not {refusal:?}"))
            }));
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn several_audiences_pass_only_with_azp_naming_this_client() {
        let mut identity = Identity::default();
        let with_azp = IdTokenClaims {
            extra_audience: Some("https://api.qentrah.test".to_owned()),
            ..claims()
        };
        assert!(check_claims(&mut identity, None, &with_azp).is_ok());
        assert_eq!(
            check(&mut identity, Some(IdTokenFault::SeveralAudWithoutAzp)),
            Err(IdTokenRefusal::Audience)
        );
    }

    #[test]
    fn userinfo_reads_a_numeric_organization_as_text() {
        let info: UserInfo = serde_json::from_value(serde_json::json!({
            "sub": "u", "organization_id": 1001, "role": "admin", "picture": "https://x/p.png"
        }))
        .unwrap();
        assert_eq!(info.organization_id().as_deref(), Some("1001"));
    }
}
