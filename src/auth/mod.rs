//! Bearer tokens: issuing and revoking them (recorded as events), and
//! recognising them on requests without a database round trip each time.

mod cache;
mod tokens;

pub use cache::{MIN_RELOAD_GAP, REFRESH, TokenCache};

/// [`REFRESH`] in whole seconds, for messages.
pub const REFRESH_SECS: u64 = 2;
pub use tokens::{TokenError, create, hash_token, revoke};

/// The stream that records who was given access, and when it was taken away.
pub const PRINCIPALS_STREAM: &str = "principals";
