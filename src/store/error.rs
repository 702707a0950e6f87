use thiserror::Error;

use super::event::ExpectedVersion;

/// Everything the log can refuse or fail at. Nothing is written when any of
/// these is returned from an append.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error("event of {size} bytes exceeds the limit of {limit} bytes")]
    EventTooLarge { size: usize, limit: usize },
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    #[error("idempotency key {key} was already used for a different request")]
    IdempotencyKeyReused { key: String },
    /// A unique constraint on the log refused the write (e.g. a story url
    /// registered twice); names the constraint.
    #[error("unique constraint {constraint} refused the write")]
    UniqueViolation { constraint: String },
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("the appender has shut down")]
    Closed,
    /// Something stored is not what the code wrote (a hash of the wrong
    /// length, say): only a hand edit of the database does that.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the failure is the database being away (retry later) rather
    /// than a problem with the request or the data.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Closed)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_connection_error(&e) {
            StoreError::Unavailable(e)
        } else if let Some(db) = e.as_database_error()
            && db.code().as_deref() == Some("23505")
        {
            StoreError::UniqueViolation {
                constraint: db.constraint().unwrap_or_default().to_owned(),
            }
        } else {
            StoreError::Database(e)
        }
    }
}

/// Connection loss, pool exhaustion, or the server shutting down / starting up.
pub fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            // Class 08: connection exception; 57P01-57P03: admin shutdown,
            // crash shutdown, cannot connect now.
            db.code()
                .map(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03"))
                .unwrap_or(false)
        }
        _ => false,
    }
}
