//! PostgreSQL streaming standbys that serve reads (`FACTLOG_READ_DATABASE_URL`):
//! a pool per standby, and a health task that polls each one.
//!
//! A standby is a physical copy of the primary: the log, the projections and
//! their checkpoints reach it by WAL replay, so its own tables say how far it
//! has replayed (its `event_head`, its `projection_checkpoints`). Which read
//! goes where is `service::read_route`'s business; this module only knows
//! which standbys answer and how far behind they are.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::watch;

use super::DbError;

/// How often each standby is polled.
pub const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// How long a read waits for a standby connection. Short: a standby that went
/// away refuses connections, and sqlx keeps retrying a refused connect until
/// this runs out; the read then goes to the primary instead.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the last poll found.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Health {
    /// It answered the last poll (and no read has failed on it since).
    pub up: bool,
    /// The log position it has replayed.
    pub head: i64,
    /// Events the primary has that it has not replayed.
    pub lag_events: i64,
    /// Age of the last transaction it replayed while WAL is waiting to be
    /// replayed; 0 when it has replayed everything it received.
    pub lag_seconds: f64,
}

/// The key [`Standby::replayed`] keeps the log head under (projections are
/// kept under their names).
pub const LOG_HEAD: &str = "event_head";

struct Inner {
    name: String,
    pool: PgPool,
    health: Mutex<Health>,
    /// The furthest each of the log head and the projections has been seen
    /// replayed since the standby last came up.
    replayed: Mutex<Vec<(&'static str, i64)>>,
}

/// One standby; cheap to clone.
#[derive(Clone)]
pub struct Standby(Arc<Inner>);

impl Standby {
    /// `host:port/database`: never the user or password.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn pool(&self) -> &PgPool {
        &self.0.pool
    }

    pub fn health(&self) -> Health {
        self.0.health.lock().map(|h| *h).unwrap_or_default()
    }

    pub fn is_up(&self) -> bool {
        self.health().up
    }

    /// How far `what` ([`LOG_HEAD`] or a projection's name) is known to be
    /// replayed here: a lower bound, as replay only moves forward, so a read
    /// waiting for a position it has passed needs no query to know it.
    pub fn replayed(&self, what: &str) -> Option<i64> {
        let known = self.0.replayed.lock().ok()?;
        known.iter().find(|(k, _)| *k == what).map(|(_, p)| *p)
    }

    /// Notes that `what` was seen replayed up to `position` here.
    pub fn saw_replayed(&self, what: &'static str, position: i64) {
        if let Ok(mut known) = self.0.replayed.lock() {
            match known.iter_mut().find(|(k, _)| *k == what) {
                Some((_, p)) => *p = (*p).max(position),
                None => known.push((what, position)),
            }
        }
    }

    /// Takes it out of rotation until the next poll finds it answering: a
    /// read just failed on it.
    pub fn mark_down(&self) {
        if let Ok(mut h) = self.0.health.lock()
            && h.up
        {
            h.up = false;
            tracing::warn!(standby = %self.name(), "a read failed on the standby: skipping it");
            self.forget_replayed();
            self.publish(&h);
        }
    }

    /// What came back may be another server (restored from an older backup,
    /// say): what was seen replayed on this one says nothing of it.
    fn forget_replayed(&self) {
        if let Ok(mut known) = self.0.replayed.lock() {
            known.clear();
        }
    }

    fn set(&self, health: Health) {
        if health.up {
            self.saw_replayed(LOG_HEAD, health.head);
        } else {
            self.forget_replayed();
        }
        if let Ok(mut h) = self.0.health.lock() {
            if h.up != health.up {
                if health.up {
                    tracing::info!(standby = %self.name(), "the standby answers: reads go to it");
                } else {
                    tracing::warn!(standby = %self.name(), "the standby does not answer: skipping it");
                }
            }
            *h = health;
        }
        self.publish(&health);
    }

    fn publish(&self, h: &Health) {
        let name = self.name().to_owned();
        metrics::gauge!("factlog_standby_up", "standby" => name.clone()).set(if h.up {
            1.0
        } else {
            0.0
        });
        metrics::gauge!("factlog_standby_lag_events", "standby" => name.clone())
            .set(h.lag_events as f64);
        metrics::gauge!("factlog_standby_lag_seconds", "standby" => name).set(h.lag_seconds);
    }

    /// One poll: how far it has replayed, and how old that is.
    async fn poll(&self, primary_head: i64) -> Health {
        let row: Result<(i64, f64), sqlx::Error> = sqlx::query_as(
            "SELECT (SELECT position FROM event_head), \
                    CASE WHEN NOT pg_is_in_recovery() \
                           OR pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() \
                         THEN 0 \
                         ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) \
                    END::float8",
        )
        .fetch_one(self.pool())
        .await;
        match row {
            Ok((head, lag_seconds)) => Health {
                up: true,
                head,
                lag_events: (primary_head - head).max(0),
                lag_seconds: lag_seconds.max(0.0),
            },
            Err(e) => {
                tracing::debug!(standby = %self.name(), error = %e, "standby poll failed");
                Health {
                    up: false,
                    ..self.health()
                }
            }
        }
    }
}

/// The standbys reads may go to; cheap to clone.
#[derive(Clone)]
pub struct Standbys {
    list: Arc<[Standby]>,
    /// Where the round robin over healthy standbys stands.
    next: Arc<AtomicUsize>,
}

impl Standbys {
    /// Pools on `urls`, connected lazily: a standby that is down at start is
    /// skipped until it answers, not a reason to refuse to start. Each counts
    /// as down until its first poll.
    pub fn connect(urls: &[String], pool_size: u32) -> Result<Standbys, DbError> {
        let mut list = Vec::with_capacity(urls.len());
        for url in urls.iter().map(|u| u.trim()).filter(|u| !u.is_empty()) {
            let options: PgConnectOptions = url.parse().map_err(DbError::BadUrl)?;
            let name = format!(
                "{}:{}/{}",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or(super::PRIVATE_DATABASE)
            );
            let options = options
                .application_name("factlog-reads")
                .options([("jit", "off")]);
            let pool = PgPoolOptions::new()
                .max_connections(pool_size.max(1))
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                .connect_lazy_with(options);
            list.push(Standby(Arc::new(Inner {
                name,
                pool,
                health: Mutex::new(Health::default()),
                replayed: Mutex::new(Vec::new()),
            })));
        }
        Ok(Standbys {
            list: list.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn all(&self) -> &[Standby] {
        &self.list
    }

    /// The healthy standbys, each call starting one further along (so reads
    /// spread over them).
    pub fn rotation(&self) -> impl Iterator<Item = &Standby> {
        let n = self.list.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        self.list
            .iter()
            .cycle()
            .skip(start)
            .take(self.list.len())
            .filter(|s| s.is_up())
    }

    /// The next healthy standby, if any.
    pub fn pick(&self) -> Option<Standby> {
        self.rotation().next().cloned()
    }

    /// Polls every standby each [`HEALTH_EVERY`] until `stop`: up or down,
    /// lag in events against `primary_head` (the log head this process
    /// knows) and in seconds; publishes both as metrics.
    pub fn spawn_health(
        &self,
        primary_head: watch::Receiver<i64>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let standbys = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEALTH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                let head = *primary_head.borrow();
                let polls = standbys.list.iter().map(|s| async move {
                    // A poll never outlasts the period, so a hung standby
                    // cannot hold up the others' reports.
                    let health = tokio::time::timeout(HEALTH_EVERY, s.poll(head))
                        .await
                        .unwrap_or(Health {
                            up: false,
                            ..s.health()
                        });
                    s.set(health);
                });
                futures::future::join_all(polls).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_standby_is_named_without_its_credentials() {
        let s = Standbys::connect(
            &[
                "postgres://reader:s3cret@db-2.example:6432/news".into(),
                " postgres://db-3.example/factlog ".into(),
            ],
            2,
        )
        .expect("valid urls");
        let names: Vec<&str> = s.all().iter().map(Standby::name).collect();
        assert_eq!(
            names,
            ["db-2.example:6432/news", "db-3.example:5432/factlog"]
        );
        assert!(s.pick().is_none(), "no standby counts as up before a poll");
    }

    #[tokio::test]
    async fn what_was_seen_replayed_only_grows_and_is_forgotten_when_down() {
        let s = Standbys::connect(&["postgres://a/x".into()], 1).expect("valid url");
        let a = &s.all()[0];
        a.set(Health {
            up: true,
            head: 7,
            ..Health::default()
        });
        assert_eq!(a.replayed(LOG_HEAD), Some(7));
        a.saw_replayed("facts", 5);
        a.saw_replayed("facts", 3);
        assert_eq!(a.replayed("facts"), Some(5));
        assert_eq!(a.replayed("tree"), None);
        a.mark_down();
        assert_eq!(a.replayed("facts"), None);
        assert_eq!(a.replayed(LOG_HEAD), None);
    }

    #[tokio::test]
    async fn the_rotation_takes_turns_over_healthy_standbys() {
        let s = Standbys::connect(
            &[
                "postgres://a/x".into(),
                "postgres://b/x".into(),
                "postgres://c/x".into(),
            ],
            1,
        )
        .expect("valid urls");
        for standby in s.all() {
            standby.set(Health {
                up: true,
                ..Health::default()
            });
        }
        s.all()[1].mark_down();
        let picks: Vec<String> = (0..4)
            .filter_map(|_| s.pick())
            .map(|p| p.name().to_owned())
            .collect();
        assert!(picks.iter().all(|n| !n.starts_with("b:")), "{picks:?}");
        assert!(picks.iter().any(|n| n.starts_with("a:")), "{picks:?}");
        assert!(picks.iter().any(|n| n.starts_with("c:")), "{picks:?}");
    }
}
