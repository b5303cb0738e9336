//! Several app instances on one PostgreSQL database behind one load balancer behave as one:
//! any instance serves any request, sessions follow the person, and one refresh at a time per
//! connection across all instances. Skipped with a notice where no PostgreSQL answers, unless
//! `REQUIRE_POSTGRES=1` (CI), which makes that a failure.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use qentrah_connect::server::platform::clock::ManualClock;
use qentrah_dev_workspace::{DevWorkspaceConfig, Endpoint};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{
    app_config, location, start_binary, start_instance, Options, TestApp, TestDatabase,
    TEST_SESSION_SECRET,
};

/// Round-robin over the instances, one TCP connection at a time, skipping an instance that
/// does not accept (as a load balancer's health check would); or pinned to one instance.
#[derive(Clone)]
struct LoadBalancer {
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    /// `usize::MAX`: round robin; otherwise the index of the pinned backend.
    pinned: Arc<AtomicUsize>,
    next: Arc<AtomicUsize>,
    /// Connections forwarded to each backend.
    served: Arc<Mutex<Vec<usize>>>,
}

const ROUND_ROBIN: usize = usize::MAX;

impl LoadBalancer {
    fn start(listener: TcpListener) -> Self {
        let lb = Self {
            backends: Arc::default(),
            pinned: Arc::new(AtomicUsize::new(ROUND_ROBIN)),
            next: Arc::default(),
            served: Arc::default(),
        };
        let accepting = lb.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let lb = accepting.clone();
                tokio::spawn(async move {
                    let Some(mut outbound) = lb.connect().await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        lb
    }

    fn add(&self, backend: SocketAddr) -> usize {
        let mut backends = self.backends.lock().unwrap();
        backends.push(backend);
        self.served.lock().unwrap().push(0);
        backends.len() - 1
    }

    fn pin(&self, index: usize) {
        self.pinned.store(index, Ordering::SeqCst);
    }

    fn round_robin(&self) {
        self.pinned.store(ROUND_ROBIN, Ordering::SeqCst);
    }

    fn served(&self) -> Vec<usize> {
        self.served.lock().unwrap().clone()
    }

    async fn connect(&self) -> Option<TcpStream> {
        let backends = self.backends.lock().unwrap().clone();
        let first = match self.pinned.load(Ordering::SeqCst) {
            ROUND_ROBIN => self.next.fetch_add(1, Ordering::SeqCst),
            pinned => pinned,
        };
        for offset in 0..backends.len() {
            let index = (first + offset) % backends.len();
            if let Ok(stream) = TcpStream::connect(backends[index]).await {
                self.served.lock().unwrap()[index] += 1;
                return Some(stream);
            }
        }
        None
    }
}

/// Two or more instances sharing one PostgreSQL database and the dev Workspace, behind a load
/// balancer whose address is `PARTNER_APP_URL`. `app` talks to the balancer.
struct Cluster {
    app: TestApp,
    lb: LoadBalancer,
}

/// Instances that take a new TCP connection per request, so the balancer spreads them.
fn spreading_browser(lb_addr: SocketAddr, jar: Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        .resolve("localhost", lb_addr)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A cluster of `instances` in-process instances sharing one clock, or `None` (skipped) when
/// no PostgreSQL answers.
async fn cluster(instances: usize) -> Option<Cluster> {
    cluster_with(instances, &Options::default()).await
}

/// [`cluster`], every instance configured with `options`.
async fn cluster_with(instances: usize, options: &Options) -> Option<Cluster> {
    let database = TestDatabase::postgres_or_skip().await?;
    let lb_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb_addr = lb_listener.local_addr().unwrap();
    let origin = format!("http://localhost:{}", lb_addr.port());
    let lb = LoadBalancer::start(lb_listener);
    let ws = qentrah_dev_workspace::start(DevWorkspaceConfig::for_tests(&origin))
        .await
        .unwrap();
    #[allow(clippy::disallowed_methods)]
    let clock = ManualClock::new(SystemTime::now());
    for _ in 0..instances {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        lb.add(listener.local_addr().unwrap());
        let config = app_config(&ws, &origin, &database.url, options);
        start_instance(config, &clock, listener).await;
    }
    let mut app = TestApp::external(origin, lb_addr, ws, database);
    app.clock = clock;
    app.client = spreading_browser(lb_addr, Arc::default());
    Some(Cluster { app, lb })
}

#[tokio::test]
async fn a_session_and_a_flow_move_freely_between_instances() {
    let Some(Cluster { app, lb }) = cluster(2).await else {
        return;
    };
    // The flow starts on one instance and comes back to the other.
    lb.pin(0);
    let authorize = app.start_flow(&app.client, Some("/clients")).await;
    let callback = app.consent(&authorize, "org_acme", "approve").await;
    lb.pin(1);
    let response = app.finish(&app.client, &callback).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/clients");

    // The session made there is good on either.
    for instance in [0, 1] {
        lb.pin(instance);
        let (status, view) = app.server_fn(&app.client, "connection_status").await;
        assert_eq!(
            (status, view["organization_id"].as_str()),
            (200, Some("org_acme")),
            "instance {instance}"
        );
        assert_eq!(app.server_fn(&app.client, "clients").await.0, 200);
    }

    // Disconnecting on one is seen by the other.
    lb.pin(0);
    assert_eq!(app.server_fn(&app.client, "disconnect").await.0, 200);
    lb.pin(1);
    let (status, error) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!((status, error), (401, json!("NotConnected")));
    let served = lb.served();
    assert!(served.iter().all(|&n| n >= 3), "both served: {served:?}");
}

/// Fifty requests at once, spread over two instances, when the access token has expired: one
/// refresh grant at the Workspace, every request answered. Then the same when the Workspace
/// rejects the token before the app expected it to (401, refresh after rejection).
#[tokio::test]
async fn fifty_concurrent_requests_across_instances_refresh_once() {
    let Some(Cluster { app, lb }) = cluster(2).await else {
        return;
    };
    lb.pin(0);
    app.connect(&app.client, "org_acme").await;
    lb.round_robin();
    // Each token call takes a while, so that every request arrives during the refresh.
    app.ws
        .control
        .set_latency(Endpoint::Token, Duration::from_millis(300));

    for phase in ["expired on the app's clock", "rejected by the Workspace"] {
        let before = app.ws.control.counters();
        let served_before = lb.served();
        match phase {
            "expired on the app's clock" => app.clock.advance(Duration::from_secs(3600)),
            _ => app.ws.control.expire_access_tokens("org_acme"),
        }
        let requests = (0..50).map(|_| app.server_fn(&app.client, "organization_overview"));
        let answers = futures::future::join_all(requests).await;
        let failed: Vec<_> = answers
            .iter()
            .filter(|(status, _)| *status != 200)
            .collect();
        assert!(failed.is_empty(), "{phase}: {failed:?}");

        let after = app.ws.control.counters();
        assert_eq!(
            after.refresh_grants - before.refresh_grants,
            1,
            "{phase}: exactly one refresh grant"
        );
        assert_eq!(after.token_errors, before.token_errors, "{phase}: no reuse");
        let served = lb.served();
        for (instance, (now, then)) in served.iter().zip(&served_before).enumerate() {
            assert!(
                now - then >= 20,
                "{phase}: instance {instance} served {}",
                now - then
            );
        }
    }
}

/// The real binary, one of two instances, is killed while it holds the refresh lock and waits
/// for the token endpoint. The other instance then refreshes (the lock died with the killed
/// instance's database session) and the connection stays usable.
#[tokio::test]
async fn an_instance_killed_mid_refresh_leaves_the_connection_usable() {
    let Some(Cluster { app, lb }) = cluster(1).await else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let binary_addr = listener.local_addr().unwrap();
    drop(listener);
    let mut binary = start_binary(&app, binary_addr).await;
    let binary_index = lb.add(binary_addr);

    lb.pin(0);
    app.connect(&app.client, "org_acme").await;
    app.ws
        .control
        .set_latency(Endpoint::Token, Duration::from_secs(3));
    app.ws.control.expire_access_tokens("org_acme");

    // The binary gets a 401, takes the lock and sends the refresh; the Workspace holds it.
    lb.pin(binary_index);
    let doomed = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/api/organization_overview");
        async move {
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .send()
                .await
        }
    });
    wait_for(|| app.ws.control.in_flight(Endpoint::Token) == 1).await;
    binary.start_kill().unwrap(); // SIGKILL
    binary.wait().await.unwrap();
    assert!(doomed.await.unwrap().is_err(), "its request died with it");
    wait_for(|| app.ws.control.in_flight(Endpoint::Token) == 0).await;

    // The surviving instance refreshes with the refresh token the vault still holds.
    app.ws.control.set_latency(Endpoint::Token, Duration::ZERO);
    lb.pin(0);
    let (status, view) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(status, 200, "{view}");
    let counters = app.ws.control.counters();
    assert_eq!(
        counters.refresh_grants, 1,
        "only the survivor's refresh happened"
    );
    assert_eq!(counters.token_errors, 0);
    // And later requests, to either instance the balancer still has, keep working.
    lb.round_robin();
    for _ in 0..4 {
        assert_eq!(app.server_fn(&app.client, "clients").await.0, 200);
    }
}

async fn wait_for(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5 s");
}

/// The refresh lock is bounded: a refresh that waits longer than the bound for another
/// instance's gives up with `Busy` (a retryable page), rather than queueing forever.
#[tokio::test]
async fn waiting_for_another_instances_refresh_is_bounded() {
    use qentrah_connect::server::connections::{
        AccessToken, ConnectionKey, ConnectionStore, RefreshToken, TokenSet, VaultError,
    };
    use qentrah_connect::server::ids::{OrganizationId, ProviderId};
    use qentrah_connect::server::platform::config::{DatabaseUrl, SessionSecret, VaultKeys};

    let Some(database) = TestDatabase::postgres_or_skip().await else {
        return;
    };
    let db =
        qentrah_connect::server::platform::db::connect(&DatabaseUrl::parse(&database.url).unwrap())
            .await
            .unwrap();
    let keyring = || {
        Arc::new(
            VaultKeys::default()
                .keyring(&SessionSecret::parse(TEST_SESSION_SECRET.to_owned()).unwrap()),
        )
    };
    // Two stores on separate pools: two instances.
    let first = ConnectionStore::new(db, keyring());
    let other_db =
        qentrah_connect::server::platform::db::connect(&DatabaseUrl::parse(&database.url).unwrap())
            .await
            .unwrap();
    let second = ConnectionStore::new(other_db, keyring());
    let key = ConnectionKey::new(
        &ProviderId::qentrah(),
        &OrganizationId::parse("org_acme").unwrap(),
        "http://ws/api/v1/partner",
    );
    #[allow(clippy::disallowed_methods)]
    let now = SystemTime::now();
    first
        .save_connected(
            &key,
            &TokenSet {
                access_token: AccessToken::new("qat_x".to_owned()),
                refresh_token: Some(RefreshToken::new("qrt_x".to_owned())),
                expires_in: Some(Duration::from_secs(3600)),
                scopes: None,
                client_id: qentrah_dev_workspace::PUBLIC_CLIENT_ID.to_owned(),
                organization_id: OrganizationId::parse("org_acme"),
            },
            &[],
            now,
        )
        .await
        .unwrap();

    let (held, _) = first
        .lease_for_refresh(&key, Duration::from_secs(10))
        .await
        .unwrap();
    let waited = tokio::time::Instant::now();
    let outcome = second
        .lease_for_refresh(&key, Duration::from_millis(300))
        .await;
    assert!(
        matches!(outcome, Err(VaultError::Busy)),
        "{:?}",
        outcome.err()
    );
    assert!(waited.elapsed() < Duration::from_secs(5));
    // Readers are never blocked by a refresh in progress.
    assert!(second.load(&key).await.unwrap().is_some());
    held.release().await.unwrap();
    let (lease, connection) = second
        .lease_for_refresh(&key, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(connection.is_some());
    lease.release().await.unwrap();
}

fn with_webhooks() -> Options {
    Options {
        env: vec![(
            "QENTRAH_WEBHOOK_SECRETS",
            qentrah_dev_workspace::DEV_WEBHOOK_SECRET.to_owned(),
        )],
        ..Options::default()
    }
}

/// Twenty deliveries of one id at once, spread over two instances: applied once, the rest
/// duplicates. Then an uninstall's purge runs once however many instances look for it: one
/// revocation at the Workspace, one attempt recorded.
#[tokio::test]
async fn one_delivery_applies_once_and_one_purge_runs_once_across_instances() {
    use qentrah_connect::server::installations::signature::sign;
    use qentrah_connect::server::platform::clock::{to_unix, Clock};
    use qentrah_connect::server::platform::config::WebhookSecret;

    let Some(Cluster { app, lb }) = cluster_with(2, &with_webhooks()).await else {
        return;
    };
    let secret = WebhookSecret::parse(qentrah_dev_workspace::DEV_WEBHOOK_SECRET).unwrap();
    let body = json!({
        "type": "app.installed",
        "data": {
            "organizationId": "org_harbor",
            "clientId": "app_concurrent",
            "clientSecret": "concurrent-client-secret-0123456789",
        }
    })
    .to_string();
    let deliveries = (0..20).map(|_| {
        let (app, body, secret) = (&app, body.clone(), &secret);
        async move {
            let timestamp = to_unix(app.clock.now());
            let response = app
                .client
                .post(app.url("/api/webhooks/qentrah"))
                .header("content-type", "application/json")
                .header("webhook-id", "msg_across_instances")
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    sign(secret, "msg_across_instances", timestamp, body.as_bytes()),
                )
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    });
    let answers = futures::future::join_all(deliveries).await;
    let reasons: Vec<_> = answers
        .iter()
        .map(|(status, body)| {
            (
                *status,
                body["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let installed = reasons
        .iter()
        .filter(|(s, r)| *s == 200 && r == "installed")
        .count();
    let duplicates = reasons
        .iter()
        .filter(|(s, r)| *s == 200 && r == "duplicate")
        .count();
    assert_eq!((installed, duplicates), (1, 19), "{reasons:?}");
    let served = lb.served();
    assert!(
        served.iter().all(|&n| n > 0),
        "both instances answered: {served:?}"
    );

    // Through the Workspace's marketplace: install, connect, uninstall.
    let (installation, id) = app.ws.control.install("org_acme", None).unwrap();
    assert_eq!(
        app.ws.control.delivered(&id).await.unwrap().state,
        "delivered"
    );
    let start = app
        .client
        .get(app.url("/api/auth/qentrah/start?organization_id=org_acme"))
        .send()
        .await
        .unwrap();
    let callback = app.consent(&location(&start), "org_acme", "approve").await;
    assert_eq!(app.finish(&app.client, &callback).await.status(), 303);
    assert_eq!(app.server_fn(&app.client, "clients").await.0, 200);
    let (_, id) = app.ws.control.uninstall("org_acme", None).unwrap();
    assert_eq!(
        app.ws.control.delivered(&id).await.unwrap().state,
        "delivered"
    );
    let mut done = false;
    for _ in 0..200 {
        let attempts = app
            .database
            .scalar(&format!(
                "SELECT attempts FROM installation_purges WHERE client_id = '{}' \
                 AND completed_at IS NOT NULL",
                installation.client_id
            ))
            .await;
        if let Some(attempts) = attempts {
            assert_eq!(attempts, 1, "the purge ran once");
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "the purge completed");
    // Both instances poll; give the other one a turn, then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revocations = app
        .ws
        .control
        .requests()
        .into_iter()
        .filter(|r| r.path == "/oauth/revoke")
        .count();
    assert_eq!(revocations, 1);
    assert_eq!(app.database.count("connections").await, 0);
}

/// Sign-in (`AUTH_MODE=sso`) across instances: a sign-in started on one completes on the
/// other, and when a re-check is due, concurrent requests on both ask the Workspace once.
#[tokio::test]
async fn a_sign_in_moves_between_instances_and_a_recheck_runs_once() {
    let options = Options {
        env: vec![
            (
                "QENTRAH_WEBHOOK_SECRETS",
                qentrah_dev_workspace::DEV_WEBHOOK_SECRET.to_owned(),
            ),
            ("AUTH_MODE", "sso".to_owned()),
        ],
        ..Options::default()
    };
    let Some(Cluster { app, lb }) = cluster_with(2, &options).await else {
        return;
    };
    crate::marketplace::install(&app, "org_acme").await;
    lb.pin(0);
    let link = app
        .ws
        .control
        .open_app_link(
            "org_acme",
            qentrah_dev_workspace::oidc::OpenAppMode::Initiate,
            "usr_ada",
            None,
        )
        .unwrap();
    let start = app.client.get(link).send().await.unwrap();
    let callback = app.approve_as("usr_ada", &location(&start)).await;
    lb.pin(1);
    let done = app.client.get(callback).send().await.unwrap();
    assert_eq!(location(&done), "/");

    lb.round_robin();
    let userinfo = || {
        app.ws
            .control
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/oauth/userinfo"))
            .count()
    };
    let before = userinfo();
    app.clock.advance(Duration::from_secs(301));
    let pages = (0..20).map(|_| app.client.get(app.url("/")).send());
    let answers = futures::future::join_all(pages).await;
    assert!(answers.iter().all(|a| a.as_ref().unwrap().status() == 200));
    assert_eq!(userinfo() - before, 1, "one re-check across both instances");
}
