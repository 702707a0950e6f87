//! The auditor's check (`factlog audit`): from a checkpoint the auditor
//! saved and the verifier key they hold, prove that the log only grew and,
//! with `--events`, that every event added since is what the new signed root
//! covers. It trusts nothing the server says: every hash the server sends is
//! checked against a root signed with the auditor's key before it is used.

mod source;

use futures::StreamExt;
use thiserror::Error;

pub use source::{Source, SourceError};

use crate::merkle::{
    Checkpoint, Frontier, Hash, NoteError, NoteVerifier, ProofError, open, verify_consistency,
    verify_inclusion,
};
use crate::store::RecordedEvent;
use crate::store::chain::canonical_json;
use crate::store::leaf::{LeafFields, leaf_hash};
use crate::store::seal::reseal;

/// Events asked for per page (the API's largest page).
const PAGE: u64 = 1_000;

/// Pages asked for at once.
const IN_FLIGHT: usize = 2;

/// The recomputed root is kept every this many events, so that a mismatch
/// can be narrowed to one event with a few proofs (`find_altered`).
const MARK: u64 = 1_024;

/// What failed, in words an auditor can act on.
#[derive(Debug, Error)]
pub enum AuditError {
    #[error("the saved checkpoint does not verify with the key: {0}")]
    SavedCheckpoint(NoteError),
    #[error("the server's latest checkpoint does not verify with the key: {0}")]
    LatestCheckpoint(NoteError),
    #[error("the server's checkpoint is of log {latest:?}, the saved one of log {saved:?}")]
    Origin { saved: String, latest: String },
    #[error(
        "the log shrank: the server's latest checkpoint has {latest} events, the saved one {saved} \
         (a truncated or rewritten log)"
    )]
    Shrank { saved: u64, latest: u64 },
    #[error(
        "the log was rewritten: no proof that the tree of {latest} events extends the saved tree \
         of {saved} ({reason})"
    )]
    Rewritten {
        saved: u64,
        latest: u64,
        reason: ProofError,
    },
    #[error("the server's proof for event {position} in the saved tree fails: {reason}")]
    SavedEdge { position: u64, reason: ProofError },
    #[error("event {position}: {reason}")]
    Event { position: u64, reason: String },
    #[error(
        "the events {from}..={to} do not hash to the signed root of {to} events \
         (an event was altered, dropped or inserted)"
    )]
    NewLeaves { from: u64, to: u64 },
    #[error(
        "event {position} is not the event the signed root of {size} events covers: its fields \
         hash to leaf {leaf}, which that tree does not hold (the event was altered after it was signed)"
    )]
    Altered {
        position: u64,
        size: u64,
        leaf: String,
    },
    #[error("the server stopped returning events after position {after}; the checkpoint has {to}")]
    MissingEvents { after: u64, to: u64 },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the audit was stopped before it had checked every event")]
    Stopped,
}

/// What an audit established.
#[derive(Debug)]
pub struct AuditReport {
    pub saved: Checkpoint,
    pub latest: Checkpoint,
    /// The latest checkpoint's signed note, to save in place of the old one.
    pub latest_note: String,
    /// Events whose leaves were recomputed (0 without `--events`).
    pub events_checked: u64,
}

/// Checks the log behind `source` against the `saved` signed note;
/// `progress` hears (events recomputed, events to recompute).
pub async fn audit(
    source: &Source,
    saved_note: &str,
    key: &NoteVerifier,
    with_events: bool,
    mut progress: impl FnMut(u64, u64),
) -> Result<AuditReport, AuditError> {
    let saved = open(saved_note, key).map_err(AuditError::SavedCheckpoint)?;
    let latest_note = source.latest_checkpoint().await?;
    let latest = open(&latest_note, key).map_err(AuditError::LatestCheckpoint)?;
    if latest.origin != saved.origin {
        return Err(AuditError::Origin {
            saved: saved.origin,
            latest: latest.origin,
        });
    }
    if latest.size < saved.size {
        return Err(AuditError::Shrank {
            saved: saved.size,
            latest: latest.size,
        });
    }
    if saved.size > 0 {
        let path = if latest.size == saved.size {
            Vec::new()
        } else {
            source.consistency(saved.size, latest.size).await?
        };
        verify_consistency(saved.size, latest.size, &saved.root, &latest.root, &path).map_err(
            |reason| AuditError::Rewritten {
                saved: saved.size,
                latest: latest.size,
                reason,
            },
        )?;
    }
    let events_checked = if with_events {
        recompute_new_leaves(source, &saved, &latest, &mut progress).await?
    } else {
        0
    };
    Ok(AuditReport {
        saved,
        latest,
        latest_note,
        events_checked,
    })
}

/// Hashes every event after the saved tree onto its right edge and compares
/// the result with the latest signed root. The edge comes from the server
/// but is checked against the saved root first.
async fn recompute_new_leaves(
    source: &Source,
    saved: &Checkpoint,
    latest: &Checkpoint,
    progress: &mut impl FnMut(u64, u64),
) -> Result<u64, AuditError> {
    let edge = if saved.size == 0 {
        Frontier::new()
    } else {
        let (leaf, path) = source.inclusion(saved.size, saved.size).await?;
        Frontier::from_last_leaf(saved.size, &saved.root, &leaf, &path).map_err(|reason| {
            AuditError::SavedEdge {
                position: saved.size,
                reason,
            }
        })?
    };
    let mut pass = Pass {
        after: saved.size,
        edge,
        marks: Vec::new(),
    };
    let size = latest.size;
    // Pages are full but for the last (positions have no gaps), so where
    // each starts is known ahead: [`IN_FLIGHT`] are asked for at once, for
    // the server to read and write on both cores, while the page before
    // is decoded and hashed here on a thread of its own.
    let pages = |from: u64| {
        futures::stream::iter((from..size).step_by(PAGE as usize))
            .map(move |at| async move {
                (at, source.events_undecoded(at, PAGE.min(size - at)).await)
            })
            .buffered(IN_FLIGHT)
    };
    let mut stream = Box::pin(pages(pass.after));
    let mut next = stream.next().await;
    while pass.after < size {
        let Some((at, page)) = next.take() else {
            return Err(AuditError::MissingEvents {
                after: pass.after,
                to: size,
            });
        };
        let page = page?;
        let check = tokio::task::spawn_blocking(move || {
            let events = page.decode()?;
            if events.is_empty() {
                return Err(AuditError::MissingEvents {
                    after: pass.after,
                    to: size,
                });
            }
            check_page(events, size, &mut pass)?;
            Ok(pass)
        });
        let (following, checked) = tokio::join!(stream.next(), check);
        pass = match checked {
            Ok(checked) => checked?,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => return Err(AuditError::Stopped),
            },
        };
        progress(pass.after - saved.size, size - saved.size);
        next = following;
        if pass.after < size && pass.after != (at + PAGE).min(size) {
            // A short page (a server with smaller pages): the pages asked
            // for ahead start in the wrong places; ask again from here.
            stream = Box::pin(pages(pass.after));
            next = stream.next().await;
        }
    }
    if pass.edge.root() != latest.root {
        return Err(find_altered(source, saved.size, latest, &pass.marks).await);
    }
    Ok(latest.size - saved.size)
}

/// How far recomputing the new leaves has come.
struct Pass {
    /// The last position hashed onto `edge`.
    after: u64,
    edge: Frontier,
    /// The root after every [`MARK`] events.
    marks: Vec<(u64, Hash)>,
}

/// Recomputes the leaves of one page of events after `pass.after`, in
/// order, onto its edge, keeping a root every [`MARK`] events.
fn check_page(page: Vec<RecordedEvent>, size: u64, pass: &mut Pass) -> Result<(), AuditError> {
    for mut event in page {
        if pass.after >= size {
            break;
        }
        let position = pass.after + 1;
        if event.position as u64 != position {
            return Err(AuditError::Event {
                position,
                reason: format!("the server sent position {} in its place", event.position),
            });
        }
        let leaf =
            resealed_leaf(&mut event).map_err(|reason| AuditError::Event { position, reason })?;
        let mut text = [0u8; 64];
        // Cannot fail: 64 bytes is a 32-byte hash's hex.
        let _ = hex::encode_to_slice(leaf, &mut text);
        if text[..] != *event.leaf_hash.as_bytes() {
            return Err(AuditError::Event {
                position,
                reason: format!(
                    "its fields hash to leaf {}, but the server says {}",
                    hex::encode(leaf),
                    event.leaf_hash
                ),
            });
        }
        pass.edge.push(leaf);
        pass.after = position;
        if position.is_multiple_of(MARK) {
            pass.marks.push((position, pass.edge.root()));
        }
    }
    Ok(())
}

/// Names the first event whose leaf the signed tree does not hold: the
/// first mark whose root the latest tree does not prove to extend, then,
/// within that stretch, the first event without an inclusion proof.
async fn find_altered(
    source: &Source,
    start: u64,
    latest: &Checkpoint,
    marks: &[(u64, Hash)],
) -> AuditError {
    let extends = async |size: u64, root: &Hash| match source.consistency(size, latest.size).await {
        Ok(path) => verify_consistency(size, latest.size, root, &latest.root, &path).is_ok(),
        Err(_) => false,
    };
    // Marks before the bad event prove consistent, those after do not.
    let (mut good, mut bad) = (0, marks.len());
    while good < bad {
        let mid = (good + bad) / 2;
        let (size, root) = &marks[mid];
        if extends(*size, root).await {
            good = mid + 1;
        } else {
            bad = mid;
        }
    }
    let from = if good == 0 { start } else { marks[good - 1].0 };
    let to = marks.get(good).map_or(latest.size, |m| m.0);
    let generic = AuditError::NewLeaves {
        from: start + 1,
        to: latest.size,
    };
    let Ok(events) = source.events(from, to - from).await else {
        return generic;
    };
    for event in &events {
        let (position, Ok(leaf)) = (event.position as u64, published_leaf(event)) else {
            continue;
        };
        let holds = match source.inclusion(position, latest.size).await {
            Ok((_, path)) => {
                verify_inclusion(&leaf, position - 1, latest.size, &path, &latest.root).is_ok()
            }
            Err(_) => false,
        };
        if !holds {
            return AuditError::Altered {
                position,
                size: latest.size,
                leaf: hex::encode(leaf),
            };
        }
    }
    generic
}

/// The leaf hash of an event as `/v1/events` shows it (AUDITING.md, "The
/// leaf"): each salted value back to its commitment (an erased one's is
/// shown in its `erased` mark), then the leaf.
pub fn published_leaf(event: &RecordedEvent) -> Result<Hash, String> {
    if event.salts.is_empty() && event.data.get("erased").is_none() {
        // Nothing to reseal, so no copy to make.
        return Ok(stored_leaf(event));
    }
    resealed_leaf(&mut event.clone())
}

/// [`published_leaf`], resealing the event's values where they lie: its
/// `data` is left as stored.
fn resealed_leaf(event: &mut RecordedEvent) -> Result<Hash, String> {
    reseal(&mut event.data, &event.salts)?;
    Ok(stored_leaf(event))
}

/// The leaf of an event whose `data` is as stored (sealed values as their
/// commitments).
fn stored_leaf(event: &RecordedEvent) -> Hash {
    leaf_hash(&LeafFields {
        position: event.position,
        stream: &event.stream,
        version: event.version,
        event_type: &event.event_type,
        recorded_at: event.recorded_at,
        actor: &event.actor,
        data: &canonical_json(&event.data),
    })
}
