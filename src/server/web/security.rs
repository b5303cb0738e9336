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

use crate::api::AppError;
use crate::server::state::AppState;

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
/// fails inside Leptos before our code runs, and Leptos answers 500 with no way for us to set
/// the status. That is the caller's mistake: answer 400. Such a response is recognised by its
/// body, the encoded [`AppError::Request`] that `FromServerFnError` makes of every framework
/// error (a unit test pins the two together); the status is [`AppError::status`]'s.
pub async fn caller_errors_are_4xx(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    if bytes == framework_error_body() {
        parts.status = AppError::Request.status();
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// What Leptos sends for a server function call that failed before reaching our code.
fn framework_error_body() -> axum::body::Bytes {
    use leptos::server_fn::error::FromServerFnError;
    AppError::Request.ser()
}

/// How many client buckets a limiter tracks at most: past it, the oldest window is forgotten.
pub const MAX_TRACKED_CLIENTS: usize = 100_000;

/// A fixed-window counter per client: an IPv4 address, or an IPv6 /64 (one subscriber's
/// allocation, RFC 6177: keying on the full address would give each client 2^64 buckets). Its
/// memory is bounded: ended windows are swept once a window, and past
/// [`MAX_TRACKED_CLIENTS`] the oldest window is evicted, so no request scans the whole map.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    capacity: usize,
    buckets: Arc<Mutex<Buckets>>,
}

#[derive(Debug, Default)]
struct Buckets {
    counts: HashMap<IpAddr, (Instant, u32)>,
    /// Window starts in the order they began; an entry whose start no longer matches the map
    /// is stale and skipped.
    order: std::collections::VecDeque<(IpAddr, Instant)>,
    last_sweep: Option<Instant>,
}

/// The bucket an address counts in: IPv4 (also when mapped into IPv6) as it is, IPv6 by /64.
pub fn rate_limit_bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::with_capacity(limit, window, MAX_TRACKED_CLIENTS)
    }

    pub fn with_capacity(limit: u32, window: Duration, capacity: usize) -> Self {
        Self {
            limit,
            window,
            capacity: capacity.max(1),
            buckets: Arc::default(),
        }
    }

    /// How many clients are tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counts
            .len()
    }

    /// `Ok` if the address may proceed, otherwise how long until it may.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = rate_limit_bucket(address);
        let window = self.window;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let Buckets {
            counts,
            order,
            last_sweep,
        } = &mut *buckets;
        if last_sweep.is_none_or(|at| now.duration_since(at) >= window) {
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
            order.retain(|(key, start)| counts.get(key).is_some_and(|(s, _)| s == start));
            *last_sweep = Some(now);
        }
        if !counts.contains_key(&key) && counts.len() >= self.capacity {
            while let Some((oldest, start)) = order.pop_front() {
                if counts.get(&oldest).is_some_and(|(s, _)| *s == start) {
                    counts.remove(&oldest);
                    break;
                }
            }
        }
        let entry = counts.entry(key).or_insert((now, 0));
        if entry.1 == 0 || now.duration_since(entry.0) >= window {
            *entry = (now, 0);
            order.push_back((key, now));
        }
        if entry.1 >= self.limit {
            return Err(window.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        if order.len() > 2 * self.capacity {
            order.retain(|(key, start)| counts.get(key).is_some_and(|(s, _)| s == start));
        }
        Ok(())
    }
}

/// Every response that depends on the session (pages and server-function answers, which carry
/// organization data or a connection's state) is `private, no-store` and varies by cookie, so
/// no shared cache keeps one person's page for another and no browser cache keeps it after a
/// sign-out (RFC 9111 §5.2.2.3, §5.2.2.7). Static assets (the wasm, CSS, images) keep their
/// caching; a handler's own `Cache-Control` is kept.
pub async fn no_store_session_responses(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let session_dependent = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| {
            kind.starts_with("text/html")
                || kind.starts_with("application/json")
                || kind.starts_with("application/x-www-form-urlencoded")
                || kind.starts_with("text/plain")
        });
    if session_dependent {
        let headers = response.headers_mut();
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("private, no-store"));
        headers.append(header::VARY, HeaderValue::from_static("Cookie"));
    }
    response
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

/// The client address a request is rate-limited by, or `None` when it came in without a peer
/// address (only in-process test requests do).
fn limited_client(state: &AppState, request: &Request) -> Option<IpAddr> {
    let ConnectInfo(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()?;
    Some(client_address(
        peer.ip(),
        request.headers(),
        state.config.trusted_proxy_hops,
    ))
}

/// Runs `request` if `limiter` allows its client address another request now; otherwise
/// answers 429 with `Retry-After` (and `no-store`) and the surface's own body.
async fn within_limit<B: IntoResponse>(
    state: &AppState,
    limiter: &RateLimiter,
    surface: &'static str,
    request: Request,
    next: Next,
    refusal: impl FnOnce(&str) -> B,
) -> Response {
    let Some(client) = limited_client(state, &request) else {
        return next.run(request).await;
    };
    match limiter.check(client, state.clock.monotonic()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            tracing::warn!(ip = %client, surface, "rate limit reached");
            let seconds = retry_after.as_secs().max(1).to_string();
            let mut response = refusal(&seconds).into_response();
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            let headers = response.headers_mut();
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds).unwrap_or(HeaderValue::from_static("60")),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

/// Rate-limits the OAuth routes per client address with a clear 429.
pub async fn limit_auth_routes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    within_limit(
        &state,
        &state.auth_rate_limiter,
        "auth",
        request,
        next,
        |seconds| {
            axum::response::Html(format!(
                "<!DOCTYPE html><html lang=\"en\"><title>Too many attempts</title>\
             <h1>Too many connection attempts</h1><p>Wait {seconds} seconds, then \
             <a href=\"/\">try again</a>.</p></html>"
            ))
        },
    )
    .await
}

/// Rate-limits the webhook route per sender address, apart from the OAuth routes' budget: a
/// 429 with `Retry-After` and a JSON body, which a Standard Webhooks sender retries later.
pub async fn limit_webhooks(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    within_limit(
        &state,
        &state.webhook_rate_limiter,
        "webhooks",
        request,
        next,
        |_| axum::Json(serde_json::json!({ "error": { "code": "rate_limited" } })),
    )
    .await
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // A starting instant for the limiter; only differences count.
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    /// The one body [`caller_errors_are_4xx`] rewrites is what Leptos makes of a framework
    /// error, and no other error of ours encodes the same.
    #[test]
    fn framework_errors_are_recognised_by_their_encoded_app_error() {
        use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
        let framework = AppError::from_server_fn_error(ServerFnErrorErr::Args(
            "expected value at line 1".to_owned(),
        ));
        assert_eq!(framework.ser(), framework_error_body());
        assert_eq!(framework.status(), StatusCode::BAD_REQUEST);
        for other in [AppError::Internal, AppError::Retry, AppError::NotConnected] {
            assert_ne!(other.ser(), framework_error_body());
        }
    }

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
    fn ipv6_clients_share_a_bucket_per_slash_64() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limiter.check(a, t0).is_ok());
        assert!(limiter.check(same_64, t0).is_ok());
        assert!(limiter.check(same_64, t0).is_err(), "one /64, one bucket");
        assert!(limiter.check(other_64, t0).is_ok());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(rate_limit_bucket(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn rate_limiter_memory_has_a_hard_cap() {
        let limiter = RateLimiter::with_capacity(5, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let address = IpAddr::from(i.to_be_bytes());
            assert!(limiter
                .check(address, t0 + Duration::from_millis(u64::from(i)))
                .is_ok());
            assert!(limiter.tracked() <= 100);
        }
        // The newest clients are still counted.
        let last = IpAddr::from(9_999u32.to_be_bytes());
        for _ in 0..4 {
            limiter.check(last, t0 + Duration::from_secs(10)).unwrap();
        }
        assert!(limiter.check(last, t0 + Duration::from_secs(10)).is_err());
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
