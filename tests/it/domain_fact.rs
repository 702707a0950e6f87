//! Property test of the facts projection's in-place update (pure; no
//! database): a fact's summary with some claims changed equals the summary
//! of all of its claims, and gives the status, value, valid time, subject and
//! property of the document computed from all of them.

use chrono::{Duration, TimeZone, Utc};
use factlog::domain::claim::{self, Asserted, Claim, ClaimEvent, Command, Context, Recorded};
use factlog::domain::fact;
use factlog::domain::principal::{Actor, Role};
use factlog::domain::valid_time::ValidTime;
use factlog::domain::value::ClaimValue;
use proptest::prelude::*;
use uuid::Uuid;

/// One claim: its id, record time (few distinct ones, so ties happen),
/// value, valid time, and the commands applied to it after the assert.
#[derive(Debug, Clone)]
struct Spec {
    id: u128,
    at: i64,
    amount: u8,
    valid: u8,
    commands: Vec<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<u128>(),
        0i64..3,
        0u8..3,
        0u8..3,
        prop::collection::vec(0u8..3, 0..4),
    )
        .prop_map(|(id, at, amount, valid, commands)| Spec {
            id,
            at,
            amount,
            valid,
            commands,
        })
}

/// The claim's states: after its assert, then after each command that
/// applied.
fn states(s: &Spec) -> Vec<Claim> {
    let t0 = Utc
        .with_ymd_and_hms(2020, 1, 6, 0, 0, 0)
        .single()
        .expect("time");
    let asserted = ClaimEvent::ClaimAsserted(Box::new(Asserted {
        schema: claim::SCHEMA,
        claim_id: Uuid::from_u128(s.id),
        story_id: Uuid::nil(),
        subject: format!("Subject {}", s.id % 2),
        property: "count".into(),
        fact_id: Uuid::nil(),
        value: ClaimValue::parse(&format!(
            r#"{{"kind":"quantity","amount":"{}","unit":"soldier"}}"#,
            5200 + u32::from(s.amount)
        ))
        .expect("value"),
        quote: "some".into(),
        valid_at: (s.valid > 0)
            .then(|| ValidTime::parse(&format!("2020-01-0{}", s.valid)).expect("valid time")),
        attributed_to: None,
        corrects: None,
        story_published_at: t0,
    }));
    let at = t0 + Duration::seconds(s.at);
    let mut state = claim::evolve(
        None,
        &asserted,
        &Recorded {
            actor: "ed0".into(),
            at,
        },
    )
    .expect("asserted");
    let mut out = vec![state.clone()];
    for (i, c) in s.commands.iter().enumerate() {
        let actor = Actor {
            name: format!("ed{}", 1 + i % 2),
            role: Role::Editor,
        };
        let cmd = match c {
            0 | 1 => Command::Confirm { note: None },
            _ => Command::Dispute {
                reason: "doubt".into(),
            },
        };
        let ctx = Context {
            actor: &actor,
            required_confirmations: 1,
        };
        let Ok(events) = claim::decide(&state, &cmd, &ctx) else {
            continue;
        };
        let rec = Recorded {
            actor: actor.name.clone(),
            at: at + Duration::seconds(10 + i as i64),
        };
        for e in &events {
            state = claim::evolve(Some(state), e, &rec).expect("state");
        }
        out.push(state.clone());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_summary_updated_in_place_equals_one_from_all_claims_and_heads_the_document(
        specs in prop::collection::vec((spec(), any::<prop::sample::Index>(), any::<bool>()), 1..8),
    ) {
        let fact_id = Uuid::from_u128(7);
        let all: Vec<Vec<Claim>> = specs.iter().map(|(s, _, _)| states(s)).collect();
        let finals: Vec<&Claim> = all.iter().map(|v| v.last().expect("a state")).collect();
        let fresh = fact::compute(fact_id, finals.iter().copied()).expect("a fact");

        // Before the batch: each claim absent (`new`) or at some earlier state.
        let mut before = Vec::new();
        let mut changed = Vec::new();
        for ((_, pick, new), states) in specs.iter().zip(&all) {
            let last = states.last().expect("a state");
            if *new {
                changed.push(last);
                continue;
            }
            let earlier = &states[pick.index(states.len())];
            before.push(earlier);
            if !std::ptr::eq(earlier, last) {
                changed.push(last);
            }
        }
        let all_now = fact::Summary::of(finals.iter().copied()).expect("a summary");
        let updated = match fact::Summary::of(before.iter().copied()) {
            Some(summary) => summary.with_changes(changed.iter().copied()),
            None => fact::Summary::of(changed.iter().copied()).expect("a summary"),
        };
        prop_assert_eq!(&updated, &all_now);
        // The headline the row is filtered by is the document's own.
        let headline = updated.headline(fact_id);
        prop_assert_eq!(
            (headline.status, &headline.value, &headline.valid_at, &headline.subject, &headline.property),
            (fresh.status, &fresh.value, &fresh.valid_at, &fresh.subject, &fresh.property)
        );
    }
}
