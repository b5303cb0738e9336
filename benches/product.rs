//! Benchmarks: the product against the floor set by the network and the machine, as ratios
//! measured side by side in one run (absolute numbers drift on shared machines; ratios hold).
//! Prints each figure, its target, and whether the target is met. `make bench` runs it.
// Benchmarks time real work: the monotonic clock is what they measure with.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::time::{Duration, Instant};

use qentrah_dev_workspace::Endpoint;
use qentrah_test_support::harness::{spawn_app, spawn_app_with, Options, TestApp};

struct Report {
    rows: Vec<(String, String, String, bool)>,
}

impl Report {
    fn add(&mut self, name: &str, measured: String, target: &str, met: bool) {
        println!(
            "{:<58} {:>22}   target {:<14} {}",
            name,
            measured,
            target,
            if met { "met" } else { "NOT MET" }
        );
        self.rows
            .push((name.to_owned(), measured, target.to_owned(), met));
    }

    /// A figure that explains another (a floor, a share of it): printed, not a target.
    fn explain(&self, name: &str, measured: String, what: &str) {
        println!("{name:<58} {measured:>22}   {what}");
    }
}

/// A `connections` row as the raw read returns it.
type RawRow = (
    String,
    Vec<u8>,
    Option<Vec<u8>>,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    i64,
);

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// The newest access token the Workspace issued: lets the bench call the API directly, as the
/// floor the product is compared with.
fn latest_access_token(app: &TestApp) -> String {
    app.ws
        .control
        .issued_secrets()
        .into_iter()
        .rev()
        .find(|s| s.starts_with("qat_"))
        .unwrap()
}

async fn direct_me(app: &TestApp, http: &reqwest::Client, token: &str, org: &str) -> Duration {
    let started = Instant::now();
    let response = http
        .get(format!(
            "{}/api/v1/partner/organizations/{org}/me",
            app.ws.base_url
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    started.elapsed()
}

async fn dashboard_latency(report: &mut Report) {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    let latency = Duration::from_millis(50);
    for endpoint in [Endpoint::Me, Endpoint::Clients, Endpoint::Properties] {
        app.ws.control.set_latency(endpoint, latency);
    }
    let token = latest_access_token(&app);
    let http = reqwest::Client::new();
    // Warm both paths (connections, caches).
    for _ in 0..3 {
        direct_me(&app, &http, &token, "org_acme").await;
        assert_eq!(app.server_fn(&app.client, "dashboard").await.0, 200);
    }
    let (mut product, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        floor.push(direct_me(&app, &http, &token, "org_acme").await);
        let started = Instant::now();
        assert_eq!(app.server_fn(&app.client, "dashboard").await.0, 200);
        product.push(started.elapsed());
    }
    let p50 = ratio(percentile(&mut product, 0.5), percentile(&mut floor, 0.5));
    let p95 = ratio(percentile(&mut product, 0.95), percentile(&mut floor, 0.95));
    report.add(
        "dashboard (me+clients+properties, 50 ms each) p50 ÷ one call",
        format!("{p50:.2}×"),
        "≤ 1.10×",
        p50 <= 1.10,
    );
    report.add(
        "dashboard p95 ÷ one call p95",
        format!("{p95:.2}×"),
        "≤ 1.25×",
        p95 <= 1.25,
    );
}

async fn refresh_under_contention(report: &mut Report) {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    let latency = Duration::from_millis(50);
    app.ws.control.set_latency(Endpoint::Token, latency);
    app.ws.control.set_latency(Endpoint::Me, latency);
    let token = latest_access_token(&app);
    let http = reqwest::Client::new();
    // The floor: one token call and one API call, back to back.
    let mut floor = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let _ = http
            .post(format!("{}/oauth/token", app.ws.base_url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "x"),
                ("refresh_token", "none"),
            ])
            .send()
            .await
            .unwrap();
        direct_me(&app, &http, &token, "org_acme").await;
        floor.push(started.elapsed());
    }
    let floor_p95 = percentile(&mut floor, 0.95);

    app.clock.advance(Duration::from_secs(3600));
    app.ws.control.expire_access_tokens("org_acme");
    let before = app.ws.control.counters().refresh_grants;
    let calls = (0..50).map(|_| async {
        let started = Instant::now();
        let (status, _) = app.server_fn(&app.client, "organization_overview").await;
        (status, started.elapsed())
    });
    let results = futures::future::join_all(calls).await;
    let failures = results.iter().filter(|(s, _)| *s != 200).count();
    let mut times: Vec<Duration> = results.iter().map(|(_, t)| *t).collect();
    let refreshes = app.ws.control.counters().refresh_grants - before;
    let p95 = ratio(percentile(&mut times, 0.95), floor_p95);
    report.add(
        "50 concurrent requests at expiry: refresh grants",
        refreshes.to_string(),
        "exactly 1",
        refreshes == 1,
    );
    report.add(
        "50 concurrent requests at expiry: failures",
        failures.to_string(),
        "0",
        failures == 0,
    );
    report.add(
        "… p95 ÷ (token call + API call)",
        format!("{p95:.2}×"),
        "≤ 1.30×",
        p95 <= 1.30,
    );
}

async fn vault_cost(report: &mut Report) {
    use qentrah_connect::server::connections::{
        AccessToken, ConnectionKey, ConnectionStore, RefreshToken, TokenSet,
    };
    use qentrah_connect::server::ids::{OrganizationId, ProviderId};
    use qentrah_connect::server::platform::config::{DatabaseUrl, SessionSecret, VaultKeys};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let db = qentrah_connect::server::platform::db::connect(&DatabaseUrl::parse(&url).unwrap())
        .await
        .unwrap();
    let keyring = VaultKeys::default().keyring(&SessionSecret::parse("b".repeat(40)).unwrap());
    let store = ConnectionStore::new(db.clone(), Arc::new(keyring));
    let qentrah_connect::server::platform::db::Db::Sqlite(db) = db else {
        panic!("the vault bench runs on SQLite")
    };
    let key = ConnectionKey::new(
        &ProviderId::qentrah(),
        &OrganizationId::parse("org_bench").unwrap(),
        "http://ws/api/v1/partner",
    );
    let tokens = TokenSet {
        access_token: AccessToken::new(format!("qat_{}", "a".repeat(43))),
        refresh_token: Some(RefreshToken::new(format!("qrt_{}", "r".repeat(43)))),
        expires_in: Some(Duration::from_secs(3600)),
        scopes: None,
        client_id: "partners_client".to_owned(),
        organization_id: OrganizationId::parse("org_bench"),
    };
    let now = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    store
        .save_connected(&key, &tokens, &["client:read".into()], now)
        .await
        .unwrap();
    // The raw queries work on a row of their own, of the same size.
    let raw_key = ConnectionKey::new(
        &ProviderId::qentrah(),
        &OrganizationId::parse("org_raw").unwrap(),
        "http://ws/api/v1/partner",
    );
    store
        .save_connected(&raw_key, &tokens, &["client:read".into()], now)
        .await
        .unwrap();
    let blob = vec![7u8; 87];
    let rounds = 2_000;
    // On SQLite the refresh lease holds no lock (one instance owns the file): take it once, so
    // the write measured is the sealed compare-and-swap UPDATE alone.
    let (mut lease, connection) = store
        .lease_for_refresh(&key, Duration::from_secs(5))
        .await
        .unwrap();
    let mut generation = connection.unwrap().info.generation;
    let mut raw_generation = store.info(&raw_key).await.unwrap().unwrap().generation;

    // Interleaved in small batches so drift hits both alike; the ratio is the median of the
    // batches' ratios, which a burst of load on this shared machine moves far less than a sum.
    let (batches, per_batch) = (40, rounds / 20);
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for _ in 0..batches {
        let (mut vault_read, mut raw_read, mut vault_write, mut raw_write) = (
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        );
        for round in 0..per_batch {
            // ABBA: each kind goes first in every other round, so whatever the first statement
            // after a write pays (the WAL, the page cache) falls on both alike.
            let order: [bool; 2] = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for vault in order {
                let t = Instant::now();
                if vault {
                    // What a request reads: the facts and the access token (the refresh token
                    // stays sealed until a refresh needs it).
                    store.access(&key).await.unwrap().unwrap();
                    vault_read += t.elapsed();
                } else {
                    let _row: RawRow = sqlx::query_as(
                        "SELECT key_id, access_token, refresh_token, access_expires_at, scopes, status, connected_at, refreshed_at, generation FROM connections WHERE provider = $1 AND organization_id = $2 AND resource = $3",
                    )
                    .bind(raw_key.provider()).bind(raw_key.organization_id().as_str()).bind(raw_key.resource())
                    .fetch_one(&db).await.unwrap();
                    raw_read += t.elapsed();
                }
            }
            for vault in order {
                let t = Instant::now();
                if vault {
                    generation = store
                        .save_refreshed(&mut lease, &key, generation, None, &tokens, now)
                        .await
                        .unwrap()
                        .unwrap();
                    vault_write += t.elapsed();
                } else {
                    let (next,): (i64,) = sqlx::query_as("UPDATE connections SET key_id = $1, access_token = $2, refresh_token = $3, access_expires_at = $4, refreshed_at = $5, updated_at = $5, status = 'active', scopes = COALESCE($6, scopes), generation = generation + 1 WHERE provider = $7 AND organization_id = $8 AND resource = $9 AND generation = $10 RETURNING generation")
                        .bind("k").bind(&blob).bind(&blob).bind(1_i64).bind(1_i64).bind(None::<String>)
                        .bind(raw_key.provider()).bind(raw_key.organization_id().as_str()).bind(raw_key.resource())
                        .bind(raw_generation)
                        .fetch_one(&db).await.unwrap();
                    raw_generation = next;
                    raw_write += t.elapsed();
                }
            }
        }
        reads.push(ratio(vault_read, raw_read));
        writes.push(ratio(vault_write, raw_write));
    }
    lease.release().await.unwrap();
    let median = |ratios: &mut Vec<f64>| {
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
    };
    let read = median(&mut reads);
    let write = median(&mut writes);
    report.add(
        "vault read ÷ raw row read",
        format!("{read:.2}×"),
        "≤ 1.10×",
        read <= 1.10,
    );
    report.add(
        "vault write ÷ raw row write",
        format!("{write:.2}×"),
        "≤ 1.20×",
        write <= 1.20,
    );
}

async fn upstream_connections_and_timeouts(report: &mut Report) {
    let app = spawn_app_with(Options {
        http_timeout_ms: Some("500"),
        ..Options::default()
    })
    .await;
    app.connect(&app.client, "org_acme").await;
    for _ in 0..200 {
        assert_eq!(
            app.server_fn(&app.client, "organization_overview").await.0,
            200
        );
    }
    let counters = app.ws.control.counters();
    let per_request =
        counters.partner_api_connections as f64 / counters.partner_api_requests as f64;
    report.add(
        "new TCP connections to the Workspace ÷ API requests",
        format!(
            "{per_request:.3} ({}/{})",
            counters.partner_api_connections, counters.partner_api_requests
        ),
        "≤ 0.01",
        per_request <= 0.01,
    );

    app.ws
        .control
        .set_latency(Endpoint::Me, Duration::from_secs(5));
    let mut worst: f64 = 0.0;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _) = app.server_fn(&app.client, "organization_overview").await;
        assert_eq!(status, 503);
        let r = ratio(started.elapsed(), Duration::from_millis(500));
        worst = worst.max(r);
        best = best.min(r);
    }
    report.add(
        "a 500 ms timeout fires after (× its value)",
        format!("{best:.2}–{worst:.2}×"),
        "1.0–1.1×",
        best >= 1.0 && worst <= 1.1,
    );
}

/// Requests per second for `path` over one keep-alive connection, `n` in a row.
async fn throughput(http: &reqwest::Client, url: &str, n: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// A bare axum server answering `path` with `body`, as the floor a page is compared with.
async fn bare_server(path: &'static str, body: String) -> String {
    let bare = axum::Router::new().route(
        path,
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "text/html; charset=utf-8")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, bare).await });
    url
}

/// The app's pages served by leptos_axum alone: its router and the app's shell, none of the
/// app's layers. Returns its base URL.
async fn leptos_only_server() -> String {
    use leptos_axum::LeptosRoutes;
    let options = leptos::config::get_configuration(Some(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/Leptos.toml"
    )))
    .unwrap()
    .leptos_options;
    let routes = leptos_axum::generate_route_list(qentrah_connect::app::App);
    let shell_options = options.clone();
    let router = axum::Router::new()
        .leptos_routes(&options, routes, move || {
            qentrah_connect::app::shell(shell_options.clone())
        })
        .with_state(options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// Throughput of `url` in `client` ÷ throughput of a bare axum server sending the same bytes,
/// interleaved in halves so drift hits both alike.
async fn throughput_ratio(client: &reqwest::Client, url: &str, path: &'static str) -> f64 {
    let page = client.get(url).send().await.unwrap().text().await.unwrap();
    let bare_url = bare_server(path, page).await;
    // The same client for both (cookie jar and all), so only the servers differ.
    let n = 1_500;
    let (mut product, mut plain) = (0.0, 0.0);
    for _ in 0..2 {
        product += throughput(client, url, n / 2).await;
        plain += throughput(client, &bare_url, n / 2).await;
    }
    product / plain
}

async fn server_render_cost(report: &mut Report) {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    // `/connection` renders from data in hand (the session and the vault), no Workspace call.
    let r = throughput_ratio(&app.client, &app.url("/connection"), "/connection").await;
    report.add(
        "server render from data in hand: throughput ÷ bare axum",
        format!("{r:.2}×"),
        "≥ 0.5×",
        r >= 0.5,
    );
    // The same app on a page with no session, no database and no Workspace behind it: what
    // `/connection` loses beyond this is our data path.
    let stranger = app.new_browser();
    let no_data = throughput_ratio(
        &stranger,
        &app.url("/connect/failed?reason=access_denied"),
        "/connect/failed",
    )
    .await;
    report.explain(
        "  the app on a page with no data (`/connect/failed`)",
        format!("{no_data:.2}×"),
        "our layers + Leptos",
    );
    // And the framework's floor: that page from a router with nothing of ours around it (no
    // session, security headers, request ids or tracing), only leptos_axum and the app's shell.
    let bare_leptos = leptos_only_server().await;
    let floor = throughput_ratio(
        &reqwest::Client::new(),
        &format!("{bare_leptos}/connect/failed?reason=access_denied"),
        "/connect/failed",
    )
    .await;
    report.explain(
        "  Leptos alone, the same page, no layers of ours",
        format!("{floor:.2}×"),
        "the framework's floor",
    );
}

/// The hydrate bundle as the app serves it to a browser that accepts brotli: the bytes on the
/// wire (release builds carry precompressed `.br` files beside each asset).
async fn bundle_size(report: &mut Report) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/site/pkg");
    let Ok(entries) = std::fs::read_dir(dir) else {
        report.add(
            "hydrate bundle (wasm + js) over the wire, brotli",
            "no release build".into(),
            "≤ 180 KB",
            false,
        );
        return;
    };
    let app = spawn_app().await;
    let mut on_wire = 0usize;
    let mut encodings = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".wasm") || name.ends_with(".js")) {
            continue;
        }
        // reqwest here has no decompression: the body is what crossed the wire.
        let response = app
            .client
            .get(app.url(&format!("/pkg/{name}")))
            .header("accept-encoding", "br, gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        encodings.push(
            response
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
                .to_owned(),
        );
        on_wire += response.bytes().await.unwrap().len();
    }
    encodings.sort();
    encodings.dedup();
    let kb = on_wire as f64 / 1000.0;
    report.add(
        "hydrate bundle (wasm + js) over the wire, brotli",
        format!("{kb:.0} KB ({})", encodings.join(", ")),
        "≤ 180 KB",
        kb <= 180.0 && encodings == ["br"],
    );
}

/// `requests` GETs of the home page from 8 concurrent clients.
async fn load(http: &reqwest::Client, base: &str, requests: usize) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let http = http.clone();
            let url = format!("{base}/");
            tokio::spawn(async move {
                for _ in 0..requests / 8 {
                    http.get(&url).send().await.unwrap().bytes().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn memory(report: &mut Report) {
    let bin = std::env::var("APP_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/release/qentrah-connect"
        )
        .to_owned()
    });
    if !std::path::Path::new(&bin).exists() {
        report.add(
            "idle RSS after warm-up",
            "no release binary".into(),
            "≤ 25 MB",
            false,
        );
        return;
    }
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(&bin)
        .env_clear()
        .env("QENTRAH_WORKSPACE_API_URL", "http://127.0.0.1:9")
        .env("QENTRAH_CLIENT_ID", "bench")
        .env(
            "PARTNER_APP_URL",
            format!("http://127.0.0.1:{}", addr.port()),
        )
        .env(
            "SESSION_SECRET",
            "benchmark-session-secret-0123456789abcdef",
        )
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("m.db").display()),
        )
        .env("LEPTOS_SITE_ADDR", addr.to_string())
        .env("RUST_LOG", "error")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for _ in 0..1_000 {
        http.get(format!("{base}/"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    let idle = rss_kb(pid);
    report.add(
        "idle RSS after warm-up",
        format!("{:.1} MB", idle as f64 / 1024.0),
        "≤ 25 MB",
        idle <= 25 * 1024,
    );

    // Sessions live in the database, not in memory: 2,000 new sessions (flow starts).
    let before = rss_kb(pid);
    for _ in 0..2_000 {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        browser
            .get(format!("{base}/api/auth/qentrah/start"))
            .send()
            .await
            .unwrap();
    }
    let per_session = (rss_kb(pid).saturating_sub(before)) as f64 * 1024.0 / 2_000.0;
    report.add(
        "memory per stored session",
        format!("{per_session:.0} B"),
        "≤ 1 KB",
        per_session <= 1024.0,
    );

    // Warm up with the same concurrency as the measured load: every worker thread and its
    // allocator arena in use before the baseline, so growth means memory kept, not threads woken.
    load(&http, &base, 10_000).await;
    let start = rss_kb(pid);
    load(&http, &base, 100_000).await;
    let growth = (rss_kb(pid) as f64 - start as f64) / start as f64 * 100.0;
    report.add(
        "RSS growth after 100k requests",
        format!("{growth:.1} %"),
        "≤ 5 %",
        growth <= 5.0,
    );
    child.kill().await.ok();
}

/// One client per sender address (127.0.1.k): the webhook route's rate limit is per sender
/// address, as a Workspace's few sending hosts meet it, so a benchmark that wants more than
/// 600 deliveries a minute sends from many.
fn senders(count: u8) -> Vec<reqwest::Client> {
    (1..=count)
        .map(|k| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 1, k]))
                .build()
                .unwrap()
        })
        .collect()
}

/// A signed `app.installed` for a new organization: what the route verifies, dedupes, seals and
/// commits.
fn signed_install(n: usize) -> (String, String, String, String) {
    use qentrah_connect::server::installations::signature::sign;
    use qentrah_connect::server::platform::config::WebhookSecret;
    let secret = WebhookSecret::parse(qentrah_dev_workspace::DEV_WEBHOOK_SECRET).unwrap();
    let id = format!("msg_bench_{n}");
    let body = serde_json::json!({
        "type": "app.installed",
        "timestamp": "2026-12-01T10:00:00Z",
        "data": {
            "organizationId": format!("org_bench_{n}"),
            "installationId": format!("inst_bench_{n}"),
            "clientId": format!("app_bench_{n}"),
            "clientSecret": format!("bench-client-secret-{n:08}-0123456789"),
        }
    })
    .to_string();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let signature = sign(&secret, &id, timestamp.parse().unwrap(), body.as_bytes());
    (id, timestamp, signature, body)
}

/// Posts delivery `n` to `url`; returns how long the answer took.
async fn post_delivery(http: &reqwest::Client, url: &str, n: usize) -> Duration {
    let (id, timestamp, signature, body) = signed_install(n);
    let started = Instant::now();
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    response.bytes().await.unwrap();
    started.elapsed()
}

/// A bare axum handler doing one insert into the same kind of database (the app's pool and
/// migrations on a file of its own): the floor a delivery is compared with.
async fn bare_insert_server() -> (String, tempfile::TempDir) {
    use qentrah_connect::server::platform::config::DatabaseUrl;
    use qentrah_connect::server::platform::db::{connect, Db};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bare.db").display());
    let db = connect(&DatabaseUrl::parse(&url).unwrap()).await.unwrap();
    let Db::Sqlite(pool) = db else { unreachable!() };
    let router = axum::Router::new().route(
        "/bare",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, _body: axum::body::Bytes| {
                let pool = pool.clone();
                async move {
                    let id = headers["webhook-id"].to_str().unwrap().to_owned();
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (webhook_id, received_at) VALUES ($1, 0)",
                    )
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
                    axum::Json(serde_json::json!({ "received": true }))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/bare", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, dir)
}

/// Deliveries per second, one after another, spread over `clients` (each keeps its connection).
async fn delivery_rate(clients: &[reqwest::Client], url: &str, from: usize, n: usize) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        post_delivery(&clients[i % clients.len()], url, from + i).await;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Each answer's latency with `senders` sending at once, `each` deliveries apiece.
async fn concurrent_latencies(
    clients: &[reqwest::Client],
    url: &str,
    from: usize,
    each: usize,
) -> Vec<Duration> {
    let sending = clients.iter().enumerate().map(|(k, client)| async move {
        let mut latencies = Vec::with_capacity(each);
        for i in 0..each {
            latencies.push(post_delivery(client, url, from + k * each + i).await);
        }
        latencies
    });
    futures::future::join_all(sending)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn webhook_deliveries(report: &mut Report) {
    let app = spawn_app_with(Options {
        env: vec![(
            "QENTRAH_WEBHOOK_SECRETS",
            qentrah_dev_workspace::DEV_WEBHOOK_SECRET.to_owned(),
        )],
        ..Options::default()
    })
    .await;
    let url = app.url("/api/webhooks/qentrah");
    let (bare, _bare_dir) = bare_insert_server().await;
    let clients = senders(50);
    // Interleaved in halves so drift hits both alike; every delivery a new organization.
    let n = 400;
    let (mut product, mut floor) = (0.0, 0.0);
    for half in 0..2 {
        product += delivery_rate(&clients, &url, half * n, n / 2).await;
        floor += delivery_rate(&clients, &bare, 10_000 + half * n, n / 2).await;
    }
    let r = product / floor;
    report.add(
        "webhook deliveries/s (verify + dedupe + seal + commit) ÷ bare insert",
        format!("{r:.2}× ({:.0}/s)", product / 2.0),
        "≥ 0.25×",
        r >= 0.25,
    );
    let mut latencies = concurrent_latencies(&clients, &url, 20_000, 10).await;
    let p99 = percentile(&mut latencies, 0.99);
    let mut bare_latencies = concurrent_latencies(&clients, &bare, 30_000, 10).await;
    let bare_p99 = percentile(&mut bare_latencies, 0.99);
    report.add(
        "webhook answer p99, 50 concurrent senders",
        format!("{} ms", p99.as_millis()),
        "≤ 1000 ms",
        p99 <= Duration::from_secs(1),
    );
    report.explain(
        "  the bare insert's p99, the same senders",
        format!("{} ms", bare_p99.as_millis()),
        "the floor",
    );
}

fn sso_options() -> Options {
    Options {
        env: vec![
            (
                "QENTRAH_WEBHOOK_SECRETS",
                qentrah_dev_workspace::DEV_WEBHOOK_SECRET.to_owned(),
            ),
            ("AUTH_MODE", "sso".to_owned()),
        ],
        ..Options::default()
    }
}

/// Installs the app for `organization_id` and waits until the app has applied the delivery;
/// returns the delivered client's id and secret.
async fn install_for(app: &TestApp, organization_id: &str) -> (String, String) {
    let (installation, id) = app.ws.control.install(organization_id, None).unwrap();
    let delivery = app.ws.control.delivered(&id).await.unwrap();
    assert_eq!(delivery.state, "delivered", "{delivery:?}");
    (installation.client_id, delivery.client_secret.unwrap())
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// "Open App" for `sub` in a new browser, from the link to the signed-in page; returns the
/// browser and how long it took.
async fn open_app_once(app: &TestApp, sub: &str) -> (reqwest::Client, Duration) {
    let browser = app.new_browser();
    let started = Instant::now();
    let done = app.open_app(&browser, "org_acme", sub, None).await;
    assert_eq!(done.headers()["location"], "/");
    let page = browser.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    page.bytes().await.unwrap();
    (browser, started.elapsed())
}

/// The Workspace round trips a sign-in needs, made directly: the authorization request (the
/// Workspace's session approves it straight through), the code exchange, UserInfo.
async fn workspace_round_trips(
    app: &TestApp,
    client: &(String, String),
    ws_session: &str,
) -> Duration {
    use base64::Engine;
    use sha2::Digest;
    let http = no_redirects();
    let verifier = "bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let redirect_uri = app.url("/auth/callback");
    let authorize = url::Url::parse_with_params(
        &format!("{}/oauth/authorize", app.ws.base_url),
        [
            ("response_type", "code"),
            ("client_id", client.0.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", "openid profile email organization"),
            ("state", "bench-state"),
            ("nonce", "bench-nonce"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let started = Instant::now();
    let answer = http
        .get(authorize)
        .header("cookie", format!("qws_session={ws_session}"))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: serde_json::Value = http
        .post(format!("{}/oauth/token", app.ws.base_url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier),
            ("client_id", client.0.as_str()),
            ("client_secret", client.1.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let info = http
        .get(format!("{}/oauth/userinfo", app.ws.base_url))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
    info.bytes().await.unwrap();
    started.elapsed()
}

async fn open_app_latency(report: &mut Report) {
    let app = spawn_app_with(sso_options()).await;
    let client = install_for(&app, "org_acme").await;
    let ws_session = app.ws.control.workspace_session("usr_milo").unwrap();
    let latency = Duration::from_millis(50);
    for endpoint in [Endpoint::Authorize, Endpoint::Token, Endpoint::UserInfo] {
        app.ws.control.set_latency(endpoint, latency);
    }
    // Warm both (discovery and keys are fetched once, then cached).
    for _ in 0..2 {
        open_app_once(&app, "usr_milo").await;
        workspace_round_trips(&app, &client, &ws_session).await;
    }
    let (mut product, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        floor.push(workspace_round_trips(&app, &client, &ws_session).await);
        product.push(open_app_once(&app, "usr_milo").await.1);
    }
    let p50 = ratio(percentile(&mut product, 0.5), percentile(&mut floor, 0.5));
    report.add(
        "Open App → signed-in page p50 ÷ its Workspace round trips",
        format!("{p50:.2}×"),
        "≤ 1.20×",
        p50 <= 1.20,
    );
    report.explain(
        "  the three round trips (authorize, token, UserInfo; 50 ms each)",
        format!("{} ms", percentile(&mut floor, 0.5).as_millis()),
        "the floor",
    );
}

/// Requests per second of `path` in `browser`, `n` in a row.
async fn page_rate(app: &TestApp, browser: &reqwest::Client, path: &str, n: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        let page = browser.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        page.bytes().await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn guard_cost(report: &mut Report) {
    // The same member page with the same data: in connect mode (the browser's own connection)
    // and in sso mode (a signed-in member, no re-check due, the organization's connection).
    let connect = spawn_app().await;
    connect.connect(&connect.client, "org_acme").await;
    let sso = spawn_app_with(sso_options()).await;
    install_for(&sso, "org_acme").await;
    let (admin, _) = open_app_once(&sso, "usr_ada").await;
    let authorize = sso.start_flow(&admin, None).await;
    let callback = sso.consent(&authorize, "org_acme", "approve").await;
    sso.finish(&admin, &callback).await;
    let (member, _) = open_app_once(&sso, "usr_milo").await;
    // Interleaved short batches, the median of their ratios: drift and a neighbour's burst hit
    // one batch pair, not the figure.
    page_rate(&connect, &connect.client, "/organization", 30).await;
    page_rate(&sso, &member, "/organization", 30).await;
    let (mut ratios, mut plain, mut guarded) = (Vec::new(), 0.0, 0.0);
    for _ in 0..31 {
        let p = page_rate(&connect, &connect.client, "/organization", 30).await;
        let g = page_rate(&sso, &member, "/organization", 30).await;
        ratios.push(p / g);
        plain += p / 31.0;
        guarded += g / 31.0;
    }
    ratios.sort_by(f64::total_cmp);
    let cost = ratios[ratios.len() / 2];
    report.explain(
        "  pages per second, connect mode and sso (means)",
        format!("{plain:.0} / {guarded:.0}"),
        "one keep-alive client each",
    );
    report.add(
        "member page, sso (guard, no re-check due) ÷ connect mode, median of 31",
        format!("{cost:.3}×"),
        "≤ 1.05×",
        cost <= 1.05,
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; a filter argument is not supported.
    let started = Instant::now();
    let mut report = Report { rows: Vec::new() };
    println!(
        "{:<58} {:>22}   {:<21} result",
        "measure", "measured", "target"
    );
    // BENCH_ONLY=name,name runs those measures alone (e.g. `BENCH_ONLY=open_app,guard`).
    let only = std::env::var("BENCH_ONLY").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|n| n.trim() == name))
    };
    if wanted("dashboard") {
        dashboard_latency(&mut report).await;
    }
    if wanted("refresh") {
        refresh_under_contention(&mut report).await;
    }
    if wanted("vault") {
        vault_cost(&mut report).await;
    }
    if wanted("render") {
        server_render_cost(&mut report).await;
    }
    if wanted("webhooks") {
        webhook_deliveries(&mut report).await;
    }
    if wanted("open_app") {
        open_app_latency(&mut report).await;
    }
    if wanted("guard") {
        guard_cost(&mut report).await;
    }
    if wanted("upstream") {
        upstream_connections_and_timeouts(&mut report).await;
    }
    if wanted("bundle") {
        bundle_size(&mut report).await;
    }
    if wanted("memory") {
        memory(&mut report).await;
    }
    let met = report.rows.iter().filter(|r| r.3).count();
    println!(
        "\n{met} of {} targets met in {:.0} s (first byte → hydrated follows, from end2end/bench/hydration.mjs)",
        report.rows.len(),
        started.elapsed().as_secs_f64()
    );
}
