//! Property tests of the claim rules (pure; no database).

use chrono::{TimeZone, Utc};
use factlog::domain::claim::{
    self, Amendment, Asserted, Claim, ClaimEvent, Command, Context, Recorded, Status,
};
use factlog::domain::error::DomainError;
use factlog::domain::principal::{Actor, Role};
use factlog::domain::value::ClaimValue;
use proptest::prelude::*;
use uuid::Uuid;

const ASSERTER: &str = "ed0";

fn actors() -> Vec<Actor> {
    let mut v: Vec<Actor> = (0..4)
        .map(|i| Actor {
            name: format!("ed{i}"),
            role: Role::Editor,
        })
        .collect();
    v.push(Actor {
        name: "root".into(),
        role: Role::Admin,
    });
    v
}

fn asserted() -> ClaimEvent {
    ClaimEvent::ClaimAsserted(Box::new(Asserted {
        schema: claim::SCHEMA,
        claim_id: Uuid::nil(),
        story_id: Uuid::nil(),
        subject: "U.S. troops in Iraq".into(),
        property: "troop_count".into(),
        fact_id: Uuid::nil(),
        value: ClaimValue::parse(r#"{"kind":"quantity","amount":"5200","unit":"soldier"}"#)
            .expect("value"),
        quote: "some 5,200".into(),
        valid_at: None,
        attributed_to: None,
        corrects: None,
        story_published_at: Utc
            .with_ymd_and_hms(2020, 1, 6, 0, 0, 0)
            .single()
            .expect("time"),
    }))
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => Just(Command::Confirm { note: None }),
        2 => Just(Command::Dispute { reason: "doubt".into() }),
        1 => Just(Command::Retract { reason: "wrong".into() }),
        1 => Just(Command::Amend(Box::new(Amendment { quote: Some("some 5,200 U.S.".into()), ..Amendment::default() }))),
        1 => Just(Command::AttachEvidence { url: "https://example.org".into(), note: None }),
    ]
}

fn fold(events: &[(ClaimEvent, Recorded)]) -> Option<Claim> {
    events.iter().fold(None, |s, (e, r)| claim::evolve(s, e, r))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_claim_is_verified_without_someone_else_confirming_and_folding_reproduces_state(
        steps in prop::collection::vec((0usize..5, command()), 0..40),
        required in 1u32..4,
    ) {
        let actors = actors();
        let t0 = Utc.with_ymd_and_hms(2020, 1, 6, 0, 0, 0).single().expect("time");
        let mut log = vec![(asserted(), Recorded { actor: ASSERTER.into(), at: t0 })];
        let mut state = fold(&log).expect("asserted");
        for (i, (who, cmd)) in steps.into_iter().enumerate() {
            let actor = &actors[who];
            let ctx = Context { actor, required_confirmations: required };
            let before = state.clone();
            match claim::decide(&state, &cmd, &ctx) {
                Ok(events) => {
                    prop_assert!(!before.status.is_terminal(), "a terminal claim accepted {cmd:?}");
                    for e in events {
                        // Events survive the trip through the log's storage form.
                        let back = ClaimEvent::from_log(e.type_name(), &e.data()).expect("readable");
                        prop_assert_eq!(&back, &e);
                        // A rebuild reads the data as JSON text: the same event.
                        let text = ClaimEvent::from_log_text(e.type_name(), &e.data().to_string()).expect("readable");
                        prop_assert_eq!(&text, &e);
                        let rec = Recorded { actor: actor.name.clone(), at: t0 + chrono::Duration::seconds(i as i64 + 1) };
                        state = claim::evolve(Some(state), &e, &rec).expect("state");
                        log.push((e, rec));
                    }
                }
                Err(err) => {
                    prop_assert_eq!(&state, &before, "a refusal changes nothing");
                    if before.status.is_terminal() {
                        prop_assert!(matches!(err, DomainError::Conflict(_)));
                    }
                    if matches!(cmd, Command::Confirm { .. }) && actor.name == ASSERTER && !before.status.is_terminal()
                        && !before.confirmations.iter().any(|c| c.by == ASSERTER) {
                        prop_assert!(matches!(err, DomainError::Forbidden(_)));
                    }
                }
            }
            // The invariants, after every step.
            prop_assert!(state.confirmations.iter().all(|c| c.by != ASSERTER), "the asserter never confirms");
            let mut names: Vec<&str> = state.confirmations.iter().map(|c| c.by.as_str()).collect();
            names.sort();
            names.dedup();
            prop_assert_eq!(names.len(), state.confirmations.len(), "one confirmation per editor per round");
            if state.status == Status::Verified {
                prop_assert!(!state.confirmations.is_empty(), "verified without a confirmation in this round");
                let verifying = log.iter().rev().find_map(|(e, _)| match e {
                    ClaimEvent::ClaimConfirmed { verified: true, confirmations, required, .. } => Some((*confirmations, *required)),
                    _ => None,
                });
                let (count, needed) = verifying.expect("a verifying confirmation exists");
                prop_assert!(count >= needed);
            }
            let refolded = fold(&log);
            prop_assert_eq!(refolded.as_ref(), Some(&state), "folding the log reproduces the state");
            prop_assert_eq!(state.version as usize, log.len());
        }
    }
}

#[test]
fn changing_the_setting_rewrites_no_history() {
    let t0 = Utc::now();
    let bob = Actor {
        name: "bob".into(),
        role: Role::Editor,
    };
    let mut state = fold(&[(
        asserted(),
        Recorded {
            actor: ASSERTER.into(),
            at: t0,
        },
    )])
    .expect("claim");
    let events = claim::decide(
        &state,
        &Command::Confirm { note: None },
        &Context {
            actor: &bob,
            required_confirmations: 1,
        },
    )
    .expect("confirm");
    state = claim::evolve(
        Some(state),
        &events[0],
        &Recorded {
            actor: "bob".into(),
            at: t0,
        },
    )
    .expect("state");
    assert_eq!(state.status, Status::Verified);
    // The same events, folded where the setting is now 3: still verified,
    // because the confirmation recorded that it verified the claim.
    let log = [
        (
            asserted(),
            Recorded {
                actor: ASSERTER.into(),
                at: t0,
            },
        ),
        (
            events[0].clone(),
            Recorded {
                actor: "bob".into(),
                at: t0,
            },
        ),
    ];
    assert_eq!(fold(&log).map(|c| c.status), Some(Status::Verified));
}
