//! A claim's life cycle as plain data: the events, the state folded from
//! them (`evolve`), and the rules that turn a command into events (`decide`).
//! No I/O: whatever a rule needs from elsewhere (the story, the corrected
//! claim, the setting) arrives as an argument.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::erasable::{self, ErasedMark};
use super::error::DomainError;
use super::principal::{Actor, Role};
use super::valid_time::ValidTime;
use super::value::ClaimValue;

/// Schema version written into every event's data; upcasters key on it.
pub const SCHEMA: u32 = 1;

/// What every claim's stream name begins with (then the claim's id): a
/// macro, so that SQL statements can `concat!` it.
macro_rules! stream_prefix {
    () => {
        "claim-"
    };
}
pub(crate) use stream_prefix;

pub fn stream_name(id: Uuid) -> String {
    format!(concat!(stream_prefix!(), "{}"), id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ClaimStatus)]
pub enum Status {
    Pending,
    Verified,
    Disputed,
    Retracted,
    Superseded,
}

impl Status {
    /// Retracted and superseded claims accept no further change.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Retracted | Status::Superseded)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Verified => "verified",
            Status::Disputed => "disputed",
            Status::Retracted => "retracted",
            Status::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "verified" => Status::Verified,
            "disputed" => Status::Disputed,
            "retracted" => Status::Retracted,
            "superseded" => Status::Superseded,
            _ => return None,
        })
    }
}

/// Everything recorded when a claim is asserted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asserted {
    pub schema: u32,
    pub claim_id: Uuid,
    pub story_id: Uuid,
    pub subject: String,
    pub property: String,
    pub fact_id: Uuid,
    pub value: ClaimValue,
    /// Empty once erased (the log shows it as `null`).
    #[serde(deserialize_with = "erasable::null_as_empty")]
    pub quote: String,
    #[serde(default)]
    pub valid_at: Option<ValidTime>,
    #[serde(default)]
    pub attributed_to: Option<String>,
    #[serde(default)]
    pub corrects: Option<Uuid>,
    /// The story's publication time: where the claim holds when it has no valid_at.
    pub story_published_at: DateTime<Utc>,
}

/// Fields an amendment may change; `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Amendment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<ClaimValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub valid_at: Option<Option<ValidTime>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub attributed_to: Option<Option<String>>,
}

impl Amendment {
    pub fn is_empty(&self) -> bool {
        self.value.is_none()
            && self.quote.is_none()
            && self.valid_at.is_none()
            && self.attributed_to.is_none()
    }
}

/// `Some(None)` is written as an explicit `null`, absence as no key.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// The events of a claim stream. The `type` tag is the event's type in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ClaimEvent {
    ClaimAsserted(Box<Asserted>),
    ClaimAmended {
        schema: u32,
        changes: Box<Amendment>,
    },
    EvidenceAttached {
        schema: u32,
        url: String,
        #[serde(default)]
        note: Option<String>,
    },
    ClaimConfirmed {
        schema: u32,
        #[serde(default)]
        note: Option<String>,
        /// Whether this confirmation made the claim verified, decided when
        /// it was written: a later change of the setting rewrites nothing.
        verified: bool,
        /// Distinct confirmations in the current round, this one included.
        confirmations: u32,
        /// The setting in force when it was written.
        required: u32,
    },
    ClaimDisputed {
        schema: u32,
        #[serde(deserialize_with = "erasable::null_as_empty")]
        reason: String,
    },
    ClaimRetracted {
        schema: u32,
        #[serde(deserialize_with = "erasable::null_as_empty")]
        reason: String,
    },
    ClaimSuperseded {
        schema: u32,
        by: Uuid,
    },
}

impl ClaimEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            ClaimEvent::ClaimAsserted(_) => "ClaimAsserted",
            ClaimEvent::ClaimAmended { .. } => "ClaimAmended",
            ClaimEvent::EvidenceAttached { .. } => "EvidenceAttached",
            ClaimEvent::ClaimConfirmed { .. } => "ClaimConfirmed",
            ClaimEvent::ClaimDisputed { .. } => "ClaimDisputed",
            ClaimEvent::ClaimRetracted { .. } => "ClaimRetracted",
            ClaimEvent::ClaimSuperseded { .. } => "ClaimSuperseded",
        }
    }

    /// The event's data as stored in the log.
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut m)) => m.remove("data").unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }

    /// Reads an event back from the log's type and data.
    pub fn from_log(event_type: &str, data: &serde_json::Value) -> Result<ClaimEvent, String> {
        serde_json::from_value(serde_json::json!({"type": event_type, "data": data}))
            .map_err(|e| format!("unreadable {event_type} event: {e}"))
    }

    /// [`ClaimEvent::from_log`] from the data's JSON text, without building a
    /// `Value` first (a rebuild reads the whole log this way).
    pub fn from_log_text(event_type: &str, data: &str) -> Result<ClaimEvent, String> {
        let tag = serde_json::to_string(event_type)
            .map_err(|e| format!("unreadable {event_type} event: {e}"))?;
        let mut doc = String::with_capacity(data.len() + tag.len() + 20);
        doc.push_str("{\"type\":");
        doc.push_str(&tag);
        doc.push_str(",\"data\":");
        doc.push_str(data);
        doc.push('}');
        serde_json::from_str(&doc).map_err(|e| format!("unreadable {event_type} event: {e}"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ConfirmationRecord)]
pub struct Confirmation {
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = DisputeRecord)]
pub struct Dispute {
    pub by: String,
    pub at: DateTime<Utc>,
    /// `null` once erased.
    #[serde(
        serialize_with = "erasable::empty_as_null",
        deserialize_with = "erasable::null_as_empty"
    )]
    #[schema(nullable)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = EvidenceRecord)]
pub struct Evidence {
    pub by: String,
    pub at: DateTime<Utc>,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = RetractionRecord)]
pub struct Retraction {
    pub by: String,
    pub at: DateTime<Utc>,
    /// `null` once erased.
    #[serde(
        serialize_with = "erasable::empty_as_null",
        deserialize_with = "erasable::null_as_empty"
    )]
    #[schema(nullable)]
    pub reason: String,
}

/// A claim as its events leave it. Serializable so projections can keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub asserted: Asserted,
    pub asserted_by: String,
    pub asserted_at: DateTime<Utc>,
    pub status: Status,
    /// Confirmations of the current verification round (since the last
    /// dispute or amendment), one per editor.
    pub confirmations: Vec<Confirmation>,
    pub disputes: Vec<Dispute>,
    pub evidence: Vec<Evidence>,
    pub retraction: Option<Retraction>,
    pub superseded_by: Option<Uuid>,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
    /// What erasures removed from the events folded so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased: Option<ErasedMark>,
}

/// Who did it and when, as recorded with an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// Notes on a claim what an erasure removed from the event just folded into
/// it (the mark its opened data carries).
pub fn note_erased(claim: &mut Claim, mark: Option<&ErasedMark>) {
    if let Some(mark) = mark {
        ErasedMark::merge(&mut claim.erased, mark);
    }
}

/// Folds one event into the state. A claim stream starts with ClaimAsserted;
/// anything else on an empty state is ignored (and reported by the caller).
pub fn evolve(state: Option<Claim>, event: &ClaimEvent, rec: &Recorded) -> Option<Claim> {
    let mut claim = match (state, event) {
        (None, ClaimEvent::ClaimAsserted(a)) => {
            return Some(Claim {
                asserted: (**a).clone(),
                asserted_by: rec.actor.clone(),
                asserted_at: rec.at,
                status: Status::Pending,
                confirmations: Vec::new(),
                disputes: Vec::new(),
                evidence: Vec::new(),
                retraction: None,
                superseded_by: None,
                version: 1,
                updated_at: rec.at,
                erased: None,
            });
        }
        (None, _) => return None,
        (Some(c), _) => c,
    };
    claim.version += 1;
    claim.updated_at = rec.at;
    match event {
        ClaimEvent::ClaimAsserted(_) => {}
        ClaimEvent::ClaimAmended { changes, .. } => {
            let a = &mut claim.asserted;
            if let Some(v) = &changes.value {
                a.value = v.clone();
            }
            if let Some(q) = &changes.quote {
                a.quote = q.clone();
            }
            if let Some(v) = &changes.valid_at {
                a.valid_at = *v;
            }
            if let Some(v) = &changes.attributed_to {
                a.attributed_to = v.clone();
            }
            claim.confirmations.clear();
        }
        ClaimEvent::EvidenceAttached { url, note, .. } => claim.evidence.push(Evidence {
            by: rec.actor.clone(),
            at: rec.at,
            url: url.clone(),
            note: note.clone(),
        }),
        ClaimEvent::ClaimConfirmed { note, verified, .. } => {
            claim.confirmations.push(Confirmation {
                by: rec.actor.clone(),
                at: rec.at,
                note: note.clone(),
            });
            if *verified {
                claim.status = Status::Verified;
            }
        }
        ClaimEvent::ClaimDisputed { reason, .. } => {
            claim.disputes.push(Dispute {
                by: rec.actor.clone(),
                at: rec.at,
                reason: reason.clone(),
            });
            claim.confirmations.clear();
            claim.status = Status::Disputed;
        }
        ClaimEvent::ClaimRetracted { reason, .. } => {
            claim.retraction = Some(Retraction {
                by: rec.actor.clone(),
                at: rec.at,
                reason: reason.clone(),
            });
            claim.status = Status::Retracted;
        }
        ClaimEvent::ClaimSuperseded { by, .. } => {
            claim.superseded_by = Some(*by);
            claim.status = Status::Superseded;
        }
    }
    Some(claim)
}

/// What an editor asks of an existing claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Confirm { note: Option<String> },
    Dispute { reason: String },
    Retract { reason: String },
    Amend(Box<Amendment>),
    AttachEvidence { url: String, note: Option<String> },
}

/// The rule context: who asks, and the setting in force now.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub actor: &'a Actor,
    pub required_confirmations: u32,
}

/// Decides what a command on an existing claim records. Rules that forbid a
/// transition whoever asks (409) are checked before rules about who may ask (403).
pub fn decide(
    claim: &Claim,
    cmd: &Command,
    ctx: &Context<'_>,
) -> Result<Vec<ClaimEvent>, DomainError> {
    let who = ctx.actor.name.as_str();
    let is_asserter = claim.asserted_by == who;
    if claim.status.is_terminal() {
        return Err(DomainError::Conflict(format!(
            "the claim is {}; it accepts no further change",
            claim.status.as_str()
        )));
    }
    match cmd {
        Command::Confirm { note } => {
            if claim.confirmations.iter().any(|c| c.by == who) {
                return Err(DomainError::Conflict(
                    "you have already confirmed this claim in its current verification round"
                        .into(),
                ));
            }
            if is_asserter {
                return Err(DomainError::Forbidden(
                    "the editor who asserted a claim cannot confirm it".into(),
                ));
            }
            let confirmations = claim.confirmations.len() as u32 + 1;
            let required = ctx.required_confirmations.max(1);
            let verified = claim.status != Status::Verified && confirmations >= required;
            Ok(vec![ClaimEvent::ClaimConfirmed {
                schema: SCHEMA,
                note: note.clone(),
                verified,
                confirmations,
                required,
            }])
        }
        Command::Dispute { reason } => Ok(vec![ClaimEvent::ClaimDisputed {
            schema: SCHEMA,
            reason: reason.clone(),
        }]),
        Command::Retract { reason } => {
            if !is_asserter && ctx.actor.role != Role::Admin {
                return Err(DomainError::Forbidden(
                    "only the editor who asserted a claim, or an admin, may retract it".into(),
                ));
            }
            Ok(vec![ClaimEvent::ClaimRetracted {
                schema: SCHEMA,
                reason: reason.clone(),
            }])
        }
        Command::Amend(changes) => {
            if claim.status != Status::Pending {
                return Err(DomainError::Conflict(format!(
                    "only a pending claim may be amended; this one is {}",
                    claim.status.as_str()
                )));
            }
            if !is_asserter {
                return Err(DomainError::Forbidden(
                    "only the editor who asserted a claim may amend it".into(),
                ));
            }
            Ok(vec![ClaimEvent::ClaimAmended {
                schema: SCHEMA,
                changes: changes.clone(),
            }])
        }
        Command::AttachEvidence { url, note } => Ok(vec![ClaimEvent::EvidenceAttached {
            schema: SCHEMA,
            url: url.clone(),
            note: note.clone(),
        }]),
    }
}

/// The life-cycle actions an editor may ask of a claim, one per [`Command`]
/// variant, for clients that offer them (the console's buttons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Confirm,
    Dispute,
    Retract,
    Amend,
    AttachEvidence,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Confirm,
        Action::Dispute,
        Action::Retract,
        Action::Amend,
        Action::AttachEvidence,
    ];

    /// Which action a command is.
    pub fn of(cmd: &Command) -> Action {
        match cmd {
            Command::Confirm { .. } => Action::Confirm,
            Command::Dispute { .. } => Action::Dispute,
            Command::Retract { .. } => Action::Retract,
            Command::Amend(_) => Action::Amend,
            Command::AttachEvidence { .. } => Action::AttachEvidence,
        }
    }

    /// A command of this kind whose fields pass every check of their own,
    /// so that [`decide`] answers only about the actor and the state.
    fn probe(self, claim: &Claim) -> Command {
        match self {
            Action::Confirm => Command::Confirm { note: None },
            Action::Dispute => Command::Dispute {
                reason: String::new(),
            },
            Action::Retract => Command::Retract {
                reason: String::new(),
            },
            Action::Amend => Command::Amend(Box::new(Amendment {
                quote: Some(claim.asserted.quote.clone()),
                ..Amendment::default()
            })),
            Action::AttachEvidence => Command::AttachEvidence {
                url: String::new(),
                note: None,
            },
        }
    }
}

/// Whether `ctx.actor` may take `action` on `claim` now, and if not, why:
/// a role that may not write is refused first (as the API refuses it before
/// anything else), then [`decide`] answers for a command of this kind.
/// Asked of `decide` itself, so the two cannot disagree.
pub fn check_action(claim: &Claim, action: Action, ctx: &Context<'_>) -> Result<(), DomainError> {
    if !ctx.actor.role.can_write() {
        return Err(DomainError::Forbidden(format!(
            "the {} role may not write; editors and admins may",
            ctx.actor.role.as_str()
        )));
    }
    decide(claim, &action.probe(claim), ctx).map(|_| ())
}

/// The actions `ctx.actor` may take on `claim` now ([`check_action`]).
pub fn allowed_actions(claim: &Claim, ctx: &Context<'_>) -> Vec<Action> {
    Action::ALL
        .into_iter()
        .filter(|a| check_action(claim, *a, ctx).is_ok())
        .collect()
}

/// When a confirmation verifies a claim that corrects another, the corrected
/// claim is superseded in the same transaction, unless it already is final.
pub fn supersede_on_verify(
    events: &[ClaimEvent],
    correcting: &Claim,
    corrected: Option<&Claim>,
) -> Option<ClaimEvent> {
    let verifies = events
        .iter()
        .any(|e| matches!(e, ClaimEvent::ClaimConfirmed { verified: true, .. }));
    let target = corrected?;
    (verifies
        && correcting.asserted.corrects == Some(target.asserted.claim_id)
        && !target.status.is_terminal())
    .then_some(ClaimEvent::ClaimSuperseded {
        schema: SCHEMA,
        by: correcting.asserted.claim_id,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn actor(name: &str, role: Role) -> Actor {
        Actor {
            name: name.into(),
            role,
        }
    }

    fn rec(actor: &str) -> Recorded {
        Recorded {
            actor: actor.into(),
            at: Utc
                .with_ymd_and_hms(2020, 1, 6, 0, 0, 0)
                .single()
                .expect("time"),
        }
    }

    fn asserted_by(name: &str) -> Claim {
        let a = Asserted {
            schema: SCHEMA,
            claim_id: Uuid::nil(),
            story_id: Uuid::nil(),
            subject: "s".into(),
            property: "p".into(),
            fact_id: Uuid::nil(),
            value: ClaimValue::Text("t".into()),
            quote: "q".into(),
            valid_at: None,
            attributed_to: None,
            corrects: None,
            story_published_at: rec(name).at,
        };
        evolve(None, &ClaimEvent::ClaimAsserted(Box::new(a)), &rec(name)).expect("claim")
    }

    fn then(claim: Claim, event: ClaimEvent, by: &str) -> Claim {
        evolve(Some(claim), &event, &rec(by)).expect("claim")
    }

    /// Claims in every status, asserted by `ann`, `bob` having confirmed
    /// the verified one.
    fn states() -> Vec<Claim> {
        let pending = asserted_by("ann");
        let verified = then(
            pending.clone(),
            ClaimEvent::ClaimConfirmed {
                schema: SCHEMA,
                note: None,
                verified: true,
                confirmations: 1,
                required: 1,
            },
            "bob",
        );
        let disputed = then(
            pending.clone(),
            ClaimEvent::ClaimDisputed {
                schema: SCHEMA,
                reason: "r".into(),
            },
            "bob",
        );
        let retracted = then(
            pending.clone(),
            ClaimEvent::ClaimRetracted {
                schema: SCHEMA,
                reason: "r".into(),
            },
            "ann",
        );
        let superseded = then(
            verified.clone(),
            ClaimEvent::ClaimSuperseded {
                schema: SCHEMA,
                by: Uuid::nil(),
            },
            "bob",
        );
        vec![pending, verified, disputed, retracted, superseded]
    }

    fn actors() -> Vec<Actor> {
        vec![
            actor("ann", Role::Editor),
            actor("bob", Role::Editor),
            actor("cy", Role::Editor),
            actor("root", Role::Admin),
            actor("rita", Role::Reader),
            actor("audrey", Role::Auditor),
        ]
    }

    fn real_commands() -> Vec<Command> {
        vec![
            Command::Confirm {
                note: Some("checked".into()),
            },
            Command::Dispute {
                reason: "doubt".into(),
            },
            Command::Retract {
                reason: "wrong".into(),
            },
            Command::Amend(Box::new(Amendment {
                value: Some(ClaimValue::Text("u".into())),
                ..Amendment::default()
            })),
            Command::AttachEvidence {
                url: "https://example.org/a".into(),
                note: None,
            },
        ]
    }

    #[test]
    fn allowed_actions_are_exactly_what_decide_accepts_of_a_writer() {
        for claim in states() {
            for a in actors() {
                let ctx = Context {
                    actor: &a,
                    required_confirmations: 2,
                };
                let allowed = allowed_actions(&claim, &ctx);
                for cmd in real_commands() {
                    let accepted = a.role.can_write() && decide(&claim, &cmd, &ctx).is_ok();
                    assert_eq!(
                        allowed.contains(&Action::of(&cmd)),
                        accepted,
                        "{} ({:?}) on a {} claim: {cmd:?}",
                        a.name,
                        a.role,
                        claim.status.as_str()
                    );
                }
            }
        }
    }

    #[test]
    fn allowed_actions_by_example() {
        use Action::*;
        let [pending, verified, disputed, retracted, superseded] =
            <[Claim; 5]>::try_from(states()).expect("five");
        let ctx = |a: &Actor| {
            allowed_actions(
                &pending,
                &Context {
                    actor: a,
                    required_confirmations: 1,
                },
            )
        };
        assert_eq!(
            ctx(&actor("ann", Role::Editor)),
            vec![Dispute, Retract, Amend, AttachEvidence],
            "the asserter may not confirm"
        );
        assert_eq!(
            ctx(&actor("bob", Role::Editor)),
            vec![Confirm, Dispute, AttachEvidence]
        );
        assert_eq!(
            ctx(&actor("root", Role::Admin)),
            vec![Confirm, Dispute, Retract, AttachEvidence]
        );
        assert!(ctx(&actor("rita", Role::Reader)).is_empty());
        assert!(ctx(&actor("audrey", Role::Auditor)).is_empty());
        let on = |c: &Claim, a: &Actor| {
            allowed_actions(
                c,
                &Context {
                    actor: a,
                    required_confirmations: 1,
                },
            )
        };
        let bob = actor("bob", Role::Editor);
        assert_eq!(
            on(&verified, &bob),
            vec![Dispute, AttachEvidence],
            "confirmed once"
        );
        assert_eq!(
            on(&disputed, &bob),
            vec![Confirm, Dispute, AttachEvidence],
            "a dispute opens a new round"
        );
        assert_eq!(
            on(&disputed, &actor("ann", Role::Editor)),
            vec![Dispute, Retract, AttachEvidence],
            "no amending once disputed"
        );
        assert!(on(&retracted, &actor("root", Role::Admin)).is_empty());
        assert!(on(&superseded, &actor("ann", Role::Editor)).is_empty());
    }
}
