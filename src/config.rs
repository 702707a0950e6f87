//! Settings: flags with environment fallbacks, in groups, so that each
//! subcommand takes (and its `--help` shows) only the groups it uses; the
//! rest come from the environment or their defaults. `.env.example`
//! documents each one.

use std::path::PathBuf;

use clap::{Args, Parser, ValueEnum};

/// Where the database is (global: `factlog token create --database-url …` works).
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. When unset, factlog runs its own private cluster under --data-dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Where the private cluster lives when DATABASE_URL is unset.
    #[arg(
        long,
        env = "FACTLOG_DATA_DIR",
        default_value = ".factlog",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Connections in the database pool.
    #[arg(
        long,
        env = "FACTLOG_DB_POOL_SIZE",
        default_value_t = 16,
        global = true
    )]
    pub db_pool_size: u32,
}

/// How the log takes appends.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Largest event accepted by the log, in bytes.
    #[arg(long, env = "FACTLOG_MAX_EVENT_BYTES", default_value_t = 1024 * 1024)]
    pub max_event_bytes: usize,

    /// Appender lanes: connections that take turns at the log-head lock, the
    /// next lane's batch laid out while the previous one commits.
    #[arg(long, env = "FACTLOG_APPEND_LANES", default_value_t = crate::store::StoreConfig::default().lanes)]
    pub append_lanes: usize,
}

/// What the HTTP API allows (`serve`).
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// How long idempotency keys are kept, in hours (at least 24).
    #[arg(long, env = "FACTLOG_IDEMPOTENCY_HOURS", default_value_t = 48)]
    pub idempotency_hours: u64,

    /// Distinct editors (other than the asserter) whose confirmations verify a claim.
    #[arg(long, env = "FACTLOG_REQUIRED_CONFIRMATIONS", default_value_t = 1)]
    pub required_confirmations: u32,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "FACTLOG_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds a request may take before it is answered 503 (not the event stream).
    #[arg(long, env = "FACTLOG_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,

    /// Origins allowed to call the API from a browser, comma-separated; none when empty.
    #[arg(long, env = "FACTLOG_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Requests per second each token may make (a token bucket; 0 turns it off).
    #[arg(long, env = "FACTLOG_RATE_LIMIT", default_value_t = 100.0)]
    pub rate_limit: f64,

    /// Requests a token may make in a burst above its rate.
    #[arg(long, env = "FACTLOG_RATE_BURST", default_value_t = 200.0)]
    pub rate_burst: f64,

    /// Memory for cached fact documents per API process, in MiB (0 disables the cache).
    #[arg(long, env = "FACTLOG_FACT_CACHE_MB", default_value_t = 32)]
    pub fact_cache_mb: usize,

    /// Most fact documents cached per API process (0 disables the cache).
    #[arg(long, env = "FACTLOG_FACT_CACHE_ENTRIES", default_value_t = 100_000)]
    pub fact_cache_entries: usize,

    /// Memory for the proofs' Merkle tiles per API process, in MiB: 9 KiB
    /// per 256 events, so the default holds the tree of some 14M events;
    /// beyond it a proof may read one tile from the database.
    #[arg(long, env = "FACTLOG_PROOF_CACHE_MB", default_value_t = crate::service::proof_cache::DEFAULT_MB)]
    pub proof_cache_mb: usize,

    /// Absolute URL the console is reached at, for the links in ClaimReview
    /// (default: `http://` and the listen address).
    #[arg(long, env = "FACTLOG_PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<String>,

    /// The organisation named as the author of every ClaimReview.
    #[arg(long, env = "FACTLOG_PUBLISHER", default_value = "factlog")]
    pub publisher: String,

    /// PostgreSQL streaming standbys of DATABASE_URL to serve reads from,
    /// comma-separated; writes and the reads that decide them stay on the
    /// primary. None when empty.
    #[arg(
        long,
        env = "FACTLOG_READ_DATABASE_URL",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub read_database_url: Vec<String>,

    /// Event streams (`/v1/events/stream`) one token may hold open at once.
    #[arg(
        long,
        env = "FACTLOG_STREAMS_PER_TOKEN",
        default_value_t = crate::api::StreamCaps::default().per_token)]
    pub streams_per_token: usize,

    /// Event streams open at once in one API process.
    #[arg(
        long,
        env = "FACTLOG_MAX_STREAMS",
        default_value_t = crate::api::StreamCaps::default().total)]
    pub max_streams: usize,
}

fn public_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.contains(char::is_whitespace) || rest.contains(['?', '#']) {
        return Err("must be an absolute URL with a host, and no query or fragment".into());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// How projection workers and the chain verifier run (`serve`, `worker`).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Least milliseconds between the starts of two batches of a projection
    /// while it keeps up: more events per batch, for at most this much more
    /// delay before a write is visible in the read models.
    #[arg(
        long,
        env = "FACTLOG_PROJECTION_LINGER_MS",
        default_value_t = crate::projections::DEFAULT_LINGER.as_millis() as u64)]
    pub projection_linger_ms: u64,

    /// Minutes between two full passes of the chain verifier over the whole
    /// log (it also checks every new event within a second).
    #[arg(long, env = "FACTLOG_VERIFY_EVERY_MINUTES", default_value_t = 60)]
    pub verify_every_minutes: u64,

    /// Least minutes between a full pass and the next one an auditor asks for.
    #[arg(long, env = "FACTLOG_VERIFY_MIN_GAP_MINUTES", default_value_t = 5)]
    pub verify_min_gap_minutes: u64,

    /// Milliseconds between two looks of the checkpoint signer at the tree:
    /// a new checkpoint follows growth within about this much plus the tree
    /// projection's batch delay, and at most this often.
    #[arg(long, env = "FACTLOG_CHECKPOINT_INTERVAL_MS", default_value_t = 500)]
    pub checkpoint_interval_ms: u64,

    /// Projections this process keeps up, comma-separated (`facts`, `tree`);
    /// all when unset. One left out falls behind until a process runs it.
    #[arg(long, env = "FACTLOG_PROJECTIONS", value_delimiter = ',')]
    pub projections: Vec<String>,
}

/// The verifiable log's signing key and name (AUDITING.md).
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// File holding the log's Ed25519 signing key (a signed-note private
    /// key); made, mode 0600, when missing. Default: signing.key in --data-dir.
    /// Never stored in PostgreSQL.
    #[arg(long, env = "FACTLOG_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,

    /// The log's origin, the first line of every checkpoint and the key's
    /// name. Default: factlog/<database name>.
    #[arg(long, env = "FACTLOG_LOG_ORIGIN")]
    pub log_origin: Option<String>,
}

/// How the process logs (every subcommand).
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "FACTLOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// The settings of a group that a subcommand does not take: from the
/// environment, else the defaults.
pub fn unset<T: Args>() -> T {
    #[derive(Parser)]
    struct Only<T: Args> {
        #[command(flatten)]
        inner: T,
    }
    Only::<T>::parse_from(["factlog"]).inner
}

/// Every setting, as the commands read them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Option<String>,
    /// Standbys reads may go to (`serve`).
    pub read_database_urls: Vec<String>,
    pub data_dir: PathBuf,
    pub db_pool_size: u32,
    pub max_event_bytes: usize,
    pub append_lanes: usize,
    pub idempotency_hours: u64,
    pub required_confirmations: u32,
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub cors_origins: Vec<String>,
    pub public_url: Option<String>,
    pub publisher: String,
    pub rate_limit: f64,
    pub rate_burst: f64,
    pub fact_cache_mb: usize,
    pub fact_cache_entries: usize,
    pub proof_cache_mb: usize,
    pub streams_per_token: usize,
    pub max_streams: usize,
    pub projection_linger_ms: u64,
    pub verify_every_minutes: u64,
    pub verify_min_gap_minutes: u64,
    pub checkpoint_interval_ms: u64,
    /// Names of the projections to run; empty for all.
    pub projections: Vec<String>,
    pub signing_key_file: Option<PathBuf>,
    pub log_origin: Option<String>,
    pub log_format: LogFormat,
}

impl Settings {
    pub fn from_parts(
        db: DatabaseArgs,
        store: StoreArgs,
        api: ApiArgs,
        workers: WorkerArgs,
        keys: KeyArgs,
        log: LogArgs,
    ) -> Settings {
        Settings {
            database_url: db.database_url,
            read_database_urls: api.read_database_url,
            data_dir: db.data_dir,
            db_pool_size: db.db_pool_size,
            max_event_bytes: store.max_event_bytes,
            append_lanes: store.append_lanes,
            idempotency_hours: api.idempotency_hours,
            required_confirmations: api.required_confirmations,
            max_body_bytes: api.max_body_bytes,
            request_timeout_secs: api.request_timeout_secs,
            cors_origins: api.cors_origins,
            public_url: api.public_url,
            publisher: api.publisher,
            rate_limit: api.rate_limit,
            rate_burst: api.rate_burst,
            fact_cache_mb: api.fact_cache_mb,
            fact_cache_entries: api.fact_cache_entries,
            proof_cache_mb: api.proof_cache_mb,
            streams_per_token: api.streams_per_token,
            max_streams: api.max_streams,
            projection_linger_ms: workers.projection_linger_ms,
            verify_every_minutes: workers.verify_every_minutes,
            verify_min_gap_minutes: workers.verify_min_gap_minutes,
            checkpoint_interval_ms: workers.checkpoint_interval_ms,
            projections: workers.projections,
            signing_key_file: keys.signing_key_file,
            log_origin: keys.log_origin,
            log_format: log.log_format,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    pub fn fact_cache_limits(&self) -> crate::service::fact_cache::FactCacheLimits {
        crate::service::fact_cache::FactCacheLimits {
            max_entries: self.fact_cache_entries,
            max_bytes: self.fact_cache_mb.saturating_mul(1024 * 1024),
        }
    }

    pub fn projection_linger(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.projection_linger_ms)
    }

    pub fn verifier(&self) -> crate::store::integrity::VerifierConfig {
        crate::store::integrity::VerifierConfig {
            full_every: std::time::Duration::from_secs(self.verify_every_minutes.max(1) * 60),
            full_min_gap: std::time::Duration::from_secs(self.verify_min_gap_minutes * 60),
            ..Default::default()
        }
    }

    /// The projections this process runs (`FACTLOG_PROJECTIONS`): all when
    /// none is named; an unknown name is an error listing the known ones.
    pub fn projections(
        &self,
    ) -> anyhow::Result<Vec<&'static dyn crate::projections::AnyProjection>> {
        crate::projections::select(&self.projections)
            .map_err(|e| anyhow::anyhow!("FACTLOG_PROJECTIONS: {e}"))
    }

    /// Where the signing key lives: as set, else beside the private
    /// cluster's records in the data directory.
    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("signing.key"))
    }

    /// The log's origin: as set, else `factlog/<database>`.
    pub fn origin(&self, database_name: &str) -> String {
        self.log_origin
            .clone()
            .unwrap_or_else(|| format!("factlog/{database_name}"))
    }

    pub fn idempotency_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idempotency_hours.max(24) * 3600)
    }
}
