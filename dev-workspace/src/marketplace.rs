//! The marketplace: a tenant installs the partner app for an organization, the Workspace creates
//! a confidential OAuth client for it and delivers the client to the app by a signed webhook
//! (`app.installed`); uninstalling disables the client (its token requests answer
//! `invalid_client`), revokes its grants and tells the app (`app.uninstalled`).
//!
//! Deliveries follow Standard Webhooks (<https://www.standardwebhooks.com/>): `webhook-id`,
//! `webhook-timestamp` (the attempt time, new on every retry), `webhook-signature`
//! (`v1,` base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the `whsec_` secret), retried on
//! a schedule until the app answers 2xx. A delivery may carry a fault, so that every way a
//! sender or a forger can get it wrong is one control call away; a faulty delivery is sent once.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::state::{random_token, ClientAuthMethod, ClientRegistration, SharedWorld, World};

/// How the marketplace reaches the partner app.
#[derive(Debug, Clone)]
pub struct MarketplaceConfig {
    /// `{PARTNER_APP_URL}/api/webhooks/qentrah`.
    pub webhook_url: String,
    /// Standard Webhooks secrets (`whsec_<base64>`); the first signs. A second one is the
    /// "previous" secret of a rotation: the `two_signatures` fault signs with both.
    pub signing_secrets: Vec<String>,
    /// The redirect URIs each installation's client is registered with.
    pub redirect_uris: Vec<String>,
    /// The pause before each attempt (the first is usually zero).
    pub retry_schedule: Vec<Duration>,
}

/// The Standard Webhooks retry schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
impl MarketplaceConfig {
    /// The partner app's base URL (its webhook URL without the webhook path).
    pub fn app_url(&self) -> String {
        self.webhook_url
            .strip_suffix(crate::WEBHOOK_PATH)
            .unwrap_or(&self.webhook_url)
            .trim_end_matches('/')
            .to_owned()
    }
}

pub fn standard_retry_schedule() -> Vec<Duration> {
    [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// A short schedule for tests: every retry within a second or two.
pub fn test_retry_schedule() -> Vec<Duration> {
    [0, 100, 300, 600]
        .into_iter()
        .map(Duration::from_millis)
        .collect()
}

/// How a delivery goes wrong on purpose, and what the app must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The signature's bytes are altered.
    BadSignature,
    /// Signed with a secret the app does not know.
    UnknownSecret,
    /// Signed with the delivered client secret (circular: the app must not accept it).
    SignedWithClientSecret,
    /// A timestamp an hour old.
    StaleTimestamp,
    /// A timestamp an hour ahead.
    FutureTimestamp,
    /// No `webhook-signature` header.
    MissingHeaders,
    /// The body is changed after signing.
    BodyChangedAfterSigning,
    /// Sent twice with the same id: the second is a duplicate.
    Duplicate,
    /// Two signatures, the previous secret's and the current one's (rotation).
    TwoSignatures,
    /// The seed's flat payload (`event`, no event time, no installation id).
    FlatPayload,
    /// A `type` the app does not know.
    UnknownType,
    /// A body over 256 KiB.
    HugeBody,
    /// A signed body that is not JSON.
    NotJson,
}

impl Fault {
    pub const ALL: [Fault; 13] = [
        Fault::BadSignature,
        Fault::UnknownSecret,
        Fault::SignedWithClientSecret,
        Fault::StaleTimestamp,
        Fault::FutureTimestamp,
        Fault::MissingHeaders,
        Fault::BodyChangedAfterSigning,
        Fault::Duplicate,
        Fault::TwoSignatures,
        Fault::FlatPayload,
        Fault::UnknownType,
        Fault::HugeBody,
        Fault::NotJson,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::BadSignature => "bad_signature",
            Fault::UnknownSecret => "unknown_secret",
            Fault::SignedWithClientSecret => "signed_with_client_secret",
            Fault::StaleTimestamp => "stale_timestamp",
            Fault::FutureTimestamp => "future_timestamp",
            Fault::MissingHeaders => "missing_headers",
            Fault::BodyChangedAfterSigning => "body_changed_after_signing",
            Fault::Duplicate => "duplicate",
            Fault::TwoSignatures => "two_signatures",
            Fault::FlatPayload => "flat_payload",
            Fault::UnknownType => "unknown_type",
            Fault::HugeBody => "huge_body",
            Fault::NotJson => "not_json",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// What a correct receiver answers (the last request's status, for `duplicate`).
    pub fn expected_status(self) -> u16 {
        match self {
            Fault::BadSignature
            | Fault::UnknownSecret
            | Fault::SignedWithClientSecret
            | Fault::StaleTimestamp
            | Fault::FutureTimestamp
            | Fault::MissingHeaders
            | Fault::BodyChangedAfterSigning => 401,
            Fault::Duplicate | Fault::TwoSignatures | Fault::FlatPayload | Fault::UnknownType => {
                200
            }
            Fault::HugeBody => 413,
            Fault::NotJson => 400,
        }
    }

    /// Whether a correct receiver applies the delivery (installs or uninstalls).
    pub fn applies(self) -> bool {
        matches!(
            self,
            Fault::Duplicate | Fault::TwoSignatures | Fault::FlatPayload
        )
    }
}

/// One installation as the marketplace knows it.
#[derive(Debug, Clone, Serialize)]
pub struct MarketInstallation {
    pub installation_id: String,
    pub organization_id: String,
    pub client_id: String,
    /// `active` or `uninstalled`.
    pub status: String,
    pub installed_at: u64,
    pub uninstalled_at: Option<u64>,
}

/// One attempt at delivering.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub at: u64,
    /// The app's status, or none if it could not be reached.
    pub status: Option<u16>,
    /// The app's answer (`reason`, or its error code), or the transport error.
    pub answer: String,
}

/// A delivery and its attempts. The body is never shown (an install carries a client secret).
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: String,
    pub event_type: String,
    pub organization_id: String,
    pub fault: Option<Fault>,
    #[serde(skip)]
    pub body: String,
    /// The client secret an install carries (for the `signed_with_client_secret` fault).
    #[serde(skip)]
    pub client_secret: Option<String>,
    pub attempts: Vec<Attempt>,
    /// `pending`, `delivered`, `failed` (every attempt failed) or `sent` (a faulty one, sent once).
    pub state: String,
}

/// The marketplace's state, inside the world.
#[derive(Debug, Clone)]
pub struct Marketplace {
    pub config: MarketplaceConfig,
    pub installations: Vec<MarketInstallation>,
    pub deliveries: Vec<Delivery>,
    /// The sender's client: timeouts on, redirects off (a 3xx is a failed delivery).
    pub http: reqwest::Client,
}

/// Why a marketplace action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarketplaceError {
    #[error("this Workspace has no marketplace (no partner app registration is configured)")]
    Off,
    #[error("no such organization")]
    UnknownOrganization,
    #[error("the app is already installed for this organization")]
    AlreadyInstalled,
    #[error("the app is not installed for this organization")]
    NotInstalled,
    #[error("no such delivery")]
    UnknownDelivery,
}

impl Marketplace {
    pub fn new(config: MarketplaceConfig) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            config,
            installations: Vec::new(),
            deliveries: Vec::new(),
            http,
        }
    }

    pub fn active(&self, organization_id: &str) -> Option<&MarketInstallation> {
        self.installations
            .iter()
            .find(|i| i.organization_id == organization_id && i.status == "active")
    }
}

/// An ISO 8601 UTC time (`2026-12-01T10:00:00Z`) from Unix seconds: the event time.
pub fn iso8601(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        (rem % 3_600) / 60,
        rem % 60
    )
}

/// `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` under the raw key bytes.
pub fn sign_with_key(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts a key of any length (RFC 2104 §2).
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The key bytes of a `whsec_<base64>` secret (empty if it is not one).
pub fn secret_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .unwrap_or_default()
}

/// One request to send.
#[derive(Debug, Clone)]
struct Outgoing {
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// The requests one attempt of `delivery` sends at `timestamp`, its fault applied.
fn requests(config: &MarketplaceConfig, delivery: &Delivery, timestamp: i64) -> Vec<Outgoing> {
    let current = config
        .signing_secrets
        .first()
        .map(|s| secret_key(s))
        .unwrap_or_default();
    let id = delivery.id.as_str();
    let body = delivery.body.as_bytes().to_vec();
    let signed = |key: &[u8], timestamp: i64, body: &[u8]| sign_with_key(key, id, timestamp, body);
    let normal = |timestamp: i64, signature: String, body: Vec<u8>| Outgoing {
        headers: vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ],
        body,
    };
    match delivery.fault {
        None | Some(Fault::FlatPayload | Fault::UnknownType | Fault::HugeBody | Fault::NotJson) => {
            vec![normal(timestamp, signed(&current, timestamp, &body), body)]
        }
        Some(Fault::BadSignature) => {
            let mut signature = signed(&current, timestamp, &body);
            // One character of the base64 changed (never the `v1,` prefix).
            let changed = if signature.get(3..4) == Some("A") {
                "B"
            } else {
                "A"
            };
            signature.replace_range(3..4, changed);
            vec![normal(timestamp, signature, body)]
        }
        Some(Fault::UnknownSecret) => {
            let unknown = [7u8; 32];
            vec![normal(timestamp, signed(&unknown, timestamp, &body), body)]
        }
        Some(Fault::SignedWithClientSecret) => {
            let key = delivery.client_secret.clone().unwrap_or_default();
            vec![normal(
                timestamp,
                signed(key.as_bytes(), timestamp, &body),
                body,
            )]
        }
        Some(Fault::StaleTimestamp) => {
            let at = timestamp - 3600;
            vec![normal(at, signed(&current, at, &body), body)]
        }
        Some(Fault::FutureTimestamp) => {
            let at = timestamp + 3600;
            vec![normal(at, signed(&current, at, &body), body)]
        }
        Some(Fault::MissingHeaders) => {
            let mut outgoing = normal(timestamp, String::new(), body);
            outgoing
                .headers
                .retain(|(name, _)| *name != "webhook-signature");
            vec![outgoing]
        }
        Some(Fault::BodyChangedAfterSigning) => {
            let signature = signed(&current, timestamp, &body);
            let changed = delivery
                .body
                .replacen("\"data\":{", "\"data\":{\"tampered\":true,", 1)
                .into_bytes();
            vec![normal(timestamp, signature, changed)]
        }
        Some(Fault::Duplicate) => {
            let once = normal(timestamp, signed(&current, timestamp, &body), body);
            vec![once.clone(), once]
        }
        Some(Fault::TwoSignatures) => {
            let previous = config
                .signing_secrets
                .get(1)
                .map(|s| secret_key(s))
                .unwrap_or_else(|| vec![9u8; 32]);
            let both = format!(
                "{} {}",
                signed(&previous, timestamp, &body),
                signed(&current, timestamp, &body)
            );
            vec![normal(timestamp, both, body)]
        }
    }
}

fn new_id(prefix: &str) -> String {
    // Opaque ids, `msg_…` as in the spec's examples: 27 random alphanumerics.
    let random: String = random_token("x")
        .chars()
        .skip(2)
        .filter(char::is_ascii_alphanumeric)
        .take(27)
        .collect();
    format!("{prefix}_{random}")
}

/// The body of an event, in the canonical shape or (for the fault) the seed's flat one.
fn event_body(
    event_type: &str,
    at: u64,
    installation: &MarketInstallation,
    client_secret: Option<&str>,
    fault: Option<Fault>,
) -> String {
    let event_type = if fault == Some(Fault::UnknownType) {
        "app.updated"
    } else {
        event_type
    };
    let body = if fault == Some(Fault::FlatPayload) {
        let mut flat = serde_json::json!({
            "event": event_type,
            "organizationId": installation.organization_id,
            "clientId": installation.client_id,
        });
        if let Some(secret) = client_secret {
            flat["clientSecret"] = serde_json::json!(secret);
        }
        flat.to_string()
    } else {
        let mut data = serde_json::json!({
            "organizationId": installation.organization_id,
            "installationId": installation.installation_id,
            "clientId": installation.client_id,
        });
        if let Some(secret) = client_secret {
            data["clientSecret"] = serde_json::json!(secret);
        }
        serde_json::json!({ "type": event_type, "timestamp": iso8601(at), "data": data })
            .to_string()
    };
    match fault {
        Some(Fault::HugeBody) => {
            let mut huge: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            huge["padding"] = serde_json::json!("x".repeat(300 * 1024));
            huge.to_string()
        }
        Some(Fault::NotJson) => format!("not json: {event_type}"),
        _ => body,
    }
}

fn marketplace(world: &mut World) -> Result<&mut Marketplace, MarketplaceError> {
    world.marketplace.as_mut().ok_or(MarketplaceError::Off)
}

/// Records a delivery of `event_type` for `installation`; returns its id.
fn enqueue(
    world: &mut World,
    event_type: &str,
    installation: &MarketInstallation,
    client_secret: Option<String>,
    fault: Option<Fault>,
    at: u64,
) -> Result<String, MarketplaceError> {
    let body = event_body(
        event_type,
        at,
        installation,
        client_secret.as_deref(),
        fault,
    );
    let id = new_id("msg");
    marketplace(world)?.deliveries.push(Delivery {
        id: id.clone(),
        event_type: event_type.to_owned(),
        organization_id: installation.organization_id.clone(),
        fault,
        body,
        client_secret,
        attempts: Vec::new(),
        state: "pending".to_owned(),
    });
    Ok(id)
}

/// Installs the app for `organization_id`: a new confidential client, and `app.installed`.
/// Returns the installation and the delivery id; the delivery is not sent yet ([`send`]).
pub fn install(
    world: &mut World,
    organization_id: &str,
    fault: Option<Fault>,
) -> Result<(MarketInstallation, String), MarketplaceError> {
    if world.organization(organization_id).is_none() {
        return Err(MarketplaceError::UnknownOrganization);
    }
    let now = world.now_secs();
    let market = marketplace(world)?;
    if market.active(organization_id).is_some() {
        return Err(MarketplaceError::AlreadyInstalled);
    }
    let redirect_uris = market.config.redirect_uris.clone();
    let installation = MarketInstallation {
        installation_id: new_id("inst"),
        organization_id: organization_id.to_owned(),
        client_id: new_id("app"),
        status: "active".to_owned(),
        installed_at: now,
        uninstalled_at: None,
    };
    market.installations.push(installation.clone());
    let client_secret = random_token("secret");
    world.note_secret(&client_secret);
    world.clients.push(ClientRegistration {
        client_id: installation.client_id.clone(),
        client_secret: Some(client_secret.clone()),
        redirect_uris,
        approved: true,
        auth_method: ClientAuthMethod::ClientSecretPost,
    });
    let id = enqueue(
        world,
        "app.installed",
        &installation,
        Some(client_secret),
        fault,
        now,
    )?;
    Ok((installation, id))
}

/// Uninstalls the app from `organization_id`: its client is deleted (token requests answer
/// `invalid_client`), its grants revoked, and `app.uninstalled` recorded.
pub fn uninstall(
    world: &mut World,
    organization_id: &str,
    fault: Option<Fault>,
) -> Result<(MarketInstallation, String), MarketplaceError> {
    let now = world.now_secs();
    let market = marketplace(world)?;
    let Some(installation) = market
        .installations
        .iter_mut()
        .find(|i| i.organization_id == organization_id && i.status == "active")
    else {
        return Err(MarketplaceError::NotInstalled);
    };
    installation.status = "uninstalled".to_owned();
    installation.uninstalled_at = Some(now);
    let installation = installation.clone();
    world
        .clients
        .retain(|client| client.client_id != installation.client_id);
    let grants: Vec<String> = world
        .grants
        .values()
        .filter(|grant| grant.client_id == installation.client_id)
        .map(|grant| grant.id.clone())
        .collect();
    for grant in grants {
        world.revoke_grant(&grant);
    }
    let id = enqueue(world, "app.uninstalled", &installation, None, fault, now)?;
    Ok((installation, id))
}

/// The organization's latest install delivered again under a new id, as a replay of an old
/// install would arrive (fresh signature; the app must keep its tombstone).
pub fn replay_install(
    world: &mut World,
    organization_id: &str,
) -> Result<String, MarketplaceError> {
    let market = marketplace(world)?;
    let Some(old) = market
        .deliveries
        .iter()
        .rev()
        .find(|d| d.organization_id == organization_id && d.event_type == "app.installed")
        .cloned()
    else {
        return Err(MarketplaceError::NotInstalled);
    };
    let id = new_id("msg");
    market.deliveries.push(Delivery {
        id: id.clone(),
        fault: None,
        attempts: Vec::new(),
        state: "pending".to_owned(),
        ..old
    });
    Ok(id)
}

/// Sends delivery `id` (again, when it was sent before: same id and body, new timestamp and
/// signature), in the background, retrying on the schedule until the app answers 2xx. A faulty
/// delivery is sent once.
pub fn send(world: &SharedWorld, id: &str) -> Result<(), MarketplaceError> {
    send_in_order(world, vec![id.to_owned()])
}

/// Sends deliveries one after another, in this order, each to its end (`reorder` sends an
/// uninstall before its install).
pub fn send_in_order(world: &SharedWorld, ids: Vec<String>) -> Result<(), MarketplaceError> {
    let http = {
        let mut w = world.lock();
        let market = marketplace(&mut w)?;
        for id in &ids {
            market
                .deliveries
                .iter_mut()
                .find(|d| d.id == *id)
                .ok_or(MarketplaceError::UnknownDelivery)?
                .state = "pending".to_owned();
        }
        market.http.clone()
    };
    let world = world.clone();
    tokio::spawn(async move {
        for id in ids {
            deliver(&world, &http, &id).await;
        }
    });
    Ok(())
}

async fn deliver(world: &SharedWorld, http: &reqwest::Client, id: &str) {
    let schedule = {
        let w = world.lock();
        w.marketplace
            .as_ref()
            .map(|m| m.config.retry_schedule.clone())
            .unwrap_or_default()
    };
    for pause in schedule {
        tokio::time::sleep(pause).await;
        let prepared = {
            let mut w = world.lock();
            let now = i64::try_from(w.now_secs()).unwrap_or_default();
            let at = w.now_secs();
            w.marketplace.as_mut().and_then(|m| {
                let url = m.config.webhook_url.clone();
                let config = m.config.clone();
                m.deliveries
                    .iter()
                    .find(|d| d.id == id)
                    .map(|d| (url, requests(&config, d, now), d.fault, at))
            })
        };
        let Some((url, outgoing, fault, at)) = prepared else {
            return;
        };
        let mut last = None;
        for request in outgoing {
            let mut builder = http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(request.body);
            for (name, value) in request.headers {
                builder = builder.header(name, value);
            }
            last = Some(match builder.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    let answer = body["reason"]
                        .as_str()
                        .or_else(|| body["error"]["code"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    Attempt {
                        at,
                        status: Some(status),
                        answer,
                    }
                }
                Err(error) => Attempt {
                    at,
                    status: None,
                    answer: error.without_url().to_string(),
                },
            });
            if let Some(attempt) = &last {
                record(world, id, attempt.clone());
            }
        }
        let succeeded = last
            .as_ref()
            .and_then(|a| a.status)
            .is_some_and(|s| (200..300).contains(&s));
        if fault.is_some() {
            record_state(world, id, "sent");
            return;
        }
        if succeeded {
            record_state(world, id, "delivered");
            return;
        }
    }
    record_state(world, id, "failed");
}

fn record(world: &SharedWorld, id: &str, attempt: Attempt) {
    let mut w = world.lock();
    if let Some(delivery) = w
        .marketplace
        .as_mut()
        .and_then(|m| m.deliveries.iter_mut().find(|d| d.id == id))
    {
        delivery.attempts.push(attempt);
    }
}

fn record_state(world: &SharedWorld, id: &str, state: &str) {
    let mut w = world.lock();
    if let Some(delivery) = w
        .marketplace
        .as_mut()
        .and_then(|m| m.deliveries.iter_mut().find(|d| d.id == id))
    {
        delivery.state = state.to_owned();
    }
}

// ---- HTTP: the `/marketplace` page and the control API's `/__dev/marketplace/…` ----------

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};

use crate::control::{bad_request, query_params, ControlError};
use crate::html::{escape, page};

impl IntoResponse for MarketplaceError {
    fn into_response(self) -> Response {
        let status = match self {
            MarketplaceError::Off => StatusCode::NOT_FOUND,
            MarketplaceError::UnknownOrganization | MarketplaceError::UnknownDelivery => {
                StatusCode::NOT_FOUND
            }
            MarketplaceError::AlreadyInstalled | MarketplaceError::NotInstalled => {
                StatusCode::CONFLICT
            }
        };
        (
            status,
            Json(serde_json::json!({ "error": { "code": "invalid_request", "message": self.to_string() } })),
        )
            .into_response()
    }
}

/// The routes, for the loopback-only control router (they change the Workspace's state).
pub fn router() -> Router<SharedWorld> {
    Router::new()
        .route("/marketplace", get(marketplace_page))
        .route("/marketplace/install", post(page_install))
        .route("/marketplace/uninstall", post(page_uninstall))
        .route("/__dev/marketplace", get(overview))
        .route("/__dev/marketplace/install", post(control_install))
        .route("/__dev/marketplace/uninstall", post(control_uninstall))
        .route("/__dev/marketplace/redeliver", post(control_redeliver))
        .route("/__dev/marketplace/reorder", post(control_reorder))
        .route(
            "/__dev/marketplace/replay-install",
            post(control_replay_install),
        )
}

#[derive(Debug, serde::Deserialize)]
struct OrganizationForm {
    organization_id: String,
}

fn fault_of(params: &crate::params::Params) -> Result<Option<Fault>, ControlError> {
    match params.get("fault") {
        None => Ok(None),
        Some(name) => Fault::parse(name)
            .map(Some)
            .ok_or_else(|| bad_request("unknown fault")),
    }
}

fn required<'a>(params: &'a crate::params::Params, name: &str) -> Result<&'a str, ControlError> {
    params
        .get(name)
        .ok_or_else(|| bad_request(format!("{name} is required")))
}

/// The one parameter `name` a control call needs.
fn one_param(raw: Option<String>, name: &str) -> Result<String, ControlError> {
    let params = query_params(raw)?;
    required(&params, name).map(str::to_owned)
}

/// Installs or uninstalls, then sends the delivery.
pub(crate) fn act(
    world: &SharedWorld,
    organization_id: &str,
    fault: Option<Fault>,
    install_it: bool,
) -> Result<(MarketInstallation, String), MarketplaceError> {
    let (installation, id) = {
        let mut w = world.lock();
        if install_it {
            install(&mut w, organization_id, fault)?
        } else {
            uninstall(&mut w, organization_id, fault)?
        }
    };
    send(world, &id)?;
    Ok((installation, id))
}

async fn page_install(
    State(world): State<SharedWorld>,
    Form(form): Form<OrganizationForm>,
) -> Response {
    match act(&world, &form.organization_id, None, true) {
        Ok(_) => Redirect::to("/marketplace").into_response(),
        Err(error) => error.into_response(),
    }
}

async fn page_uninstall(
    State(world): State<SharedWorld>,
    Form(form): Form<OrganizationForm>,
) -> Response {
    match act(&world, &form.organization_id, None, false) {
        Ok(_) => Redirect::to("/marketplace").into_response(),
        Err(error) => error.into_response(),
    }
}

async fn control_install(State(world): State<SharedWorld>, RawQuery(raw): RawQuery) -> Response {
    control_act(&world, raw, true)
}

async fn control_uninstall(State(world): State<SharedWorld>, RawQuery(raw): RawQuery) -> Response {
    control_act(&world, raw, false)
}

fn control_act(world: &SharedWorld, raw: Option<String>, install_it: bool) -> Response {
    let params = match query_params(raw) {
        Ok(params) => params,
        Err(response) => return response.into_response(),
    };
    let (organization_id, fault) = match (required(&params, "organization_id"), fault_of(&params)) {
        (Ok(org), Ok(fault)) => (org.to_owned(), fault),
        (Err(response), _) | (_, Err(response)) => return response.into_response(),
    };
    match act(world, &organization_id, fault, install_it) {
        Ok((installation, delivery_id)) => {
            Json(serde_json::json!({ "installation": installation, "delivery_id": delivery_id }))
                .into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn control_redeliver(State(world): State<SharedWorld>, RawQuery(raw): RawQuery) -> Response {
    let id = match one_param(raw, "delivery_id") {
        Ok(value) => value,
        Err(response) => return response.into_response(),
    };
    match send(&world, &id) {
        Ok(()) => Json(serde_json::json!({ "delivery_id": id })).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Installs and uninstalls, and delivers the uninstall first (an uninstall that overtook its
/// install): the app must keep the organization uninstalled.
async fn control_reorder(State(world): State<SharedWorld>, RawQuery(raw): RawQuery) -> Response {
    let organization_id = match one_param(raw, "organization_id") {
        Ok(value) => value,
        Err(response) => return response.into_response(),
    };
    let ids = {
        let mut w = world.lock();
        install(&mut w, &organization_id, None).and_then(|(installation, installed)| {
            uninstall(&mut w, &organization_id, None)
                .map(|(_, uninstalled)| (installation, installed, uninstalled))
        })
    };
    match ids.and_then(|(installation, installed, uninstalled)| {
        send_in_order(&world, vec![uninstalled.clone(), installed.clone()])
            .map(|()| (installation, installed, uninstalled))
    }) {
        Ok((installation, installed, uninstalled)) => Json(serde_json::json!({
            "installation": installation,
            "deliveries": [uninstalled, installed],
        }))
        .into_response(),
        Err(error) => error.into_response(),
    }
}

async fn control_replay_install(
    State(world): State<SharedWorld>,
    RawQuery(raw): RawQuery,
) -> Response {
    let organization_id = match one_param(raw, "organization_id") {
        Ok(value) => value,
        Err(response) => return response.into_response(),
    };
    let replayed = replay_install(&mut world.lock(), &organization_id);
    match replayed.and_then(|id| send(&world, &id).map(|()| id)) {
        Ok(id) => Json(serde_json::json!({ "delivery_id": id })).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn overview(State(world): State<SharedWorld>) -> Response {
    let w = world.lock();
    let Some(market) = w.marketplace.as_ref() else {
        return MarketplaceError::Off.into_response();
    };
    let faults: Vec<_> = Fault::ALL
        .into_iter()
        .map(|f| serde_json::json!({ "name": f.name(), "expected_status": f.expected_status(), "applies": f.applies() }))
        .collect();
    Json(serde_json::json!({
        "webhook_url": market.config.webhook_url,
        "installations": market.installations,
        "deliveries": market.deliveries,
        "faults": faults,
    }))
    .into_response()
}

async fn marketplace_page(State(world): State<SharedWorld>) -> Html<String> {
    let w = world.lock();
    let Some(market) = w.marketplace.as_ref() else {
        return Html(page(
            "Marketplace",
            "<h1>Marketplace</h1><p>No partner app is registered with this Workspace: set <code>DEV_WORKSPACE_WEBHOOK_SECRET</code> (and <code>PARTNER_APP_URL</code>) and start it again.</p>",
        ));
    };
    let mut html = format!(
        "<h1>Marketplace</h1><p class=\"muted\">Install Qentrah Connect for an organization: the Workspace creates an OAuth client for it and delivers it, signed, to <code>{}</code>. Uninstall deletes the client, revokes its grants and tells the app.</p>",
        escape(&market.config.webhook_url)
    );
    html.push_str("<table><tr><th>Organization</th><th>Qentrah Connect</th><th></th></tr>");
    for org in &w.organizations {
        let active = market.active(&org.id);
        let (status, action, label) = match active {
            Some(installation) => (
                format!(
                    "Installed · client <code>{}</code>",
                    escape(&installation.client_id)
                ),
                "/marketplace/uninstall",
                "Uninstall",
            ),
            None => (
                "Not installed".to_owned(),
                "/marketplace/install",
                "Install",
            ),
        };
        // "Open App" (OIDC Core §4's initiate_login_uri) and the seed's legacy shape.
        let open = if active.is_some() {
            format!(
                " <a href=\"/apps/open?organization_id={id}&amp;mode=initiate\" aria-label=\"Open App for {name}\">Open App</a> · <a href=\"/apps/open?organization_id={id}&amp;mode=legacy\" aria-label=\"Open App (legacy) for {name}\">legacy</a>",
                id = escape(&org.id),
                name = escape(&org.name),
            )
        } else {
            String::new()
        };
        html.push_str(&format!(
            "<tr><td><strong>{}</strong><br><code>{}</code></td><td>{status}{open}</td><td><form class=\"inline\" method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"organization_id\" value=\"{}\"><button type=\"submit\" class=\"primary\" aria-label=\"{label} for {}\">{label}</button></form></td></tr>",
            escape(&org.name),
            escape(&org.id),
            escape(&org.id),
            escape(&org.name),
        ));
    }
    html.push_str("</table><h2>Deliveries</h2>");
    if market.deliveries.is_empty() {
        html.push_str("<p class=\"muted\">None yet.</p>");
    } else {
        html.push_str("<table><tr><th>Id</th><th>Event</th><th>Organization</th><th>State</th><th>Attempts</th></tr>");
        for delivery in market.deliveries.iter().rev() {
            let attempts: Vec<String> = delivery
                .attempts
                .iter()
                .map(|a| {
                    format!(
                        "{} {}",
                        a.status.map_or("no answer".to_owned(), |s| s.to_string()),
                        escape(&a.answer)
                    )
                })
                .collect();
            html.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}{}</td><td><code>{}</code></td><td class=\"delivery-state\">{}</td><td>{}</td></tr>",
                escape(&delivery.id),
                escape(&delivery.event_type),
                delivery.fault.map(|f| format!(" <em>({})</em>", f.name())).unwrap_or_default(),
                escape(&delivery.organization_id),
                escape(&delivery.state),
                attempts.join("<br>"),
            ));
        }
        html.push_str("</table>");
    }
    Html(page("Marketplace", &html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        let key = secret_key("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        assert_eq!(
            sign_with_key(
                &key,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn event_times_are_iso_8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_764_583_200), "2025-12-01T10:00:00Z");
    }

    #[test]
    fn every_fault_has_a_name_and_an_expected_answer() {
        for fault in Fault::ALL {
            assert_eq!(Fault::parse(fault.name()), Some(fault));
            assert!([200, 400, 401, 413].contains(&fault.expected_status()));
        }
        assert!(new_id("msg").starts_with("msg_"));
        assert_ne!(new_id("msg"), new_id("msg"));
    }
}
