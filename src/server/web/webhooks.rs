//! `POST /api/webhooks/qentrah`: the marketplace's install deliveries. A surface of its own: no
//! session, no cookie, no canonical-host redirect (a 3xx is a failed delivery to a sender), no
//! same-origin check (the signature authenticates). The body is read raw, at most 256 KiB,
//! verified before it is parsed, applied once; answers are JSON, `no-store`, never echo a value.

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::server::installations::{payload, signature};
use crate::server::state::AppState;

/// The largest body read; a larger one is refused without reading it further.
pub const MAX_WEBHOOK_BODY: usize = 256 * 1024;

pub const WEBHOOK_PATH: &str = "/api/webhooks/qentrah";

/// Deliveries per minute one sender address may make: far above a Workspace's install traffic
/// (a sender retries a 429 later), low enough that a flood cannot hold the database.
pub const WEBHOOK_RATE_LIMIT_PER_MINUTE: u32 = 600;

/// How long a delivery may take to apply before it is answered 503 (the sender retries): a
/// sender times out and retries a slow answer anyway, so one that waits on a locked database
/// must still be answered within the 5 s the integration promises. A transaction cut off here
/// is rolled back: the delivery id is not recorded, and the retry applies it.
pub const ANSWER_BUDGET: std::time::Duration = std::time::Duration::from_secs(4);

/// How many unattributed refusals each instance remembers for `/admin/installations`.
pub const REFUSALS_KEPT: usize = 20;

/// A delivery refused before it could be attributed: when (Unix seconds) and why, never a
/// header or body value. Kept in memory, per instance: writing every forged request to the
/// database would let a flood of them write to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDelivery {
    pub at: i64,
    pub reason: String,
}

/// The newest [`REFUSALS_KEPT`] refused deliveries, newest first.
#[derive(Debug, Clone, Default)]
pub struct RefusedDeliveries(
    std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<RefusedDelivery>>>,
);

impl RefusedDeliveries {
    pub fn record(&self, at: i64, reason: String) {
        let mut kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.push_front(RefusedDelivery { at, reason });
        kept.truncate(REFUSALS_KEPT);
    }

    pub fn newest_first(&self) -> Vec<RefusedDelivery> {
        let kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.iter().cloned().collect()
    }
}

/// The webhook's router; empty (so the path is a 404) when no signing secret is configured.
pub fn router(state: &AppState) -> Router<AppState> {
    if !state.config.webhooks.enabled() {
        return Router::new();
    }
    // Any other method: 405 with `Allow: POST` (axum's method router).
    Router::new()
        .route(WEBHOOK_PATH, post(receive))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::server::web::security::limit_webhooks,
        ))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(status: StatusCode, code: &str) -> Response {
    answer(status, json!({ "error": { "code": code } }))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
}

#[tracing::instrument(skip_all, fields(webhook_id))]
async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if !is_json(&headers) {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    let declared_too_large = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|length| length > MAX_WEBHOOK_BODY);
    if declared_too_large {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    let Ok(body) = to_bytes(body, MAX_WEBHOOK_BODY).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let settings = &state.config.webhooks;
    let delivery = match signature::verify(
        &signature::DeliveryHeaders {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
        },
        &body,
        &settings.secrets,
        state.clock.now(),
        settings.tolerance,
    ) {
        Ok(delivery) => delivery,
        Err(refusal) => {
            // The details only in the log and the admin page: the sender (or a forger) learns
            // nothing.
            tracing::warn!(%refusal, "webhook delivery refused");
            state.refused_deliveries.record(
                crate::server::platform::clock::to_unix(state.clock.now()),
                format!("invalid_signature: {refusal}"),
            );
            return error(StatusCode::UNAUTHORIZED, "invalid_signature");
        }
    };
    tracing::Span::current().record("webhook_id", delivery.id.as_str());
    let event = match payload::parse(&body) {
        Ok(event) => event,
        Err(invalid) => {
            tracing::warn!(field = invalid.field, "webhook payload refused");
            state.refused_deliveries.record(
                crate::server::platform::clock::to_unix(state.clock.now()),
                format!("invalid_payload: {}", invalid.field),
            );
            return answer(
                StatusCode::BAD_REQUEST,
                json!({ "error": { "code": "invalid_payload", "field": invalid.field } }),
            );
        }
    };
    let received = tokio::time::timeout(
        ANSWER_BUDGET,
        state
            .installations
            .receive(&delivery.id, &event, state.clock.now()),
    )
    .await
    .unwrap_or_else(|_| Err(crate::server::installations::InstallationError::TimedOut));
    match received {
        Ok(receipt) => {
            if receipt.applied {
                // An uninstall or a replacement recorded a purge: run it now, after the answer.
                state.purger.wake();
            }
            tracing::info!(
                applied = receipt.applied,
                reason = receipt.reason.as_str(),
                "webhook delivery received"
            );
            answer(
                StatusCode::OK,
                json!({ "received": true, "applied": receipt.applied, "reason": receipt.reason.as_str() }),
            )
        }
        Err(failure) => {
            tracing::error!(error = ?failure, "webhook delivery not stored");
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            response
        }
    }
}
