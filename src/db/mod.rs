//! Finding the database: `DATABASE_URL`, or the private cluster; pools and migrations;
//! the standbys reads may go to.

pub mod cluster;
pub mod standbys;

use std::path::Path;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use thiserror::Error;

pub use cluster::{ClusterError, EphemeralCluster, PrivateCluster, production_shared_buffers_mb};
pub use standbys::{Standby, Standbys};

/// The database the private cluster holds factlog's data in.
pub const PRIVATE_DATABASE: &str = "factlog";

#[derive(Debug, Error)]
pub enum DbError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("invalid DATABASE_URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A connection pool, and the private cluster behind it when there is one.
pub struct Database {
    pub pool: PgPool,
    pub url: String,
    cluster: Option<PrivateCluster>,
}

impl Database {
    /// Connects to `url`, or, when there is none, to the private cluster
    /// under `data_dir` (creating and starting it as needed).
    pub async fn connect(
        url: Option<&str>,
        data_dir: &Path,
        pool_size: u32,
    ) -> Result<Database, DbError> {
        let (url, cluster) = match url {
            Some(u) => (u.to_owned(), None),
            None => {
                tracing::info!(
                    dir = %data_dir.display(),
                    "DATABASE_URL is unset: using the private PostgreSQL cluster"
                );
                let dir = data_dir.to_owned();
                let cluster = tokio::task::spawn_blocking(move || PrivateCluster::ensure(&dir))
                    .await
                    .map_err(|e| DbError::Internal(e.to_string()))??;
                tracing::info!(
                    data = %cluster.data_dir().display(),
                    "the private cluster's data lives here"
                );
                let url = cluster.url(PRIVATE_DATABASE);
                create_database_if_missing(&url).await?;
                (url, Some(cluster))
            }
        };
        let pool = pool(&url, pool_size).await?;
        Ok(Database { pool, url, cluster })
    }

    pub fn is_private(&self) -> bool {
        self.cluster.is_some()
    }

    /// Closes the pool and leaves the private cluster (stopping it when no
    /// other factlog process uses it).
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            match tokio::task::spawn_blocking(move || cluster.release()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not stop the private cluster"),
                Err(e) => tracing::warn!(error = %e, "could not stop the private cluster"),
            }
        }
    }
}

/// A pool that fails fast when the database is away, so requests get a 503
/// rather than hang.
pub async fn pool(url: &str, size: u32) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = url.parse().map_err(DbError::BadUrl)?;
    let options = options
        .application_name("factlog")
        // Every statement here reads a page or a key: JIT compilation never
        // pays, yet a generic plan over a large log is estimated above
        // `jit_above_cost` and would compile for milliseconds per execution.
        .options([("jit", "off")])
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(2));
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        // No ping before every query: a broken connection fails its query
        // (answered 503, retried by the client) and is dropped by the pool.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(DbError::Connect)
}

/// Creates the database named in `url` on its server when it is not there.
pub async fn create_database_if_missing(url: &str) -> Result<(), DbError> {
    let options: PgConnectOptions = url.parse().map_err(DbError::BadUrl)?;
    let name = options
        .get_database()
        .unwrap_or(PRIVATE_DATABASE)
        .to_owned();
    let mut conn = sqlx::PgConnection::connect_with(&options.database("postgres"))
        .await
        .map_err(DbError::Connect)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // Identifiers cannot be bound; the name is quoted with its quotes doubled.
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            // Another process may have created it meanwhile.
            let raced = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04" || c == "23505");
            if !raced {
                return Err(e.into());
            }
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// Applies pending migrations (idempotent; safe to run from many processes at once).
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    if migrations_applied(pool).await.unwrap_or(false) {
        // Nothing to do; also lets a role without DDL rights start the service.
        return Ok(());
    }
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Whether every migration this binary knows of has been applied.
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .all(|m| applied.contains(&m.version)))
}
