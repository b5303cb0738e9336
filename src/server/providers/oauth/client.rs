//! Token calls: code exchange and refresh through the oauth2 crate, revocation (RFC 7009) as a
//! plain form POST. All on the one shared `reqwest::Client` (timeouts on, redirects off: a token
//! endpoint that redirects is refused, not followed, RFC 9700 §4.11).
//!
//! The oauth2 crate's token types derive `Serialize`; they are turned into the vault's newtypes
//! in [`into_token_set`] and go no further.

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeVerifier, RequestTokenError, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::authorization::PkceVerifier;
use super::provider::{ProviderConfig, TenantSource};
use crate::server::credentials::{AccessToken, RawIdToken, RefreshToken, TokenSet};
use crate::server::ids::{OrganizationId, ProviderId};
use crate::server::platform::config::{ClientAuthentication, IssPolicy, WorkspaceConfig};
use crate::server::platform::http::{read_capped, CappedReadError};

/// An installation's client as its source tells it: the organization it serves, its id and its
/// secret (delivered by the marketplace, sealed at rest; opened only to be handed to the
/// oauth2 client). `Debug` shows the ids; the secret's (secrecy's) is redacted.
#[derive(Debug)]
pub struct InstalledCredentials {
    pub organization_id: OrganizationId,
    pub client_id: String,
    pub client_secret: SecretString,
}

/// What a source knows of an organization or of a client id.
#[derive(Debug)]
pub enum Installed {
    /// An active installation.
    Active(InstalledCredentials),
    /// Uninstalled and not replaced: nothing of it may be used again.
    Uninstalled,
    /// Never installed here (or not an installation's client).
    Unknown,
}

/// The source could not be asked (its database failed, a sealed secret did not open).
#[derive(Debug, thiserror::Error)]
#[error("the installed clients could not be read")]
pub struct ClientLookupError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where per-organization clients come from: the marketplace's installations. A trait, so
/// that the providers know nothing of how installations are stored.
#[async_trait::async_trait]
pub trait InstalledClients: Send + Sync {
    /// The organization's installation.
    async fn for_organization(
        &self,
        organization_id: &OrganizationId,
    ) -> Result<Installed, ClientLookupError>;
    /// The organization's installation whose client is `client_id`.
    async fn for_client(
        &self,
        organization_id: &OrganizationId,
        client_id: &str,
    ) -> Result<Installed, ClientLookupError>;
}

/// Which client a lookup found.
#[derive(Debug, Clone)]
pub enum ClientChoice {
    Client(OAuthClient),
    /// The client belonged to an installation that was uninstalled (and, for an organization,
    /// not replaced).
    Uninstalled,
    /// The provider, or that client, is not configured: nothing of it is sent anywhere.
    NotConfigured,
}

/// Which OAuth client (client id and secret, on its provider's endpoints) serves a flow or a
/// stored connection. Looked up, not held: the configured client of each provider, and for
/// Qentrah the clients the marketplace delivered per organization ([`InstalledClients`]).
#[derive(Clone, Default)]
pub struct ClientRegistry {
    configured: std::sync::Arc<std::collections::HashMap<String, OAuthClient>>,
    /// The provider installations deliver clients for, and where they are.
    installed: Option<(String, std::sync::Arc<dyn InstalledClients>)>,
}

impl std::fmt::Debug for ClientRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRegistry")
            .field("configured", &self.configured.len())
            .field("installed_for", &self.installed.as_ref().map(|(p, _)| p))
            .finish()
    }
}

impl ClientRegistry {
    pub fn new(clients: impl IntoIterator<Item = OAuthClient>) -> Self {
        Self {
            configured: std::sync::Arc::new(
                clients
                    .into_iter()
                    .map(|client| (client.provider().name.as_str().to_owned(), client))
                    .collect(),
            ),
            installed: None,
        }
    }

    /// Adds the installations' clients of `provider` (the marketplace's Workspace).
    pub fn with_installations(
        mut self,
        provider: &ProviderId,
        source: std::sync::Arc<dyn InstalledClients>,
    ) -> Self {
        self.installed = Some((provider.as_str().to_owned(), source));
        self
    }

    /// The configured client of `provider`.
    pub fn configured(&self, provider: &str) -> Option<&OAuthClient> {
        self.configured.get(provider)
    }

    fn installations_of(&self, provider: &str) -> Option<&dyn InstalledClients> {
        self.installed
            .as_ref()
            .filter(|(of, _)| of == provider)
            .map(|(_, source)| source.as_ref())
    }

    /// The client a flow with `provider` starts with: for an organization with an active
    /// installation, that installation's; for one whose installation was uninstalled and not
    /// replaced, none ([`ClientChoice::Uninstalled`]); otherwise the configured one.
    pub async fn for_flow(
        &self,
        provider: &str,
        organization_id: Option<&OrganizationId>,
    ) -> Result<ClientChoice, ClientLookupError> {
        let Some(configured) = self.configured.get(provider) else {
            return Ok(ClientChoice::NotConfigured);
        };
        let (Some(organization_id), Some(source)) =
            (organization_id, self.installations_of(provider))
        else {
            return Ok(ClientChoice::Client(configured.clone()));
        };
        Ok(match source.for_organization(organization_id).await? {
            Installed::Active(credentials) => {
                ClientChoice::Client(configured.with_credentials(credentials))
            }
            Installed::Uninstalled => ClientChoice::Uninstalled,
            Installed::Unknown => ClientChoice::Client(configured.clone()),
        })
    }

    /// The client that completes, refreshes and revokes `organization_id`'s grant of `provider`
    /// issued to `client_id` (`""`: a row from before the column, issued to the configured
    /// client); an installation's client serves only its own organization. A
    /// refresh token is bound to the client it was issued to (RFC 6749 §6, §10.4): another
    /// client is never used for it, and a client no longer configured or installed is none,
    /// so nothing of the grant is sent anywhere.
    pub async fn for_connection(
        &self,
        provider: &str,
        organization_id: &OrganizationId,
        client_id: &str,
    ) -> Result<ClientChoice, ClientLookupError> {
        let Some(configured) = self.configured.get(provider) else {
            return Ok(ClientChoice::NotConfigured);
        };
        if client_id.is_empty() || configured.client_id() == client_id {
            return Ok(ClientChoice::Client(configured.clone()));
        }
        let Some(source) = self.installations_of(provider) else {
            return Ok(ClientChoice::NotConfigured);
        };
        Ok(match source.for_client(organization_id, client_id).await? {
            Installed::Active(credentials)
                if credentials.client_id == client_id
                    && credentials.organization_id == *organization_id =>
            {
                ClientChoice::Client(configured.with_credentials(credentials))
            }
            Installed::Active(_) | Installed::Unknown => ClientChoice::NotConfigured,
            Installed::Uninstalled => ClientChoice::Uninstalled,
        })
    }
}

/// The non-standard members of a token response (RFC 6749 §5.1 allows them), kept so that the
/// profile's [`TenantSource::TokenField`] can name the one holding the tenant (Qentrah's
/// `organization_id`). Read for that one field and dropped: nothing else of them is kept.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExtraFields(serde_json::Map<String, serde_json::Value>);

impl ExtraFields {
    /// The OpenID Connect `id_token` (OIDC Core §3.1.3.3), taken straight into its secret type.
    fn id_token(&self) -> Option<RawIdToken> {
        self.0
            .get("id_token")
            .and_then(serde_json::Value::as_str)
            .map(|raw| RawIdToken::new(raw.to_owned()))
    }

    /// The tenant named in `field`: a string, or a whole number as servers also send it
    /// (`"organization_id": 4711`), parsed at the edge. Anything else is no tenant.
    fn tenant(&self, field: &str) -> Option<OrganizationId> {
        match self.0.get(field)? {
            serde_json::Value::String(text) => OrganizationId::parse(text),
            serde_json::Value::Number(number) if number.is_u64() || number.is_i64() => {
                OrganizationId::parse(&number.to_string())
            }
            _ => None,
        }
    }
}

/// Token, revocation and metadata bodies larger than this are refused rather than read: a
/// token response is a few hundred bytes, and a misbehaving endpoint must not exhaust memory.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// How long "no metadata" (404) is believed before the metadata is asked for again.
pub const NO_METADATA_RECHECK: std::time::Duration = std::time::Duration::from_secs(300);

impl ExtraTokenFields for ExtraFields {}

type TokenResponseWithExtras = StandardTokenResponse<ExtraFields, BasicTokenType>;

type OAuth2Client = oauth2::Client<
    BasicErrorResponse,
    TokenResponseWithExtras,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// How a token call failed, in the terms the caller acts on.
#[derive(Debug, thiserror::Error)]
pub enum TokenCallError {
    /// RFC 6749 §5.2 `invalid_grant`: the code or refresh token is no longer good.
    #[error("the authorization server refused the grant (invalid_grant)")]
    InvalidGrant,
    /// Any other OAuth error (`invalid_client`, `unauthorized_client`, `invalid_target`, …):
    /// our registration or configuration is wrong; retrying will not help.
    #[error("the authorization server refused the request ({error})")]
    Refused { error: String },
    /// Network trouble, a timeout, a 5xx or an unreadable answer: worth retrying later.
    #[error("the authorization server could not be reached or answered unreadably: {detail}")]
    Unavailable { detail: String },
    /// `unauthorized_client` or `access_denied` at the token endpoint (RFC 6749 §5.2): the app
    /// is not approved for this Workspace; only a Workspace admin can change that.
    #[error("the authorization server says this app is not approved ({error})")]
    NotApproved { error: String },
    /// The token call succeeded but its answer cannot be used: a `token_type` other than
    /// `Bearer`, which this client does not understand (RFC 6749 §7.1).
    #[error("the token response cannot be used: {detail}")]
    UnusableResponse { detail: String },
}

/// What [`OAuthClient::revoke`] can revoke.
pub enum Revocable<'a> {
    Refresh(&'a RefreshToken),
    Access(&'a AccessToken),
}

impl<'a> Revocable<'a> {
    /// The token that ends the most: the refresh token if the grant has one.
    pub fn best_of(refresh: Option<&'a RefreshToken>, access: &'a AccessToken) -> Self {
        match refresh {
            Some(refresh) => Revocable::Refresh(refresh),
            None => Revocable::Access(access),
        }
    }
}

/// Our OAuth client for one provider. Cloned into every request's state, so its parts (URLs,
/// scopes, the oauth2 client) sit behind one `Arc` rather than being copied each time.
#[derive(Clone)]
pub struct OAuthClient(std::sync::Arc<OAuthClientParts>);

/// Whether the provider always sends `iss`, once its metadata said, and until when that answer
/// holds (`None`: for good).
type SendsIss = std::sync::Arc<std::sync::Mutex<Option<(bool, Option<SystemTime>)>>>;

struct OAuthClientParts {
    provider: ProviderConfig,
    client_id: String,
    client_secret: Option<SecretString>,
    oauth: OAuth2Client,
    http: reqwest::Client,
    /// Whether the provider always sends `iss`, once its metadata has said so either way, and
    /// until when that answer holds (`None`: for good).
    /// Shared by every client of the provider (it is the provider's promise, not a client's).
    sends_iss: SendsIss,
    /// For an installation's client, the organization it was delivered for.
    installed_for: Option<OrganizationId>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.0.provider.name)
            .field("client_id", &self.0.client_id)
            .field("confidential", &self.0.client_secret.is_some())
            .finish()
    }
}

impl OAuthClient {
    pub fn new(
        provider: ProviderConfig,
        workspace: &WorkspaceConfig,
        http: reqwest::Client,
    ) -> Self {
        let client_secret = workspace
            .client_secret
            .as_ref()
            .map(|s| SecretString::from(s.expose().to_owned()));
        Self::build(
            provider,
            workspace.client_id.as_str().to_owned(),
            client_secret,
            http,
            std::sync::Arc::default(),
            None,
        )
    }

    /// This provider's client registered as an installation delivered it: same endpoints and
    /// profile, the installation's id and secret (`client_secret_post`, as the brief's form
    /// fields, or whatever the profile names).
    pub fn with_credentials(&self, credentials: InstalledCredentials) -> Self {
        Self::build(
            self.0.provider.clone(),
            credentials.client_id,
            Some(credentials.client_secret),
            self.0.http.clone(),
            self.0.sends_iss.clone(),
            Some(credentials.organization_id),
        )
    }

    fn build(
        provider: ProviderConfig,
        client_id: String,
        client_secret: Option<SecretString>,
        http: reqwest::Client,
        sends_iss: SendsIss,
        installed_for: Option<OrganizationId>,
    ) -> Self {
        // The profile's method (RFC 6749 §2.3.1): Qentrah's is client_secret_post, client_id
        // and client_secret as form fields, as the integration brief gives them, and the
        // Workspace holds a client to it. Public clients send client_id alone in the body
        // whatever the method (RFC 6749 §3.2.1; the oauth2 crate does so without a secret).
        let auth_type = match provider.client_authentication {
            ClientAuthentication::ClientSecretPost => AuthType::RequestBody,
            ClientAuthentication::ClientSecretBasic => AuthType::BasicAuth,
        };
        let mut oauth = oauth2::Client::new(ClientId::new(client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(provider.authorize_url.clone()))
            .set_token_uri(TokenUrl::from_url(provider.token_url.clone()))
            .set_redirect_uri(oauth2::RedirectUrl::from_url(provider.redirect_uri.clone()))
            .set_auth_type(auth_type);
        if let Some(secret) = &client_secret {
            oauth = oauth.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        Self(std::sync::Arc::new(OAuthClientParts {
            provider,
            client_id,
            client_secret,
            oauth,
            http,
            sends_iss,
            installed_for,
        }))
    }

    /// Whether the provider sends `iss` on every authorization response, from its metadata
    /// (RFC 8414 §3; RFC 9207 §3 `authorization_response_iss_parameter_supported`). When it
    /// does, a response without `iss` must be refused (RFC 9207 §2.4). Asked only when a
    /// callback comes without `iss`. A definite answer is remembered; no metadata at all (404)
    /// means no such promise for now, and is asked again after [`NO_METADATA_RECHECK`] (the
    /// provider may publish metadata later). A fault reading it is an error: the callback
    /// cannot be judged. Metadata naming another issuer than the one configured must not be
    /// used (RFC 8414 §3.3), and is a [`TokenCallError::Refused`]: a configuration to fix.
    /// A profile that says the provider always sends it ([`IssPolicy::Always`]) asks nothing.
    pub async fn provider_sends_iss(&self, now: SystemTime) -> Result<bool, TokenCallError> {
        if self.0.provider.iss == IssPolicy::Always {
            return Ok(true);
        }
        if let Some(known) = self.known_sends_iss(now) {
            return Ok(known);
        }
        let unavailable = |detail: String| TokenCallError::Unavailable { detail };
        let response = self
            .0
            .http
            .get(self.0.provider.metadata_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            self.remember_sends_iss(false, now.checked_add(NO_METADATA_RECHECK));
            return Ok(false);
        }
        if !status.is_success() {
            return Err(unavailable(format!("metadata endpoint answered {status}")));
        }
        let body = read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let metadata: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| unavailable("metadata is not JSON".to_owned()))?;
        // RFC 8414 §3.3: identical to the issuer whose metadata was asked for, exactly.
        if metadata.get("issuer").and_then(serde_json::Value::as_str)
            != Some(self.0.provider.issuer.as_str())
        {
            return Err(TokenCallError::Refused {
                error: "the metadata names another issuer".to_owned(),
            });
        }
        let sends = metadata
            .get("authorization_response_iss_parameter_supported")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        self.remember_sends_iss(sends, None);
        Ok(sends)
    }

    fn known_sends_iss(&self, now: SystemTime) -> Option<bool> {
        let known = *self
            .0
            .sends_iss
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match known {
            Some((sends, None)) => Some(sends),
            Some((sends, Some(until))) if now < until => Some(sends),
            _ => None,
        }
    }

    fn remember_sends_iss(&self, sends: bool, until: Option<SystemTime>) {
        *self
            .0
            .sends_iss
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((sends, until));
    }

    pub fn provider(&self) -> &ProviderConfig {
        &self.0.provider
    }

    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The organization an installation's client was delivered for (`None`: the configured
    /// client, which serves any organization).
    pub fn installed_for(&self) -> Option<&OrganizationId> {
        self.0.installed_for.as_ref()
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3) with its PKCE verifier (RFC 7636 §4.5)
    /// and the resource indicator (RFC 8707 §2.2).
    #[tracing::instrument(skip_all, fields(provider = %self.0.provider.name))]
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        verifier: &PkceVerifier,
    ) -> Result<TokenSet, TokenCallError> {
        let request = self
            .0
            .oauth
            .exchange_code(AuthorizationCode::new(code.expose_secret().to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_owned()));
        let response = match &self.0.provider.resource {
            Some(resource) => request.add_extra_param("resource", resource.clone()),
            None => request,
        }
        .request_async(&TokenEndpoint(&self.0.http))
        .await
        .map_err(map_error)?;
        let tokens = self.token_set(&response);
        if let Err(error) = require_bearer(&response) {
            // Redeemed, but unusable: nothing will ever use or revoke these tokens otherwise.
            let token = Revocable::best_of(tokens.refresh_token.as_ref(), &tokens.access_token);
            if let Err(revocation) = self.revoke(token).await {
                tracing::warn!(%revocation, "could not revoke the unusable grant");
            }
            return Err(error);
        }
        Ok(tokens)
    }

    /// Exchanges a sign-in's code (OIDC Core §3.1.3): at `redirect_uri` (the sign-in callback),
    /// with the PKCE verifier and no resource (the grant is for UserInfo, not the partner API).
    /// Returns the ID token beside the tokens; judging it is the caller's.
    #[tracing::instrument(skip_all, fields(provider = %self.0.provider.name))]
    pub async fn exchange_sign_in_code(
        &self,
        code: &SecretString,
        verifier: &PkceVerifier,
        redirect_uri: &url::Url,
    ) -> Result<(TokenSet, Option<RawIdToken>), TokenCallError> {
        let response = self
            .0
            .oauth
            .exchange_code(AuthorizationCode::new(code.expose_secret().to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_owned()))
            .set_redirect_uri(std::borrow::Cow::Owned(oauth2::RedirectUrl::from_url(
                redirect_uri.clone(),
            )))
            .request_async(&TokenEndpoint(&self.0.http))
            .await
            .map_err(map_error)?;
        let tokens = into_token_set(&response, &self.0.client_id, None);
        let id_token = response.extra_fields().id_token();
        if let Err(error) = require_bearer(&response) {
            let token = Revocable::best_of(tokens.refresh_token.as_ref(), &tokens.access_token);
            if let Err(revocation) = self.revoke(token).await {
                tracing::warn!(%revocation, "could not revoke the unusable grant");
            }
            return Err(error);
        }
        Ok((tokens, id_token))
    }

    /// Refreshes a sign-in's grant (RFC 6749 §6): no resource, as it was granted.
    #[tracing::instrument(skip_all, fields(provider = %self.0.provider.name))]
    pub async fn refresh_sign_in(
        &self,
        refresh_token: &RefreshToken,
    ) -> Result<TokenSet, TokenCallError> {
        let token = oauth2::RefreshToken::new(refresh_token.expose().to_owned());
        let response = self
            .0
            .oauth
            .exchange_refresh_token(&token)
            .request_async(&TokenEndpoint(&self.0.http))
            .await
            .map_err(map_error)?;
        require_bearer(&response)?;
        Ok(into_token_set(&response, &self.0.client_id, None))
    }

    /// Refreshes (RFC 6749 §6), naming the resource on every refresh (RFC 8707 §2.2).
    #[tracing::instrument(skip_all, fields(provider = %self.0.provider.name))]
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenSet, TokenCallError> {
        let token = oauth2::RefreshToken::new(refresh_token.expose().to_owned());
        let request = self.0.oauth.exchange_refresh_token(&token);
        let response = match &self.0.provider.resource {
            Some(resource) => request.add_extra_param("resource", resource.clone()),
            None => request,
        }
        .request_async(&TokenEndpoint(&self.0.http))
        .await
        .map_err(map_error)?;
        require_bearer(&response)?;
        Ok(self.token_set(&response))
    }

    /// Revokes a token (RFC 7009 §2.1): a refresh token, which also ends the grant and its
    /// access tokens, or, for a grant that has none, its access token. Done by hand: the oauth2
    /// crate refuses a non-https revocation URL, and the local Workspace is http.
    #[tracing::instrument(skip_all, fields(provider = %self.0.provider.name))]
    pub async fn revoke(&self, token: Revocable<'_>) -> Result<(), TokenCallError> {
        let (token, hint) = match token {
            Revocable::Refresh(token) => (token.expose(), "refresh_token"),
            Revocable::Access(token) => (token.expose(), "access_token"),
        };
        // Client authentication as at the token endpoint (RFC 7009 §2.1), by the profile's
        // method; a public client sends its client_id in the form.
        let mut form: Vec<(&str, &str)> = vec![("token", token), ("token_type_hint", hint)];
        let mut request = self
            .0
            .http
            .post(self.0.provider.revocation_url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        match (&self.0.client_secret, self.0.provider.client_authentication) {
            (Some(secret), ClientAuthentication::ClientSecretBasic) => {
                // RFC 6749 §2.3.1: each part form-urlencoded before the Basic encoding.
                let encode = |part: &str| {
                    url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>()
                };
                request = request.basic_auth(
                    encode(&self.0.client_id),
                    Some(encode(secret.expose_secret())),
                );
            }
            (secret, _) => {
                form.push(("client_id", &self.0.client_id));
                if let Some(secret) = secret {
                    form.push(("client_secret", secret.expose_secret()));
                }
            }
        }
        let response =
            request
                .form(&form)
                .send()
                .await
                .map_err(|e| TokenCallError::Unavailable {
                    detail: e.without_url().to_string(),
                })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(TokenCallError::Unavailable {
                detail: format!("revocation endpoint answered {status}"),
            });
        }
        // RFC 7009 §2.2.1 errors come in the RFC 6749 §5.2 form.
        let error = read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
            .await
            .ok()
            .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
            .and_then(|body| {
                body.get("error")
                    .and_then(|e| e.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| status.to_string());
        Err(match error.as_str() {
            "unauthorized_client" | "access_denied" => TokenCallError::NotApproved { error },
            _ => TokenCallError::Refused { error },
        })
    }
}

impl OAuthClient {
    /// Takes the tokens out of the oauth2 crate's `Serialize` types at once, with the tenant
    /// from where the profile says it is named.
    fn token_set(&self, response: &TokenResponseWithExtras) -> TokenSet {
        let organization_id = match &self.0.provider.tenant {
            TenantSource::TokenField(field) => response.extra_fields().tenant(field),
        };
        into_token_set(response, &self.0.client_id, organization_id)
    }
}

/// Takes the tokens out of the oauth2 crate's `Serialize` types at once.
fn into_token_set(
    response: &TokenResponseWithExtras,
    client_id: &str,
    organization_id: Option<OrganizationId>,
) -> TokenSet {
    TokenSet {
        client_id: client_id.to_owned(),
        access_token: AccessToken::new(response.access_token().secret().to_owned()),
        refresh_token: response
            .refresh_token()
            .map(|t| RefreshToken::new(t.secret().to_owned())),
        expires_in: response.expires_in(),
        scopes: response
            .scopes()
            .map(|scopes| scopes.iter().map(|s| s.to_string()).collect()),
        organization_id,
    }
}

/// RFC 6749 §7.1: a client must not use a token whose type it does not understand. The type
/// is compared case-insensitively (RFC 6749 §5.1); the oauth2 crate maps `bearer` in any case
/// to [`BasicTokenType::Bearer`].
fn require_bearer(response: &TokenResponseWithExtras) -> Result<(), TokenCallError> {
    match response.token_type() {
        BasicTokenType::Bearer => Ok(()),
        other => Err(TokenCallError::UnusableResponse {
            detail: format!("token_type {:?} is not Bearer", other.as_ref()),
        }),
    }
}

/// A token call's transport failure, or an answer that says the server is in trouble.
#[derive(Debug, thiserror::Error)]
enum TokenHttpError {
    #[error("{0}")]
    Transport(reqwest::Error),
    #[error("the token endpoint answered {0}")]
    Status(oauth2::http::StatusCode),
    #[error("the token endpoint's answer is larger than {MAX_TOKEN_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("the token endpoint's answer could not be passed on")]
    Build,
}

/// The shared client as the oauth2 crate's HTTP client, doing what the crate's own adapter does
/// not: it keeps the status (the crate reads any JSON error body as an OAuth refusal, but a 5xx
/// or 429 is the server's trouble whatever its body says, `{"error":"server_error"}` from a
/// failing node, so it must be retried later, not reported as a wrong client registration),
/// caps the body it reads, and evens out the token-response shapes servers send in the wild
/// ([`normalize_token_body`]) before the crate's strict parser sees them.
struct TokenEndpoint<'a>(&'a reqwest::Client);

impl<'c> AsyncHttpClient<'c> for TokenEndpoint<'_> {
    type Error = TokenHttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, TokenHttpError>>
                + Send
                + Sync
                + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(TokenHttpError::Transport)?;
            let status = response.status();
            if status.is_server_error() || status == oauth2::http::StatusCode::TOO_MANY_REQUESTS {
                return Err(TokenHttpError::Status(status));
            }
            let headers = response.headers().clone();
            let body = read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
                .await
                .map_err(|error| match error {
                    CappedReadError::TooLarge => TokenHttpError::TooLarge,
                    CappedReadError::Transport(error) => TokenHttpError::Transport(error),
                })?;
            let mut builder = oauth2::http::Response::builder().status(status);
            if let Some(response_headers) = builder.headers_mut() {
                *response_headers = headers;
            }
            builder
                .body(normalize_token_body(body))
                .map_err(|_| TokenHttpError::Build)
        })
    }
}

/// Evens out the shapes of a successful token response that servers send in the wild but the
/// oauth2 crate's parser refuses: `expires_in` as a string of digits (`"3600"`). Without this,
/// a parse failure after the code was redeemed would leave the grant neither stored nor
/// revoked. (A numeric tenant id is read as such by [`ExtraFields::tenant`].) Anything else
/// passes through unchanged.
fn normalize_token_body(body: Vec<u8>) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(&body) else {
        return body;
    };
    let mut changed = false;
    if let Some(serde_json::Value::String(text)) = object.get("expires_in") {
        if let Ok(seconds) = text.trim().parse::<u64>() {
            object.insert("expires_in".to_owned(), seconds.into());
            changed = true;
        }
    }
    if !changed {
        return body;
    }
    serde_json::to_vec(&serde_json::Value::Object(object)).unwrap_or(body)
}

fn map_error(error: RequestTokenError<TokenHttpError, BasicErrorResponse>) -> TokenCallError {
    match error {
        RequestTokenError::ServerResponse(response) => match response.error() {
            BasicErrorResponseType::InvalidGrant => TokenCallError::InvalidGrant,
            BasicErrorResponseType::UnauthorizedClient => TokenCallError::NotApproved {
                error: "unauthorized_client".to_owned(),
            },
            BasicErrorResponseType::Extension(code) if code == "access_denied" => {
                TokenCallError::NotApproved {
                    error: code.clone(),
                }
            }
            // RFC 6749 §4.1.2.1's two "try again later" codes, which servers also use here.
            BasicErrorResponseType::Extension(code)
                if code == "temporarily_unavailable" || code == "server_error" =>
            {
                TokenCallError::Unavailable {
                    detail: format!("the token endpoint answered {code}"),
                }
            }
            other => TokenCallError::Refused {
                error: other.as_ref().to_owned(),
            },
        },
        RequestTokenError::Request(error) => TokenCallError::Unavailable {
            detail: match error {
                TokenHttpError::Transport(e) => e.without_url().to_string(),
                other => other.to_string(),
            },
        },
        // A 5xx, a proxy's HTML page, or a body that is not a token response at all.
        RequestTokenError::Parse(error, _body) => TokenCallError::Unavailable {
            detail: format!("unreadable token response at {}", error.path()),
        },
        RequestTokenError::Other(detail) => TokenCallError::Unavailable { detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::platform::config::AppConfig;

    #[test]
    fn the_tenant_is_read_from_the_field_the_profile_names() {
        let fields: ExtraFields = serde_json::from_value(serde_json::json!({
            "organization_id": "org_acme",
            "tenant": 4711,
            "fraction": 1.5,
            "flag": true,
            "path": "../x",
        }))
        .unwrap();
        let tenant = |field: &str| fields.tenant(field).map(|id| id.to_string());
        assert_eq!(tenant("organization_id").as_deref(), Some("org_acme"));
        assert_eq!(tenant("tenant").as_deref(), Some("4711"));
        for not_a_tenant in ["fraction", "flag", "path", "missing"] {
            assert_eq!(tenant(not_a_tenant), None, "{not_a_tenant}");
        }
    }

    /// Qentrah's client, its Workspace at `api_url`.
    fn qentrah_client(api_url: &str, iss: IssPolicy) -> OAuthClient {
        let mut config = AppConfig::from_lookup(|name| {
            Some(
                match name {
                    "QENTRAH_WORKSPACE_API_URL" => api_url,
                    "QENTRAH_CLIENT_ID" => "partners_client_dev",
                    "PARTNER_APP_URL" => "http://localhost:3001",
                    "SESSION_SECRET" => "0123456789abcdef0123456789abcdef-dev",
                    _ => return None,
                }
                .to_owned(),
            )
        })
        .unwrap();
        config.workspace.iss = iss;
        OAuthClient::new(
            ProviderConfig::qentrah(&config).unwrap(),
            &config.workspace,
            crate::server::platform::http::http_client(std::time::Duration::from_secs(5)).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_provider_known_to_send_iss_is_not_asked_for_its_metadata() {
        // Nothing listens on port 9 (discard): asking would be an error, not an answer.
        let now = SystemTime::UNIX_EPOCH;
        let always = qentrah_client("http://127.0.0.1:9", IssPolicy::Always);
        assert!(always.provider_sends_iss(now).await.unwrap());
        let from_metadata = qentrah_client("http://127.0.0.1:9", IssPolicy::FromMetadata);
        assert!(matches!(
            from_metadata.provider_sends_iss(now).await,
            Err(TokenCallError::Unavailable { .. })
        ));
    }

    /// Installations as a fake source: org_acme has app_acme, org_gone was uninstalled.
    struct FakeInstallations;

    #[async_trait::async_trait]
    impl InstalledClients for FakeInstallations {
        async fn for_organization(
            &self,
            organization_id: &OrganizationId,
        ) -> Result<Installed, ClientLookupError> {
            let client_id = match organization_id.as_str() {
                "org_acme" => "app_acme",
                "org_gone" => "app_gone",
                _ => "",
            };
            self.for_client(organization_id, client_id).await
        }

        async fn for_client(
            &self,
            organization_id: &OrganizationId,
            client_id: &str,
        ) -> Result<Installed, ClientLookupError> {
            if !matches!(organization_id.as_str(), "org_acme" | "org_gone") {
                return Ok(Installed::Unknown);
            }
            Ok(match client_id {
                "app_acme" => Installed::Active(InstalledCredentials {
                    organization_id: OrganizationId::parse("org_acme").unwrap(),
                    client_id: "app_acme".to_owned(),
                    client_secret: SecretString::from("secret_acme_0123456789"),
                }),
                "app_gone" => Installed::Uninstalled,
                _ => Installed::Unknown,
            })
        }
    }

    fn chosen(choice: ClientChoice) -> String {
        match choice {
            ClientChoice::Client(client) => client.client_id().to_owned(),
            ClientChoice::Uninstalled => "(uninstalled)".to_owned(),
            ClientChoice::NotConfigured => "(none)".to_owned(),
        }
    }

    #[tokio::test]
    async fn a_stored_connection_is_served_only_by_the_client_its_grant_was_issued_to() {
        let client = qentrah_client("http://localhost:3000", IssPolicy::FromMetadata);
        let clients = ClientRegistry::new([client]);
        let served = |provider: &'static str, client_id: &'static str| {
            let clients = clients.clone();
            async move {
                let org = OrganizationId::parse("org_acme").unwrap();
                chosen(
                    clients
                        .for_connection(provider, &org, client_id)
                        .await
                        .unwrap(),
                )
            }
        };
        assert_eq!(
            served("qentrah", "partners_client_dev").await,
            "partners_client_dev"
        );
        // Rows from before the column was added: the configured client.
        assert_eq!(served("qentrah", "").await, "partners_client_dev");
        assert_eq!(served("qentrah", "another_client").await, "(none)");
        assert_eq!(served("other", "partners_client_dev").await, "(none)");
        assert_eq!(
            chosen(clients.for_flow("qentrah", None).await.unwrap()),
            "partners_client_dev"
        );
    }

    #[tokio::test]
    async fn an_installed_organization_is_served_by_its_installations_client() {
        let configured = qentrah_client("http://localhost:3000", IssPolicy::FromMetadata);
        let clients = ClientRegistry::new([configured]).with_installations(
            &ProviderId::qentrah(),
            std::sync::Arc::new(FakeInstallations),
        );
        let org = |id: &str| OrganizationId::parse(id).unwrap();
        let flow = |id: &str| {
            let (clients, id) = (clients.clone(), org(id));
            async move { chosen(clients.for_flow("qentrah", Some(&id)).await.unwrap()) }
        };
        assert_eq!(flow("org_acme").await, "app_acme");
        assert_eq!(flow("org_gone").await, "(uninstalled)");
        // Never installed: the configured client, as before installations.
        assert_eq!(flow("org_other").await, "partners_client_dev");
        let ClientChoice::Client(acme) = clients
            .for_flow("qentrah", Some(&org("org_acme")))
            .await
            .unwrap()
        else {
            panic!("org_acme's client");
        };
        assert_eq!(acme.installed_for(), Some(&org("org_acme")));
        assert!(format!("{acme:?}").contains("confidential: true"));
        assert!(!format!("{acme:?}").contains("secret_acme"));
        let installed = FakeInstallations
            .for_organization(&org("org_acme"))
            .await
            .unwrap();
        let shown = format!("{installed:?}");
        assert!(
            shown.contains("app_acme") && !shown.contains("secret_acme"),
            "{shown}"
        );

        let connection = |organization_id: &'static str, client_id: &'static str| {
            let clients = clients.clone();
            async move {
                let org = OrganizationId::parse(organization_id).unwrap();
                chosen(
                    clients
                        .for_connection("qentrah", &org, client_id)
                        .await
                        .unwrap(),
                )
            }
        };
        assert_eq!(connection("org_acme", "app_acme").await, "app_acme");
        assert_eq!(connection("org_gone", "app_gone").await, "(uninstalled)");
        assert_eq!(connection("org_acme", "app_unknown").await, "(none)");
        // An installation's client never serves another organization's grant.
        assert_eq!(connection("org_other", "app_acme").await, "(none)");
        assert_eq!(
            connection("org_acme", "partners_client_dev").await,
            "partners_client_dev"
        );
    }
}
