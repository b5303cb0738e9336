//! Response headers every answer carries, cross-site request refusal, and a per-address rate
//! limit on the OAuth routes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::state::AppState;

/// The page CSP: scripts only from us or carrying this response's nonce (Leptos puts it on its
/// hydration scripts), wasm compilation allowed, no framing, no plugins, forms only to us.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// For everything that is not a page (JSON, files, redirects): nothing may run or frame it.
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the headers every response must carry, keeping a more specific CSP or Referrer-Policy
/// a handler already set (pages set a nonce CSP; OAuth routes set `no-referrer`).
pub async fn security_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    add_security_headers(
        response.headers_mut(),
        state.config.partner_app_url.is_https(),
    );
    response
}

/// The headers themselves; HSTS only over https (RFC 6797 §7.2: not sent over plain http).
pub fn add_security_headers(headers: &mut axum::http::HeaderMap, https: bool) {
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DEFAULT_CSP));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("strict-origin-when-cross-origin"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

/// Whether a request that changes state comes from our own pages.
///
/// Browsers send `Sec-Fetch-Site` and `Origin` on every cross-site POST; a request with neither
/// is not from a browser page, so it carries no ambient cookie risk worth refusing here.
pub fn is_cross_site(method: &Method, headers: &axum::http::HeaderMap, own_origin: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => !origin.eq_ignore_ascii_case(own_origin),
        None => false,
    }
}

/// Refuses state-changing requests from other sites (CSRF), on top of `SameSite=Lax`.
pub async fn refuse_cross_site(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if is_cross_site(
        request.method(),
        request.headers(),
        state.config.partner_app_url.origin(),
    ) {
        tracing::warn!(path = %request.uri().path(), "cross-site request refused");
        return (
            StatusCode::FORBIDDEN,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            axum::Json(serde_json::json!({
                "error": "cross_site_request",
                "message": "This request must come from Qentrah Connect's own pages."
            })),
        )
            .into_response();
    }
    next.run(request).await
}

/// A server function whose arguments could not be decoded (a malformed or non-UTF-8 body)
/// fails inside Leptos before our code runs, and Leptos answers 500. That is the caller's
/// mistake: answer 400. Recognised by the body, the encoded [`crate::api::AppError::Request`]
/// that `FromServerFnError` makes of every such framework error.
pub async fn caller_errors_are_4xx(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    if bytes.as_ref() == b"\"Request\"" {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// A fixed-window counter per client address.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    counts: Arc<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            counts: Arc::default(),
        }
    }

    /// `Ok` if the address may proceed, otherwise how long until it may.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.len() > 100_000 {
            // Bound memory under a flood of addresses: forget windows that have ended.
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = counts.entry(address).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err(self.window.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The address a request came from. Behind `trusted_hops` proxies that each append the address
/// they saw to `X-Forwarded-For`, the client is the entry that many places from the right: the
/// entries left of it were written by the client itself and can be anything. With no trusted
/// proxy, or a header shorter than the chain (a request that bypassed it), or an entry that is
/// not an address, the peer address it is: a client cannot pick its own rate-limit bucket.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted_hops: u8) -> IpAddr {
    if trusted_hops == 0 {
        return peer;
    }
    // An unreadable line would shift the count from the right: trust none of it then.
    let Ok(lines) = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|value| value.to_str())
        .collect::<Result<Vec<&str>, _>>()
    else {
        return peer;
    };
    let entries: Vec<&str> = lines
        .iter()
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .collect();
    entries
        .len()
        .checked_sub(usize::from(trusted_hops))
        .and_then(|index| entries.get(index))
        .and_then(|entry| {
            // Some proxies write the port too: `203.0.113.7:51234`, `[2001:db8::1]:443`.
            entry
                .parse::<IpAddr>()
                .ok()
                .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        })
        .unwrap_or(peer)
}

/// Rate-limits the OAuth routes per client address with a clear 429.
pub async fn limit_auth_routes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    let client = client_address(
        peer.ip(),
        request.headers(),
        state.config.trusted_proxy_hops,
    );
    match state.auth_rate_limiter.check(client, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            tracing::warn!(ip = %client, "auth route rate limit reached");
            let seconds = retry_after.as_secs().max(1).to_string();
            (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    (
                        header::RETRY_AFTER,
                        HeaderValue::from_str(&seconds).unwrap_or(HeaderValue::from_static("60")),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/html; charset=utf-8"),
                    ),
                ],
                format!(
                    "<!DOCTYPE html><html lang=\"en\"><title>Too many attempts</title>\
                     <h1>Too many connection attempts</h1><p>Wait {seconds} seconds, then \
                     <a href=\"/\">try again</a>.</p></html>"
                ),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn cross_site_detection() {
        let own = "http://localhost:3001";
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            map
        };
        let post = Method::POST;
        assert!(!is_cross_site(
            &Method::GET,
            &headers(&[("sec-fetch-site", "cross-site")]),
            own
        ));
        assert!(is_cross_site(
            &post,
            &headers(&[("sec-fetch-site", "cross-site")]),
            own
        ));
        assert!(is_cross_site(
            &post,
            &headers(&[("sec-fetch-site", "same-site")]),
            own
        ));
        assert!(!is_cross_site(
            &post,
            &headers(&[("sec-fetch-site", "same-origin")]),
            own
        ));
        assert!(is_cross_site(
            &post,
            &headers(&[("origin", "https://evil.example")]),
            own
        ));
        assert!(!is_cross_site(&post, &headers(&[("origin", own)]), own));
        assert!(
            !is_cross_site(&post, &headers(&[]), own),
            "not a browser page"
        );
    }

    #[test]
    fn hsts_only_over_https_and_specific_headers_are_kept() {
        let mut https = HeaderMap::new();
        https.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        add_security_headers(&mut https, true);
        assert_eq!(
            https[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000; includeSubDomains"
        );
        assert_eq!(
            https[header::REFERRER_POLICY],
            "no-referrer",
            "a route's own policy wins"
        );
        assert!(https[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        let mut http = HeaderMap::new();
        add_security_headers(&mut http, false);
        assert!(!http.contains_key(header::STRICT_TRANSPORT_SECURITY));
        assert_eq!(http[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn client_address_trusts_only_the_configured_proxies() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let with = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
            }
            headers
        };
        let spoofed = with(&["6.6.6.6, 203.0.113.7"]);
        assert_eq!(client_address(peer, &spoofed, 0), peer, "no proxy trusted");
        assert_eq!(
            client_address(peer, &spoofed, 1),
            "203.0.113.7".parse::<IpAddr>().unwrap(),
            "the load balancer's entry, not the client's own"
        );
        assert_eq!(
            client_address(peer, &with(&["6.6.6.6", "203.0.113.7, 10.0.0.9"]), 2),
            "203.0.113.7".parse::<IpAddr>().unwrap(),
            "two proxies, two headers"
        );
        assert_eq!(client_address(peer, &HeaderMap::new(), 1), peer, "bypassed");
        assert_eq!(client_address(peer, &with(&["garbage"]), 1), peer);
        assert_eq!(
            client_address(peer, &with(&["2001:db8::1"]), 1),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_address(peer, &with(&["6.6.6.6, 203.0.113.7:51234"]), 1),
            "203.0.113.7".parse::<IpAddr>().unwrap(),
            "with a port"
        );
        let mut unreadable = with(&["203.0.113.7"]);
        unreadable.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(
            client_address(peer, &unreadable, 1),
            peer,
            "unreadable line"
        );
    }

    #[test]
    fn rate_limiter_counts_per_address_and_window() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        assert!(limiter.check(a, t0).is_ok());
        assert!(limiter.check(a, t0).is_ok());
        assert!(limiter.check(a, t0).is_err());
        assert!(limiter.check(b, t0).is_ok(), "other addresses unaffected");
        assert!(
            limiter.check(a, t0 + Duration::from_secs(61)).is_ok(),
            "a new window"
        );
    }
}
