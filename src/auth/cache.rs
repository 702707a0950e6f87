use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use crate::domain::principal::{Actor, Role};
use crate::store::StoreError;

/// Active tokens by hash, reloaded every few seconds: requests are checked
/// in memory, and a revocation reaches every process within one interval.
///
/// A token not in memory never costs a query of its own. It waits for a
/// reload of the whole set that begins after it arrived (one serves every
/// request waiting, and they begin at most every [`MIN_RELOAD_GAP`]), so a
/// token created a moment ago works at once, while a flood of made-up tokens
/// costs the database a few reloads a second however fast it comes. A hash
/// that such a reload did not find is remembered as unknown: a token is
/// presented only after its creation committed, and a revoked one stays
/// revoked, so that verdict never changes.
pub struct TokenCache {
    pool: PgPool,
    active: RwLock<HashMap<[u8; 32], Actor>>,
    /// Hashes known to be no active token (bounded: cleared when full).
    unknown: Mutex<HashSet<[u8; 32]>>,
    /// Held while reloading; says when the last reload began and whether it
    /// worked.
    reloads: tokio::sync::Mutex<LastReload>,
}

#[derive(Clone, Copy)]
struct LastReload {
    began: Instant,
    ok: bool,
}

/// How often the cache reloads; the bound on how long a revoked token works.
pub const REFRESH: Duration = Duration::from_secs(super::REFRESH_SECS);

/// Least time between two reloads asked for by unknown tokens.
pub const MIN_RELOAD_GAP: Duration = Duration::from_millis(200);

/// Most hashes remembered as unknown (32 bytes each, about 1 MB in all).
const MAX_UNKNOWN: usize = 16_384;

impl TokenCache {
    pub async fn load(pool: PgPool) -> Result<Arc<TokenCache>, StoreError> {
        let began = Instant::now();
        let cache = Arc::new(TokenCache {
            pool,
            active: RwLock::new(HashMap::new()),
            unknown: Mutex::new(HashSet::new()),
            reloads: tokio::sync::Mutex::new(LastReload { began, ok: false }),
        });
        {
            let mut last = cache.reloads.lock().await;
            cache.reload(&mut last).await?;
        }
        Ok(cache)
    }

    /// Reads every active token, with the reload lock held (`last`).
    async fn reload(&self, last: &mut LastReload) -> Result<(), StoreError> {
        *last = LastReload {
            began: Instant::now(),
            ok: false,
        };
        let rows: Vec<(Vec<u8>, String, String)> =
            sqlx::query_as("SELECT token_hash, name, role FROM tokens WHERE revoked_at IS NULL")
                .fetch_all(&self.pool)
                .await?;
        let map = rows.into_iter().filter_map(to_entry).collect();
        if let Ok(mut active) = self.active.write() {
            *active = map;
        }
        last.ok = true;
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
                let mut last = cache.reloads.lock().await;
                if let Err(e) = cache.reload(&mut last).await {
                    tracing::warn!(error = %e, "token cache refresh failed; keeping the last good set");
                }
            }
        })
    }

    /// The actor an active token's hash stands for, from memory alone.
    pub fn active(&self, hash: &[u8; 32]) -> Option<Actor> {
        self.active.read().ok().and_then(|m| m.get(hash).cloned())
    }

    /// The actor a token's hash stands for, if the token is active.
    pub async fn authenticate(&self, hash: &[u8; 32]) -> Result<Option<Actor>, StoreError> {
        match self.active(hash) {
            Some(actor) => Ok(Some(actor)),
            None => self.resolve(hash).await,
        }
    }

    /// For a hash not in memory: the actor, if a reload that begins after
    /// this call finds the token (no query of its own; see [`TokenCache`]).
    pub async fn resolve(&self, hash: &[u8; 32]) -> Result<Option<Actor>, StoreError> {
        let arrived = Instant::now();
        if self.unknown.lock().is_ok_and(|u| u.contains(hash)) {
            return Ok(None);
        }
        let mut last = self.reloads.lock().await;
        if last.began < arrived {
            // The last reload may have missed a token created just before
            // this request: wait for the next one.
            tokio::time::sleep_until(last.began + MIN_RELOAD_GAP).await;
            self.reload(&mut last).await?;
        } else if !last.ok {
            // The reload that would have answered failed, and said why to
            // the request that ran it.
            return Err(StoreError::Unavailable(sqlx::Error::Io(
                std::io::Error::other("the token reload failed"),
            )));
        }
        drop(last);
        if let Some(actor) = self.active(hash) {
            return Ok(Some(actor));
        }
        if let Ok(mut unknown) = self.unknown.lock() {
            if unknown.len() >= MAX_UNKNOWN {
                unknown.clear();
            }
            unknown.insert(*hash);
        }
        Ok(None)
    }
}

fn to_entry((hash, name, role): (Vec<u8>, String, String)) -> Option<([u8; 32], Actor)> {
    let key: [u8; 32] = hash.as_slice().try_into().ok()?;
    let role = Role::parse(&role)?;
    Some((key, Actor { name, role }))
}
