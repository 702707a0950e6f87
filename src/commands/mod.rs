//! What each subcommand does. `main.rs` parses the command line and calls one of these.

mod audit;
mod exchange;
mod generate;
mod projections;
mod serve;
mod signing;
mod verify;

use anyhow::Context;

pub use audit::{AuditRequest, audit};
pub use exchange::{
    ExportError, IMPORT_BATCH, ImportSummary, export, export_to, import, import_from,
};
pub use generate::{fill as fill_log, generate};
pub use projections::{rebuild, worker};
pub use serve::serve;
pub use signing::{key_show, start_signer};
pub use verify::{Verification, verify};

use crate::config::Settings;
use crate::db::{self, Database};
use crate::store::{EventStore, StoreConfig};

/// Connects (starting the private cluster when needed) and migrates.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    let database = Database::connect(
        settings.database_url.as_deref(),
        &settings.data_dir,
        settings.db_pool_size,
    )
    .await?;
    if let Err(e) = db::migrate(&database.pool).await {
        database.close().await;
        return Err(e).context("applying migrations");
    }
    Ok(database)
}

pub async fn open_store(settings: &Settings, database: &Database) -> anyhow::Result<EventStore> {
    let config = StoreConfig {
        max_event_bytes: settings.max_event_bytes,
        lanes: settings.append_lanes.max(1),
        ..StoreConfig::default()
    };
    Ok(EventStore::open(database.pool.clone(), config).await?)
}

/// `factlog migrate`.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let database = open_database(settings).await?;
    tracing::info!(
        migrations = db::MIGRATOR.iter().count(),
        private = database.is_private(),
        "database is migrated"
    );
    database.close().await;
    Ok(())
}

/// `factlog db url`: where the private cluster is (for psql and friends).
pub async fn db_url(settings: &Settings) -> anyhow::Result<()> {
    let database = open_database(settings).await?;
    println!("{}", database.url);
    database.close().await;
    Ok(())
}

/// `factlog db stop`: stops the private cluster whoever started it.
pub fn db_stop(settings: &Settings) -> anyhow::Result<()> {
    let stopped = crate::db::PrivateCluster::stop(&settings.data_dir)?;
    if stopped {
        eprintln!(
            "stopped the private cluster under {}",
            settings.data_dir.display()
        );
    } else {
        eprintln!(
            "no private cluster is running under {}",
            settings.data_dir.display()
        );
    }
    Ok(())
}

/// `factlog token create`: prints the token, alone, on stdout.
pub async fn token_create(settings: &Settings, name: &str, role: &str) -> anyhow::Result<()> {
    let database = open_database(settings).await?;
    let created = crate::auth::create(&database.pool, name, role).await;
    database.close().await;
    println!("{}", created?);
    Ok(())
}

/// `factlog token revoke`.
pub async fn token_revoke(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let database = open_database(settings).await?;
    let revoked = crate::auth::revoke(&database.pool, name).await;
    database.close().await;
    revoked?;
    eprintln!(
        "revoked {name}; every server stops accepting it within {} s",
        crate::auth::REFRESH_SECS
    );
    Ok(())
}
