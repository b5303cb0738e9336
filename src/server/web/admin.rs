//! `/admin/installations`: the marketplace's installations as an operator sees them (organization,
//! status, times, deliveries, the last refused delivery and why, the uninstall purge), never a
//! secret. A surface of its own: until sign-in with roles exists, it is served to loopback
//! clients only, with no session. Server-rendered HTML, so it reads the same without JavaScript.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::server::installations::InstallationRow;
use crate::server::state::AppState;
use crate::ui::format::format_unix;

pub const INSTALLATIONS_PATH: &str = "/admin/installations";

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(INSTALLATIONS_PATH, get(installations))
        .route_layer(middleware::from_fn_with_state(state.clone(), loopback_only))
}

/// Whether a request is from this machine itself: a loopback peer, with no proxy header. A
/// proxy on this machine makes every request's peer loopback, so a request that passed through
/// one (it says so in `Forwarded` or `X-Forwarded-For`) is not this machine's.
pub fn is_local(peer: IpAddr, headers: &axum::http::HeaderMap) -> bool {
    peer.is_loopback()
        && !headers.contains_key("forwarded")
        && !headers.contains_key("x-forwarded-for")
}

async fn loopback_only(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(_): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if is_local(peer.ip(), request.headers()) {
        return next.run(request).await;
    }
    html(
        StatusCode::FORBIDDEN,
        "Not available here".to_owned(),
        "<p>This page is served only on the machine that runs Qentrah Connect, until sign-in with roles exists.</p>".to_owned(),
    )
}

/// Escapes text for HTML content and attribute values (the admin and sign-in pages).
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn when(at: Option<i64>) -> String {
    at.map(format_unix).unwrap_or_else(|| "—".to_owned())
}

fn html(status: StatusCode, title: String, body: String) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
        ],
        format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>{title}</title><link rel=\"stylesheet\" href=\"/pkg/qentrah-connect.css\"></head>\
             <body><main class=\"container\"><h1>{title}</h1>{body}</main></body></html>"
        ),
    )
        .into_response()
}

fn row(installation: &InstallationRow) -> String {
    let purge = match (
        &installation.status[..],
        installation.purged_at,
        &installation.purge_error,
    ) {
        ("active", _, _) => "—".to_owned(),
        (_, Some(at), _) => format!(
            "done {} (revocation: {})",
            format_unix(at),
            escape(installation.purge_revocation.as_deref().unwrap_or("none"))
        ),
        (_, None, Some(error)) => format!("pending, last attempt failed: {}", escape(error)),
        (_, None, None) if installation.holds_secret => "pending".to_owned(),
        _ => "nothing to purge".to_owned(),
    };
    let refused = match (
        installation.last_refused_at,
        &installation.last_refused_reason,
    ) {
        (Some(at), Some(reason)) => format!("{} — {}", format_unix(at), escape(reason)),
        _ => "—".to_owned(),
    };
    format!(
        "<tr><td><code>{}</code></td><td><code>{}</code></td><td><span class=\"badge {}\">{}</span></td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(&installation.organization_id),
        escape(&installation.client_id),
        if installation.status == "active" { "badge--ok" } else { "badge--warn" },
        escape(&installation.status),
        when(installation.installed_at),
        when(installation.uninstalled_at),
        installation.deliveries,
        refused,
        purge,
    )
}

async fn installations(State(state): State<AppState>) -> Response {
    let installations = match state.installations.list().await {
        Ok(installations) => installations,
        Err(error) => {
            tracing::warn!(error = %crate::server::Causes(&error), "installations unavailable");
            let mut response = html(
                StatusCode::SERVICE_UNAVAILABLE,
                "Installations".to_owned(),
                "<p role=\"alert\">The installations could not be read. Nothing was lost; <a href=\"/admin/installations\">try again</a>.</p>".to_owned(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
    };
    let webhooks = if state.config.webhooks.enabled() {
        "<p>Marketplace webhooks are on: deliveries arrive at <code>/api/webhooks/qentrah</code>.</p>"
    } else {
        "<p class=\"notice notice--warn\">Marketplace webhooks are off: set <code>QENTRAH_WEBHOOK_SECRETS</code> to receive installs.</p>"
    };
    let table = if installations.is_empty() {
        "<p role=\"status\">No installation has been delivered yet.</p>".to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Organization</th><th>Client</th><th>Status</th><th>Installed</th>\
             <th>Uninstalled</th><th>Deliveries</th><th>Last refused delivery</th><th>Purge</th></tr></thead>\
             <tbody>{}</tbody></table>",
            installations.iter().map(row).collect::<String>()
        )
    };
    let refused = state.refused_deliveries.newest_first();
    let refusals = if refused.is_empty() {
        "<p class=\"muted\">None since this instance started.</p>".to_owned()
    } else {
        format!(
            "<ul>{}</ul>",
            refused
                .iter()
                .map(|r| format!("<li>{} — {}</li>", format_unix(r.at), escape(&r.reason)))
                .collect::<String>()
        )
    };
    html(
        StatusCode::OK,
        "Installations".to_owned(),
        format!(
            "{webhooks}{table}<h2>Deliveries refused before they could be attributed</h2>\
             <p class=\"muted\">No valid signature, or an unreadable payload; newest first, kept by this instance.</p>{refusals}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_without_a_proxy_is_local() {
        let none = axum::http::HeaderMap::new();
        let mut forwarded = axum::http::HeaderMap::new();
        forwarded.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        assert!(is_local("127.0.0.1".parse().unwrap(), &none));
        assert!(is_local("::1".parse().unwrap(), &none));
        assert!(!is_local("203.0.113.7".parse().unwrap(), &none));
        assert!(!is_local("127.0.0.1".parse().unwrap(), &forwarded));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
