//! The emulator's whole state, in memory: registered clients, pending authorizations, codes,
//! grants and tokens, plus everything the control API can change.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::profile::Profile;
use crate::seed::{self, Organization};

/// How long an authorization code may wait before it is exchanged (RFC 6749 §4.1.2 advises
/// at most ten minutes; real servers use far less).
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long the consent page stays valid.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);

/// A client registered with this Workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRegistration {
    pub client_id: String,
    /// `None`: a public client (PKCE only). Some: confidential, must authenticate.
    pub client_secret: Option<String>,
    /// Exact redirect URIs (OAuth 2.1 §2.3.1: compared as strings, no patterns).
    pub redirect_uris: Vec<String>,
    /// Whether a Workspace admin has approved this app (the partner API refuses it otherwise).
    pub approved: bool,
    /// How a confidential client must authenticate: the method it is registered for (RFC 7591
    /// §2 `token_endpoint_auth_method`), held to as a real authorization server does.
    #[serde(default)]
    pub auth_method: ClientAuthMethod,
}

/// A confidential client's registered authentication method (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` as form fields: the integration brief's method.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with the form-urlencoded id and secret.
    ClientSecretBasic,
}

/// An endpoint whose behaviour the control API can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Authorize,
    Token,
    Revoke,
    Me,
    Clients,
    Properties,
    /// OpenID Connect's `/oauth/userinfo`.
    UserInfo,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Authorize,
        Endpoint::Token,
        Endpoint::Revoke,
        Endpoint::Me,
        Endpoint::Clients,
        Endpoint::Properties,
        Endpoint::UserInfo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Authorize => "authorize",
            Endpoint::Token => "token",
            Endpoint::Revoke => "revoke",
            Endpoint::Me => "me",
            Endpoint::Clients => "clients",
            Endpoint::Properties => "properties",
            Endpoint::UserInfo => "userinfo",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Which endpoint a request path belongs to, at a Workspace emulating `profile`.
    pub fn for_path(path: &str, profile: &Profile) -> Option<Self> {
        let partner_api = path
            .strip_prefix(profile.resource_path)
            .is_some_and(|rest| rest.starts_with('/'));
        match path {
            "/oauth/authorize" | "/oauth/authorize/decision" => Some(Endpoint::Authorize),
            "/oauth/token" => Some(Endpoint::Token),
            "/oauth/revoke" => Some(Endpoint::Revoke),
            "/oauth/userinfo" => Some(Endpoint::UserInfo),
            _ if partner_api => {
                if path.ends_with("/me") {
                    Some(Endpoint::Me)
                } else if path.ends_with("/clients") {
                    Some(Endpoint::Clients)
                } else if path.ends_with("/properties") {
                    Some(Endpoint::Properties)
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

/// A canned failure: the next response of an endpoint is this instead of the real one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub status: u16,
    /// The body as sent; `None` sends a malformed JSON body.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// Extra response headers (e.g. `Retry-After`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Deliberate flaws in token responses, to prove the client copes or refuses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenQuirks {
    #[serde(default)]
    pub omit_organization_id: bool,
    #[serde(default)]
    pub omit_refresh_token: bool,
    #[serde(default)]
    pub omit_expires_in: bool,
    /// `organization_id` as a JSON number when the id is all digits (servers backed by integer
    /// keys do this).
    #[serde(default)]
    pub numeric_organization_id: bool,
    /// `expires_in` as a JSON string (`"3600"`), as some servers send it.
    #[serde(default)]
    pub expires_in_as_string: bool,
    /// A `token_type` other than `Bearer` (RFC 6749 §7.1: the client must refuse a type it
    /// does not understand).
    #[serde(default)]
    pub token_type: Option<String>,
    /// The `organization_id` that refresh responses name instead of the grant's own.
    #[serde(default)]
    pub refresh_organization_id: Option<String>,
    /// Extra bytes of padding in every token response (a field named `padding`), to prove the
    /// client caps what it reads.
    #[serde(default)]
    pub padding_bytes: usize,
}

/// What `/.well-known/oauth-authorization-server` answers (RFC 8414).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataVariant {
    /// The issuer, and the promise to send `iss` on every authorization response.
    #[default]
    Standard,
    /// No `authorization_response_iss_parameter_supported` promise.
    NoIssPromise,
    /// An `issuer` that is not this Workspace's (RFC 8414 §3.3: the client must not use it).
    MismatchingIssuer,
    /// No metadata at all (404).
    NotFound,
}

/// What the emulator counts, so tests can assert what a client did and did not do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub authorize_requests: u64,
    pub codes_issued: u64,
    pub token_requests: u64,
    pub authorization_code_grants: u64,
    pub refresh_grants: u64,
    pub token_errors: u64,
    pub revocations: u64,
    pub partner_api_requests: u64,
    /// The most partner-API requests ever in flight at once (shows whether a client
    /// parallelises its reads).
    pub partner_api_peak_in_flight: u64,
    /// Distinct TCP connections partner-API requests arrived on (connection reuse shows as
    /// far fewer connections than requests).
    pub partner_api_connections: u64,
}

/// One request as received, with every secret value replaced by `[redacted]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Seconds since the Unix epoch, on the emulator's clock.
    pub at: u64,
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    /// The `Authorization` scheme only (`Basic`, `Bearer`), never the credentials.
    pub authorization: Option<String>,
    pub status: u16,
}

/// A consent page awaiting the person's decision.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    pub scopes: Vec<String>,
    pub resource: String,
    pub code_challenge: String,
    /// OpenID Connect's `nonce`, echoed in the ID token (OIDC Core §3.1.2.1).
    pub nonce: Option<String>,
    pub expires_at: SystemTime,
}

/// Who a sign-in grant (scope `openid`) signed in, for its ID token and UserInfo.
#[derive(Debug, Clone, Serialize)]
pub struct SignIn {
    pub sub: String,
    #[serde(skip)]
    pub nonce: Option<String>,
    pub auth_time: u64,
}

#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub scopes: Vec<String>,
    pub organization_id: String,
    pub expires_at: SystemTime,
    /// Set for a sign-in (scope `openid`): the user it signs in.
    pub sign_in: Option<SignIn>,
    /// Set once exchanged; a second exchange revokes this grant (RFC 6749 §4.1.2, §10.5).
    pub grant_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    Active,
    /// Expired by the control API: the API answers `connection_expired`, refresh `invalid_grant`.
    Expired,
    /// Revoked (RFC 7009, or replay detected): API `connection_not_found`, refresh `invalid_grant`.
    Revoked,
}

/// A connection: one organization's consent for one client.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub organization_id: String,
    pub scopes: Vec<String>,
    pub resource: String,
    pub status: GrantStatus,
    pub created_at: u64,
    pub refreshes: u64,
    #[serde(skip)]
    pub current_refresh_token: Option<String>,
    /// Set for a sign-in grant.
    pub sign_in: Option<SignIn>,
}

#[derive(Debug, Clone)]
pub struct AccessTokenRecord {
    pub grant_id: String,
    pub organization_id: String,
    pub scopes: Vec<String>,
    pub expires_at: SystemTime,
    pub revoked: bool,
    /// The signed-in user, for a sign-in grant's token (UserInfo answers for them).
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshState {
    Current,
    /// Replaced by rotation; presenting it again means it leaked (RFC 9700 §4.14.2).
    Rotated,
    Revoked,
}

#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub grant_id: String,
    pub client_id: String,
    pub state: RefreshState,
}

/// The emulator's state. One lock; no handler holds it across an `.await`.
#[derive(Debug)]
pub struct World {
    pub issuer: String,
    /// The provider this Workspace emulates.
    pub profile: &'static Profile,
    pub access_token_ttl: Duration,
    pub clients: Vec<ClientRegistration>,
    pub organizations: Vec<Organization>,
    pub pending: HashMap<String, PendingAuthorization>,
    pub codes: HashMap<String, CodeRecord>,
    pub grants: BTreeMap<String, Grant>,
    pub access_tokens: HashMap<String, AccessTokenRecord>,
    pub refresh_tokens: HashMap<String, RefreshTokenRecord>,
    pub withheld_scopes: HashMap<String, BTreeSet<String>>,
    pub latency: HashMap<Endpoint, Duration>,
    /// Delays after the request was processed, before the answer leaves (a slow network on the
    /// way back: the server has acted, the client does not know yet).
    pub response_delay: HashMap<Endpoint, Duration>,
    /// Requests being handled now, per endpoint. A request whose client went away is dropped
    /// (and leaves this count) without being processed, as a real server's would be.
    pub in_flight: HashMap<Endpoint, u64>,
    pub failures: HashMap<Endpoint, VecDeque<Failure>>,
    pub token_quirks: TokenQuirks,
    pub wrong_iss: bool,
    pub metadata: MetadataVariant,
    /// RFC 7009 §2.2 lets a server ignore the revocation of a token it no longer considers
    /// current: a rotated-out refresh token is then "revoked" without ending the grant.
    pub ignore_revocation_of_rotated: bool,
    pub clock_offset: Duration,
    pub log: Vec<LoggedRequest>,
    pub counters: Counters,
    /// Every code and token this Workspace handed out, and every PKCE verifier it received,
    /// so leak tests know what to look for.
    pub issued_secrets: Vec<String>,
    /// Where [`World::note_secret`] also writes them, when configured.
    pub secrets_file: Option<std::fs::File>,
    pub partner_api_in_flight: u64,
    pub partner_api_peers: std::collections::HashSet<std::net::SocketAddr>,
    /// The marketplace, when a partner-app registration is configured.
    pub marketplace: Option<crate::marketplace::Marketplace>,
    /// Users, Workspace sessions, signing keys and OpenID Connect faults.
    pub identity: crate::identity::Identity,
    next_grant: u64,
}

/// At most this many requests are kept in the log (oldest dropped first).
const LOG_CAPACITY: usize = 10_000;

impl World {
    pub fn new(
        issuer: String,
        clients: Vec<ClientRegistration>,
        access_token_ttl: Duration,
        profile: &'static Profile,
    ) -> Self {
        Self {
            issuer,
            profile,
            access_token_ttl,
            clients,
            organizations: seed::organizations(),
            pending: HashMap::new(),
            codes: HashMap::new(),
            grants: BTreeMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            withheld_scopes: HashMap::new(),
            latency: HashMap::new(),
            response_delay: HashMap::new(),
            in_flight: HashMap::new(),
            failures: HashMap::new(),
            token_quirks: TokenQuirks::default(),
            wrong_iss: false,
            metadata: MetadataVariant::Standard,
            ignore_revocation_of_rotated: false,
            clock_offset: Duration::ZERO,
            log: Vec::new(),
            counters: Counters::default(),
            issued_secrets: Vec::new(),
            secrets_file: None,
            partner_api_in_flight: 0,
            partner_api_peers: std::collections::HashSet::new(),
            marketplace: None,
            identity: crate::identity::Identity::default(),
            next_grant: 1,
        }
    }

    /// The emulator's "now": the system time moved forward by the control API.
    #[allow(clippy::disallowed_methods)] // The emulator's one read of the system clock.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.clock_offset
    }

    pub fn now_secs(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    }

    /// The `resource` every request must name (RFC 8707).
    pub fn resource(&self) -> String {
        format!("{}{}", self.issuer, self.profile.resource_path)
    }

    pub fn client(&self, client_id: &str) -> Option<&ClientRegistration> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    pub fn organization(&self, id: &str) -> Option<&Organization> {
        self.organizations.iter().find(|o| o.id == id)
    }

    pub fn new_grant_id(&mut self) -> String {
        let id = format!("grant_{}", self.next_grant);
        self.next_grant += 1;
        id
    }

    /// Revokes a grant and every token issued under it.
    pub fn revoke_grant(&mut self, grant_id: &str) {
        if let Some(grant) = self.grants.get_mut(grant_id) {
            grant.status = GrantStatus::Revoked;
            grant.current_refresh_token = None;
        }
        for token in self.access_tokens.values_mut() {
            if token.grant_id == grant_id {
                token.revoked = true;
            }
        }
        for token in self.refresh_tokens.values_mut() {
            if token.grant_id == grant_id {
                token.state = RefreshState::Revoked;
            }
        }
    }

    /// Mints an access token (and, when `with_refresh`, a refresh token) for a grant.
    pub fn mint_tokens(&mut self, grant_id: &str, with_refresh: bool) -> Option<MintedTokens> {
        let grant = self.grants.get(grant_id)?.clone();
        let access_token = random_token("qat");
        self.note_secret(&access_token);
        let expires_at = self.now() + self.access_token_ttl;
        self.access_tokens.insert(
            access_token.clone(),
            AccessTokenRecord {
                grant_id: grant.id.clone(),
                organization_id: grant.organization_id.clone(),
                scopes: grant.scopes.clone(),
                expires_at,
                revoked: false,
                sub: grant.sign_in.as_ref().map(|s| s.sub.clone()),
            },
        );
        let refresh_token = with_refresh.then(|| {
            let token = random_token("qrt");
            self.note_secret(&token);
            self.refresh_tokens.insert(
                token.clone(),
                RefreshTokenRecord {
                    grant_id: grant.id.clone(),
                    client_id: grant.client_id.clone(),
                    state: RefreshState::Current,
                },
            );
            token
        });
        if let Some(token) = &refresh_token {
            if let Some(grant) = self.grants.get_mut(grant_id) {
                grant.current_refresh_token = Some(token.clone());
            }
        }
        Some(MintedTokens {
            access_token,
            refresh_token,
            expires_in: self.access_token_ttl.as_secs(),
            scopes: grant.scopes,
            organization_id: grant.organization_id,
        })
    }

    /// Remembers a secret this Workspace issued or received, for leak tests.
    pub fn note_secret(&mut self, secret: &str) {
        self.issued_secrets.push(secret.to_owned());
        if let Some(file) = &mut self.secrets_file {
            use std::io::Write;
            let _ = writeln!(file, "{secret}");
        }
    }

    pub fn record(&mut self, request: LoggedRequest) {
        if self.log.len() >= LOG_CAPACITY {
            self.log.remove(0);
        }
        self.log.push(request);
    }

    /// Takes the next canned failure for an endpoint, if any.
    pub fn take_failure(&mut self, endpoint: Endpoint) -> Option<Failure> {
        let queue = self.failures.get_mut(&endpoint)?;
        let failure = queue.pop_front();
        if queue.is_empty() {
            self.failures.remove(&endpoint);
        }
        failure
    }

    /// Forgets every flow, grant, token and control setting, and every installation (their
    /// clients go too); keeps the configured clients, the marketplace's registration and seed
    /// data.
    pub fn reset(&mut self) {
        let issuer = std::mem::take(&mut self.issuer);
        let ttl = self.access_token_ttl;
        let secrets_file = self.secrets_file.take();
        let marketplace = self.marketplace.take();
        let identity = std::mem::take(&mut self.identity);
        let mut clients = std::mem::take(&mut self.clients);
        if let Some(marketplace) = &marketplace {
            clients.retain(|client| {
                !marketplace
                    .installations
                    .iter()
                    .any(|i| i.client_id == client.client_id)
            });
        }
        for client in &mut clients {
            client.approved = true;
        }
        *self = World::new(issuer, clients, ttl, self.profile);
        self.secrets_file = secrets_file;
        self.identity = identity.reset_keeping_keys();
        self.marketplace = marketplace.map(|m| crate::marketplace::Marketplace::new(m.config));
    }
}

/// Tokens minted for one grant.
#[derive(Debug, Clone)]
pub struct MintedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
    pub scopes: Vec<String>,
    pub organization_id: String,
}

/// A shared handle on the world.
#[derive(Debug, Clone)]
pub struct SharedWorld(Arc<Mutex<World>>);

impl SharedWorld {
    pub fn new(world: World) -> Self {
        Self(Arc::new(Mutex::new(world)))
    }

    /// Locks the world. A panic while holding the lock cannot leave it half-written in a way
    /// that matters for an emulator, so a poisoned lock is simply taken over.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// 256 random bits, base64url, behind a prefix that says what the value is.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    // The OS RNG does not fail on the platforms this runs on; if it ever did, the zero
    // bytes would still be unique per call thanks to the counter below.
    if getrandom::fill(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static FALLBACK: AtomicU64 = AtomicU64::new(1);
        bytes[..8].copy_from_slice(&FALLBACK.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::QENTRAH;

    #[test]
    fn endpoints_are_found_by_path_and_name() {
        assert_eq!(
            Endpoint::for_path("/oauth/token", &QENTRAH),
            Some(Endpoint::Token)
        );
        assert_eq!(
            Endpoint::for_path("/api/v1/partner/organizations/org_acme/clients", &QENTRAH),
            Some(Endpoint::Clients)
        );
        assert_eq!(Endpoint::for_path("/__dev", &QENTRAH), None);
        for endpoint in Endpoint::ALL {
            assert_eq!(Endpoint::parse(endpoint.name()), Some(endpoint));
        }
    }

    #[test]
    fn random_tokens_are_unique_and_prefixed() {
        let a = random_token("qat");
        let b = random_token("qat");
        assert_ne!(a, b);
        assert!(a.starts_with("qat_"));
        assert_eq!(a.len(), 4 + 43);
    }
}
