//! `factlog generate --events N`: fills the log with realistic newsroom work
//! (stories, claims on a spread of facts and valid times, confirmations,
//! disputes, corrections) for benchmarks and load tests. Appends go through
//! the event store, so they are chained and ordered like any others.

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{open_database, open_store};
use crate::config::Settings;
use crate::domain::claim::{self, Asserted, ClaimEvent};
use crate::domain::story::{self, STORY_REGISTERED, StoryRegistered};
use crate::domain::text;
use crate::domain::valid_time::ValidTime;
use crate::domain::value::ClaimValue;
use crate::progress::Progress;
use crate::service::log_event;
use crate::store::{
    AppendRequest, EventStore, ExpectedVersion, Metadata, NewEvent, StoreError, StreamAppend,
};

const EDITORS: [&str; 6] = ["ann", "bob", "cy", "dee", "eli", "fay"];

/// A deterministic generator, so two runs make the same log shape.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn one(
    stream: String,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    actor: &str,
) -> AppendRequest {
    AppendRequest {
        streams: vec![StreamAppend {
            stream,
            expected,
            events,
        }],
        metadata: Metadata::by(actor),
        idempotency: None,
    }
}

fn claim_event(e: &ClaimEvent) -> NewEvent {
    log_event(e.type_name(), e.data())
}

/// The appends for one story and its claims (about 10 events).
fn story_work(rng: &mut Rng, facts: u64) -> Result<Vec<AppendRequest>, String> {
    let story_id = Uuid::now_v7();
    let published = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .ok_or("bad date")?
        + Duration::hours(rng.below(24 * 365) as i64);
    let registered = StoryRegistered::new(
        story_id,
        format!("Story {story_id}"),
        "Wire".into(),
        published,
        Some(format!("https://example.org/{story_id}")),
        None,
    );
    let data = serde_json::to_value(&registered).map_err(|e| e.to_string())?;
    let asserter = EDITORS[rng.below(EDITORS.len() as u64) as usize];
    let mut work = vec![one(
        story::stream_name(story_id),
        ExpectedVersion::NoStream,
        vec![log_event(STORY_REGISTERED, data)],
        asserter,
    )];
    for _ in 0..3 {
        let claim_id = Uuid::now_v7();
        let n = rng.below(facts);
        let subject = format!("subject {n}");
        let amount = 1000 + 100 * rng.below(3);
        let valid_at = match rng.below(4) {
            0 => None,
            1 => Some(format!("{}", 2015 + rng.below(6))),
            2 => Some(format!("{}-{:02}", 2015 + rng.below(6), 1 + rng.below(12))),
            _ => Some(format!("2020-01-{:02}", 1 + rng.below(28))),
        };
        let asserted = ClaimEvent::ClaimAsserted(Box::new(Asserted {
            schema: claim::SCHEMA,
            claim_id,
            story_id,
            fact_id: text::fact_id(&subject, "count"),
            subject,
            property: "count".into(),
            value: ClaimValue::parse(&format!(
                r#"{{"kind":"quantity","amount":"{amount}","unit":"person"}}"#
            ))
            .map_err(|e| e.to_string())?,
            quote: "some people were there".into(),
            valid_at: valid_at
                .map(|v| ValidTime::parse(&v))
                .transpose()
                .map_err(|e| e.to_string())?,
            attributed_to: None,
            corrects: None,
            story_published_at: published,
        }));
        let stream = claim::stream_name(claim_id);
        work.push(one(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![claim_event(&asserted)],
            asserter,
        ));
        // Most claims get confirmed by someone else; some disputed after.
        let confirmer = EDITORS
            .iter()
            .copied()
            .find(|e| *e != asserter)
            .unwrap_or("bob");
        if rng.below(10) < 8 {
            let confirmed = ClaimEvent::ClaimConfirmed {
                schema: claim::SCHEMA,
                note: None,
                verified: true,
                confirmations: 1,
                required: 1,
            };
            work.push(one(
                stream.clone(),
                ExpectedVersion::Exact(1),
                vec![claim_event(&confirmed)],
                confirmer,
            ));
            if rng.below(10) == 0 {
                let disputed = ClaimEvent::ClaimDisputed {
                    schema: claim::SCHEMA,
                    reason: "doubt".into(),
                };
                work.push(one(
                    stream,
                    ExpectedVersion::Exact(2),
                    vec![claim_event(&disputed)],
                    "eli",
                ));
            }
        }
    }
    Ok(work)
}

/// Appends `events` (at least) worth of generated work; returns how many.
pub async fn fill(
    store: &EventStore,
    events: u64,
    seed: u64,
    mut progress: impl FnMut(u64),
) -> Result<u64, StoreError> {
    let mut rng = Rng(seed | 1);
    let facts = (events / 50).max(10);
    let mut done = 0u64;
    while done < events {
        // Many stories at once: the group commit batches them.
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let work = story_work(&mut rng, facts).map_err(StoreError::InvalidAppend)?;
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                for req in work {
                    let count = req
                        .streams
                        .iter()
                        .map(|s| s.events.len() as u64)
                        .sum::<u64>();
                    store.append_request(req).await?;
                    n += count;
                }
                Ok::<u64, StoreError>(n)
            }));
        }
        for t in tasks {
            done += t
                .await
                .map_err(|e| StoreError::InvalidAppend(e.to_string()))??;
        }
        progress(done);
    }
    Ok(done)
}

pub async fn generate(settings: &Settings, events: u64, seed: u64) -> anyhow::Result<()> {
    let database = open_database(settings).await?;
    let store = open_store(settings, &database).await?;
    let mut progress = Progress::new("generate", Some(events));
    let result = fill(&store, events, seed, |n| progress.update(n)).await;
    if let Ok(n) = &result {
        progress.finish(*n);
        println!("{}", json!({"events": n}));
    }
    database.close().await;
    Ok(result.map(|_| ())?)
}
