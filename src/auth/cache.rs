use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::PgPool;

use super::tokens::hash_token;
use crate::domain::principal::{Actor, Role};
use crate::store::StoreError;

/// Active tokens by hash, reloaded every few seconds: requests are checked
/// in memory, and a revocation reaches every process within one interval.
pub struct TokenCache {
    pool: PgPool,
    active: RwLock<HashMap<[u8; 32], Actor>>,
}

/// How often the cache reloads; the bound on how long a revoked token works.
pub const REFRESH: Duration = Duration::from_secs(super::REFRESH_SECS);

impl TokenCache {
    pub async fn load(pool: PgPool) -> Result<Arc<TokenCache>, StoreError> {
        let cache = Arc::new(TokenCache {
            pool,
            active: RwLock::new(HashMap::new()),
        });
        cache.reload().await?;
        Ok(cache)
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let rows: Vec<(Vec<u8>, String, String)> =
            sqlx::query_as("SELECT token_hash, name, role FROM tokens WHERE revoked_at IS NULL")
                .fetch_all(&self.pool)
                .await?;
        let map = rows.into_iter().filter_map(to_entry).collect();
        if let Ok(mut active) = self.active.write() {
            *active = map;
        }
        Ok(())
    }

    /// Reloads every [`REFRESH`] until the pool closes.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if cache.pool.is_closed() {
                    return;
                }
                if let Err(e) = cache.reload().await {
                    tracing::warn!(error = %e, "token cache refresh failed; keeping the last good set");
                }
            }
        })
    }

    /// The actor a bearer token stands for, if it is active. A token not in
    /// the cache (created since the last reload) costs one indexed query.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Actor>, StoreError> {
        let hash = hash_token(token);
        if let Some(actor) = self.active.read().ok().and_then(|m| m.get(&hash).cloned()) {
            return Ok(Some(actor));
        }
        let row: Option<(Vec<u8>, String, String)> = sqlx::query_as(
            "SELECT token_hash, name, role FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        let Some((key, actor)) = row.and_then(to_entry) else {
            return Ok(None);
        };
        if let Ok(mut active) = self.active.write() {
            active.insert(key, actor.clone());
        }
        Ok(Some(actor))
    }
}

fn to_entry((hash, name, role): (Vec<u8>, String, String)) -> Option<([u8; 32], Actor)> {
    let key: [u8; 32] = hash.as_slice().try_into().ok()?;
    let role = Role::parse(&role)?;
    Some((key, Actor { name, role }))
}
