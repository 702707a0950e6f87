//! A short chained log made the way the appender makes it, for the unit
//! tests of the readers and writers of exported logs.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::chain::{self, ChainFields, GENESIS, HASH_LEN};
use super::leaf::{self, LeafFields};
use super::seal;

pub const STREAM: &str = "claim-1";
pub const EVENT_TYPE: &str = "ClaimAsserted";
pub const ACTOR: &str = "ann";

/// One event of [`chained`], in every form a test may need.
pub struct TestEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    /// The data as readers see it, values in place.
    pub shown: Value,
    /// The stored data's canonical JSON text (sealed values as commitments).
    pub data: String,
    pub secrets: Option<Value>,
    pub prev: [u8; HASH_LEN],
    pub hash: [u8; HASH_LEN],
    pub leaf: [u8; 32],
}

/// Events at positions 1, 2, … of one stream, each with the data `data`
/// gives for its position, and `sealed` of its paths sealed.
pub fn chained(count: i64, data: impl Fn(i64) -> (Value, Vec<&'static str>)) -> Vec<TestEvent> {
    let mut prev = GENESIS;
    (1..=count)
        .map(|position| {
            let (shown, sealed) = data(position);
            let mut stored = shown.clone();
            let secrets = seal::seal(&mut stored, &sealed).expect("the paths exist");
            let data = chain::canonical_json(&stored);
            let recorded_at = DateTime::from_timestamp_micros(1_700_000_000_000_000 + position)
                .expect("in range");
            let event_id = Uuid::now_v7();
            let hash = chain::link(
                &prev,
                &ChainFields {
                    position,
                    event_id,
                    stream: STREAM,
                    version: position,
                    event_type: EVENT_TYPE,
                    data: &data,
                    actor: ACTOR,
                    metadata: "{}",
                    recorded_at,
                },
            );
            let leaf = leaf::leaf_hash(&LeafFields {
                position,
                stream: STREAM,
                version: position,
                event_type: EVENT_TYPE,
                recorded_at,
                actor: ACTOR,
                data: &data,
            });
            let event = TestEvent {
                position,
                event_id,
                recorded_at,
                shown,
                data,
                secrets,
                prev,
                hash,
                leaf,
            };
            prev = hash;
            event
        })
        .collect()
}
