//! Test databases: one server per test run, one fresh database per test.

use std::sync::OnceLock;

use factlog::db::{self, EphemeralCluster};
use factlog::service::fact_cache::FactCacheLimits;
use factlog::store::{EventStore, StoreConfig};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

struct Server {
    /// URL of the server's maintenance database (`postgres`).
    admin_url: String,
    /// Held for the life of the test process; the kernel stops it after.
    _cluster: Option<EphemeralCluster>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static TEMPLATE: OnceLock<String> = OnceLock::new();

fn server() -> &'static Server {
    // Logs from the code under test, shown for failing tests (RUST_LOG to tune).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let opts: PgConnectOptions =
                url.parse().expect("DATABASE_URL must be a PostgreSQL URL");
            let admin = opts.database("postgres");
            Server {
                admin_url: format!(
                    "postgres://{}@{}:{}/postgres",
                    admin.get_username(),
                    admin.get_host(),
                    admin.get_port()
                ),
                _cluster: None,
            }
        }
        _ => {
            let cluster = EphemeralCluster::start(true).expect("start the test PostgreSQL cluster");
            Server {
                admin_url: cluster.url("postgres"),
                _cluster: Some(cluster),
            }
        }
    })
}

fn url_for(database: &str) -> String {
    let admin = &server().admin_url;
    let base = admin.trim_end_matches("/postgres");
    format!("{base}/{database}")
}

/// A migrated template database, made once per test process on a thread of
/// its own (so no test's runtime owns its connections).
fn template() -> &'static str {
    TEMPLATE.get_or_init(|| {
        let name = format!("factlog_tpl_{}", std::process::id());
        let url = url_for(&name);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                db::create_database_if_missing(&url)
                    .await
                    .expect("create template");
                let pool = db::pool(&url, 2).await.expect("connect template");
                db::migrate(&pool).await.expect("migrate template");
                pool.close().await;
            });
        })
        .join()
        .expect("template thread");
        name
    })
}

pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// A new migrated database on another server (one a test may restart).
    pub async fn create_on(url: &str) -> TestDb {
        db::create_database_if_missing(url)
            .await
            .expect("create database");
        let pool = db::pool(url, 20).await.expect("connect");
        db::migrate(&pool).await.expect("migrate");
        let opts: PgConnectOptions = url.parse().expect("url");
        TestDb {
            name: opts.get_database().unwrap_or("factlog").to_owned(),
            url: url.to_owned(),
            pool,
        }
    }

    /// A new database without any migration applied (for upgrade tests).
    pub async fn unmigrated() -> TestDb {
        let name = format!("factlog_test_{}", uuid::Uuid::new_v4().simple());
        let url = url_for(&name);
        db::create_database_if_missing(&url)
            .await
            .expect("create database");
        let pool = db::pool(&url, 5).await.expect("connect");
        TestDb { name, url, pool }
    }

    /// A new, migrated, empty database.
    pub async fn new() -> TestDb {
        let template = template();
        let name = format!("factlog_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&server().admin_url)
            .await
            .expect("connect admin");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {template}"
        )))
        .execute(&mut admin)
        .await
        .expect("create test database");
        admin.close().await.ok();
        let url = url_for(&name);
        let pool = db::pool(&url, 20).await.expect("connect test database");
        TestDb { name, url, pool }
    }

    pub async fn store(&self) -> EventStore {
        self.store_with(StoreConfig::default()).await
    }

    pub async fn store_with(&self, config: StoreConfig) -> EventStore {
        EventStore::open(self.pool.clone(), config)
            .await
            .expect("open store")
    }

    /// A second, independent pool: another "process" as far as the database can tell.
    pub async fn other_pool(&self) -> PgPool {
        db::pool(&self.url, 20).await.expect("connect")
    }

    /// Another handle on the same database, with a pool of its own (for a
    /// second API process in the same test).
    pub async fn same_database(&self) -> TestDb {
        TestDb {
            name: self.name.clone(),
            url: self.url.clone(),
            pool: self.other_pool().await,
        }
    }

    /// A URL for the same database as another role.
    pub fn url_as(&self, role: &str) -> String {
        let opts: PgConnectOptions = self.url.parse().expect("url");
        format!(
            "postgres://{role}@{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            self.name
        )
    }

    pub async fn count_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

/// The HTTP API on a real socket, over a fresh database.
pub struct TestApp {
    pub db: TestDb,
    pub base: String,
    pub client: reqwest::Client,
    /// The services behind the API (a handle on the same fact cache).
    pub services: factlog::service::Services,
    /// The router the socket serves, to call without the server loop (as
    /// a test that sets the peer's address itself does).
    pub router: axum::Router,
    /// The verifier key of the checkpoints this app signs (with workers).
    pub vkey: Option<String>,
}

pub struct AppOptions {
    pub required_confirmations: u32,
    pub max_body_bytes: usize,
    /// Run the projection workers in-process, as `factlog serve` does.
    pub workers: bool,
    /// Per-token requests per second and burst (0: off).
    pub rate: (f64, f64),
    /// The fact document cache, as `factlog serve` sizes it by default.
    pub fact_cache: FactCacheLimits,
    /// The server loop's connection rules.
    pub server: factlog::api::ServerLimits,
    /// Event streams per token and in all.
    pub streams: factlog::api::StreamCaps,
    /// Failed authentications per address, per second and burst (0: off);
    /// `None`: as `factlog serve` limits them.
    pub auth_failures: Option<(f64, f64)>,
    /// Standbys to serve reads from, as `FACTLOG_READ_DATABASE_URL` names them.
    pub standbys: Vec<String>,
}

/// What `factlog serve` uses unless told otherwise.
pub const DEFAULT_FACT_CACHE: FactCacheLimits = FactCacheLimits {
    max_entries: 100_000,
    max_bytes: 32 << 20,
};

/// The chain verifier as tests run it: a full pass on every tick it is
/// asked for, none otherwise (after the first).
pub const TEST_VERIFIER: factlog::store::integrity::VerifierConfig =
    factlog::store::integrity::VerifierConfig {
        full_every: std::time::Duration::from_secs(3600),
        full_min_gap: std::time::Duration::ZERO,
        tick: std::time::Duration::from_millis(100),
    };

/// No fact document cache.
pub const NO_FACT_CACHE: FactCacheLimits = FactCacheLimits {
    max_entries: 0,
    max_bytes: 0,
};

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            required_confirmations: 1,
            max_body_bytes: 1024 * 1024,
            workers: true,
            rate: (0.0, 1.0),
            fact_cache: DEFAULT_FACT_CACHE,
            server: factlog::api::ServerLimits {
                header_read_timeout: std::time::Duration::from_secs(1),
                ..Default::default()
            },
            streams: factlog::api::StreamCaps::default(),
            auth_failures: None,
            standbys: Vec::new(),
        }
    }
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(AppOptions::default()).await
    }

    pub async fn start_with(opts: AppOptions) -> TestApp {
        Self::start_on(TestDb::new().await, opts).await
    }

    /// The API over a given database (e.g. on a cluster a test restarts).
    pub async fn start_on(db: TestDb, opts: AppOptions) -> TestApp {
        use factlog::api::{self, AppState, Limits};
        use factlog::service::{Rules, Services};
        let store = db.store().await;
        let mut vkey = None;
        let signer_status = factlog::service::checkpoints::SignerStatus::default();
        if opts.workers {
            let (stop, rx) = tokio::sync::watch::channel(false);
            factlog::projections::spawn_all(
                &db.pool,
                &store,
                &rx,
                factlog::projections::DEFAULT_LINGER,
            );
            factlog::store::integrity::spawn_verifier(&store, TEST_VERIFIER, rx.clone());
            let signer = factlog::merkle::NoteSigner::generate(TEST_ORIGIN).expect("a signing key");
            vkey = Some(signer.vkey());
            factlog::service::checkpoints::spawn_signer(
                db.pool.clone(),
                std::sync::Arc::new(signer),
                TEST_ORIGIN.into(),
                std::time::Duration::from_millis(100),
                signer_status.clone(),
                rx.clone(),
            );
            // The workers end with the test's runtime.
            std::mem::forget(stop);
        }
        let tokens = factlog::auth::TokenCache::load(db.pool.clone())
            .await
            .expect("tokens");
        tokens.spawn_refresher();
        let services = Services::new(
            store,
            Rules {
                required_confirmations: opts.required_confirmations,
            },
        )
        .with_fact_cache(opts.fact_cache)
        .with_verifier(TEST_VERIFIER)
        .with_signer(signer_status);
        let services = if opts.standbys.is_empty() {
            services
        } else {
            let standbys = factlog::db::Standbys::connect(&opts.standbys, 5).expect("standby urls");
            let (stop, rx) = tokio::sync::watch::channel(false);
            standbys.spawn_health(services.store().head_watch(), rx);
            // The health task ends with the test's runtime.
            std::mem::forget(stop);
            services.with_standbys(standbys)
        };
        let rate = std::sync::Arc::new({
            let rate = factlog::api::ratelimit::RateLimiter::new(opts.rate.0, opts.rate.1);
            match opts.auth_failures {
                Some((per_second, burst)) => rate.with_failure_limit(per_second, burst),
                None => rate,
            }
        });
        factlog::api::ratelimit::join_processes(rate.clone(), services.store().clone()).await;
        let app = api::router(AppState {
            services: services.clone(),
            tokens,
            limits: Limits {
                max_body_bytes: opts.max_body_bytes,
                request_timeout: std::time::Duration::from_secs(10),
                cors_origins: vec![],
                publication: factlog::service::claim_review::Publication::new(
                    TEST_PUBLIC_URL,
                    "The Test Gazette",
                ),
            },
            rate: rate.clone(),
            streams: factlog::api::StreamSlots::new(opts.streams),
        });
        let router = app.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let limits = opts.server.clone();
        tokio::spawn(async move {
            factlog::api::serve(listener, app, limits, std::future::pending())
                .await
                .expect("serve");
        });
        TestApp {
            db,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            services,
            router,
            vkey,
        }
    }

    /// Creates a token with this name and role (as `factlog token create` does).
    pub async fn token(&self, name: &str, role: &str) -> String {
        factlog::auth::create(&self.db.pool, name, role)
            .await
            .expect("create token")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(token)
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(token)
    }

    /// POSTs JSON and returns (status, headers, body as JSON).
    pub async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        send(self.post(path, token).json(body)).await
    }

    pub async fn get_json(
        &self,
        path: &str,
        token: &str,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        send(self.get(path, token)).await
    }

    pub async fn count_events(&self) -> i64 {
        self.db.count_events().await
    }

    /// GETs `path` with `Accept: accept`: (status, content type, `Link`,
    /// body text).
    pub async fn get_accepting(
        &self,
        path: &str,
        token: &str,
        accept: &str,
    ) -> (u16, String, Option<String>, String) {
        let res = self
            .get(path, token)
            .header("Accept", accept)
            .send()
            .await
            .expect("request");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().expect("ascii header").to_owned())
        };
        let (status, content_type, link) = (
            res.status().as_u16(),
            header("content-type").unwrap_or_default(),
            header("link"),
        );
        (status, content_type, link, res.text().await.expect("body"))
    }
}

pub async fn send(
    req: reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, headers, body)
}

/// Where test apps say their console lives, in ClaimReview.
pub const TEST_PUBLIC_URL: &str = "https://facts.example.org";

/// The origin test apps sign checkpoints for.
pub const TEST_ORIGIN: &str = "factlog/test";

/// A signing key file for the `serve` and `worker` processes tests start,
/// outside the checkout (whose `.factlog/` they would otherwise make it in).
pub fn test_key_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("factlog-test-{}-signing.key", std::process::id()))
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `factlog serve` of this build on `db`, listening on `port`, signing with
/// the suite's key: the caller adds its environment and output, then spawns.
pub fn serve_command(db: &TestDb, port: u16) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_factlog"));
    c.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &db.url)
        .env("FACTLOG_SIGNING_KEY_FILE", test_key_file());
    c
}

/// A child's stdout and stderr, read on threads of their own while it runs:
/// a server logging at trace writes more than a pipe holds, and with nobody
/// reading, it would stop mid-request on a full pipe.
pub struct OutputDrain(Vec<std::thread::JoinHandle<String>>);

impl OutputDrain {
    /// Takes `child`'s piped stderr and stdout.
    pub fn start(child: &mut std::process::Child) -> OutputDrain {
        use std::io::Read;
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        OutputDrain(
            pipes
                .into_iter()
                .flatten()
                .map(|mut pipe| {
                    std::thread::spawn(move || {
                        let mut text = String::new();
                        let _ = pipe.read_to_string(&mut text);
                        text
                    })
                })
                .collect(),
        )
    }

    /// Everything written (stderr, then stdout), once the child has exited.
    pub fn finish(self) -> String {
        self.0
            .into_iter()
            .map(|d| d.join().expect("an output reader"))
            .collect()
    }
}
