//! The claim life cycle of the contract, one rule per test, each written as
//! given these events, when this command by this editor, then these events
//! or this refusal. The helper folds the given events with `evolve` and
//! asks `decide`, exactly as the service does.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::claim::{
    self, Amendment, Asserted, Claim, ClaimEvent, Command, Context, Recorded, SCHEMA, Status,
};
use super::error::DomainError;
use super::principal::{Actor, Role};
use super::value::ClaimValue;

/// A claim's history so far: events, each by an actor.
struct Given {
    events: Vec<(String, ClaimEvent)>,
    required: u32,
}

fn given(events: &[(&str, ClaimEvent)]) -> Given {
    Given {
        events: events
            .iter()
            .map(|(who, e)| ((*who).to_owned(), e.clone()))
            .collect(),
        required: 1,
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 6, 9, 30, 0)
        .single()
        .unwrap_or_default()
}

impl Given {
    /// With `FACTLOG_REQUIRED_CONFIRMATIONS` at `n`.
    fn requiring(mut self, n: u32) -> Given {
        self.required = n;
        self
    }

    fn state(&self) -> Claim {
        let mut state = None;
        for (i, (who, e)) in self.events.iter().enumerate() {
            let rec = Recorded {
                actor: who.clone(),
                at: t0() + Duration::minutes(i as i64),
            };
            state = claim::evolve(state, e, &rec);
        }
        state.expect("the given events start with ClaimAsserted")
    }

    fn when(&self, who: &str, role: Role, cmd: Command) -> Then {
        let actor = Actor {
            name: who.to_owned(),
            role,
        };
        let state = self.state();
        let outcome = claim::decide(
            &state,
            &cmd,
            &Context {
                actor: &actor,
                required_confirmations: self.required,
            },
        );
        Then { outcome }
    }

    fn when_editor(&self, who: &str, cmd: Command) -> Then {
        self.when(who, Role::Editor, cmd)
    }
}

struct Then {
    outcome: Result<Vec<ClaimEvent>, DomainError>,
}

impl Then {
    fn then(self, expected: &[ClaimEvent]) {
        assert_eq!(self.outcome, Ok(expected.to_vec()));
    }

    fn then_conflict(self) {
        assert!(
            matches!(self.outcome, Err(DomainError::Conflict(_))),
            "expected a conflict (409), got {:?}",
            self.outcome
        );
    }

    fn then_forbidden(self) {
        assert!(
            matches!(self.outcome, Err(DomainError::Forbidden(_))),
            "expected a refusal of this editor (403), got {:?}",
            self.outcome
        );
    }
}

const ANN: &str = "ann";
const BOB: &str = "bob";
const CY: &str = "cy";

fn asserted() -> ClaimEvent {
    asserted_correcting(None)
}

fn asserted_correcting(corrects: Option<Uuid>) -> ClaimEvent {
    ClaimEvent::ClaimAsserted(Box::new(Asserted {
        schema: SCHEMA,
        claim_id: Uuid::from_u128(2),
        story_id: Uuid::from_u128(1),
        subject: "U.S. troops in Iraq".into(),
        property: "troop_count".into(),
        fact_id: Uuid::from_u128(3),
        value: ClaimValue::parse(r#"{"kind":"quantity","amount":"5200","unit":"soldier"}"#)
            .expect("value"),
        quote: "Some 5,200 U.S. soldiers are stationed in Iraq.".into(),
        valid_at: None,
        attributed_to: None,
        corrects,
        story_published_at: t0(),
    }))
}

fn confirm() -> Command {
    Command::Confirm { note: None }
}

fn confirmed(verified: bool, confirmations: u32, required: u32) -> ClaimEvent {
    ClaimEvent::ClaimConfirmed {
        schema: SCHEMA,
        note: None,
        verified,
        confirmations,
        required,
    }
}

fn disputed() -> ClaimEvent {
    ClaimEvent::ClaimDisputed {
        schema: SCHEMA,
        reason: "the Pentagon says 6,000".into(),
    }
}

fn retracted() -> ClaimEvent {
    ClaimEvent::ClaimRetracted {
        schema: SCHEMA,
        reason: "misread the wire".into(),
    }
}

fn amend() -> Command {
    Command::Amend(Box::new(Amendment {
        quote: Some("Some 5,200 U.S. soldiers".into()),
        ..Amendment::default()
    }))
}

#[test]
fn an_asserted_claim_is_pending() {
    assert_eq!(given(&[(ANN, asserted())]).state().status, Status::Pending);
}

#[test]
fn a_confirmation_by_another_editor_verifies_it_and_says_so_in_its_event() {
    let g = given(&[(ANN, asserted())]);
    g.when_editor(BOB, confirm()).then(&[confirmed(true, 1, 1)]);
    let g = given(&[(ANN, asserted()), (BOB, confirmed(true, 1, 1))]);
    assert_eq!(g.state().status, Status::Verified);
}

#[test]
fn the_asserting_editor_cannot_confirm_their_own_claim() {
    given(&[(ANN, asserted())])
        .when_editor(ANN, confirm())
        .then_forbidden();
}

#[test]
fn an_editor_confirms_once_per_round() {
    given(&[(ANN, asserted()), (BOB, confirmed(false, 1, 2))])
        .requiring(2)
        .when_editor(BOB, confirm())
        .then_conflict();
}

#[test]
fn with_two_required_the_second_distinct_editor_verifies() {
    let g = given(&[(ANN, asserted())]).requiring(2);
    g.when_editor(BOB, confirm())
        .then(&[confirmed(false, 1, 2)]);
    let g = given(&[(ANN, asserted()), (BOB, confirmed(false, 1, 2))]).requiring(2);
    assert_eq!(g.state().status, Status::Pending);
    g.when_editor(CY, confirm()).then(&[confirmed(true, 2, 2)]);
}

#[test]
fn a_dispute_unverifies_and_starts_a_new_round() {
    let g = given(&[
        (ANN, asserted()),
        (BOB, confirmed(true, 1, 1)),
        (CY, disputed()),
    ]);
    assert_eq!(g.state().status, Status::Disputed);
    assert!(g.state().confirmations.is_empty());
    // Bob may confirm again: a new round.
    g.when_editor(BOB, confirm()).then(&[confirmed(true, 1, 1)]);
}

#[test]
fn any_editor_may_dispute_or_attach_evidence_even_the_asserter() {
    let g = given(&[(ANN, asserted())]);
    g.when_editor(
        ANN,
        Command::Dispute {
            reason: "the Pentagon says 6,000".into(),
        },
    )
    .then(&[disputed()]);
    let evidence = Command::AttachEvidence {
        url: "https://example.org/pentagon".into(),
        note: None,
    };
    g.when_editor(CY, evidence)
        .then(&[ClaimEvent::EvidenceAttached {
            schema: SCHEMA,
            url: "https://example.org/pentagon".into(),
            note: None,
        }]);
}

#[test]
fn retraction_is_for_the_asserter_or_an_admin() {
    let g = given(&[(ANN, asserted()), (BOB, confirmed(true, 1, 1))]);
    let retract = || Command::Retract {
        reason: "misread the wire".into(),
    };
    g.when_editor(BOB, retract()).then_forbidden();
    g.when_editor(ANN, retract()).then(&[retracted()]);
    g.when("root", Role::Admin, retract()).then(&[retracted()]);
}

#[test]
fn a_retracted_claim_accepts_nothing_more_and_conflict_comes_before_who_asks() {
    let g = given(&[(ANN, asserted()), (ANN, retracted())]);
    assert_eq!(g.state().status, Status::Retracted);
    g.when_editor(BOB, confirm()).then_conflict();
    // The asserter confirming would be 403 on a live claim; here 409 first.
    g.when_editor(ANN, confirm()).then_conflict();
    g.when_editor(BOB, Command::Dispute { reason: "x".into() })
        .then_conflict();
    g.when_editor(ANN, amend()).then_conflict();
}

#[test]
fn only_the_asserter_amends_and_only_while_pending_and_an_amendment_clears_confirmations() {
    let pending = given(&[(ANN, asserted()), (BOB, confirmed(false, 1, 2))]).requiring(2);
    pending.when_editor(BOB, amend()).then_forbidden();
    let Then { outcome } = pending.when_editor(ANN, amend());
    let events = outcome.expect("the asserter amends a pending claim");
    let mut history = pending.events.clone();
    history.push((ANN.to_owned(), events[0].clone()));
    let after = Given {
        events: history,
        required: 2,
    };
    assert!(after.state().confirmations.is_empty());
    assert_eq!(after.state().status, Status::Pending);

    given(&[(ANN, asserted()), (BOB, confirmed(true, 1, 1))])
        .when_editor(ANN, amend())
        .then_conflict();
}

#[test]
fn verifying_a_correction_supersedes_the_claim_it_corrects_and_superseded_is_final() {
    let corrected = given(&[(ANN, asserted()), (BOB, confirmed(true, 1, 1))]).state();
    let correcting = given(&[(CY, asserted_correcting(Some(Uuid::from_u128(2))))]).state();
    let events = [confirmed(true, 1, 1)];
    assert_eq!(
        claim::supersede_on_verify(&events, &correcting, Some(&corrected)),
        Some(ClaimEvent::ClaimSuperseded {
            schema: SCHEMA,
            by: Uuid::from_u128(2),
        })
    );
    // A confirmation that does not verify supersedes nothing.
    assert_eq!(
        claim::supersede_on_verify(&[confirmed(false, 1, 2)], &correcting, Some(&corrected)),
        None
    );
    let g = given(&[
        (ANN, asserted()),
        (BOB, confirmed(true, 1, 1)),
        (
            CY,
            ClaimEvent::ClaimSuperseded {
                schema: SCHEMA,
                by: Uuid::from_u128(9),
            },
        ),
    ]);
    assert_eq!(g.state().status, Status::Superseded);
    g.when_editor(CY, confirm()).then_conflict();
}

#[test]
fn a_later_change_of_the_setting_rewrites_no_history() {
    // Verified under "one confirmation"; the setting is now three.
    let g = given(&[(ANN, asserted()), (BOB, confirmed(true, 1, 1))]).requiring(3);
    assert_eq!(g.state().status, Status::Verified);
    // And a confirmation recorded as not verifying stays so.
    let g = given(&[(ANN, asserted()), (BOB, confirmed(false, 1, 2))]).requiring(1);
    assert_eq!(g.state().status, Status::Pending);
}
