//! The read endpoints: lists, facts (now, as of, at a valid time), history,
//! audit, events and integrity.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::auth::{Auditor, Caller};
use super::error::ApiError;
use super::params::Params;
use super::write::path_id;
use super::{AppState, SharedState};
use crate::domain::claim::Status;
use crate::domain::error::FieldError;
use crate::domain::fact::FactStatus;
use crate::domain::text::normalize_key;
use crate::domain::valid_time::ValidTime;
use crate::projections::read::{ClaimFilter, FactFilter};
use crate::service::reads::{CLAIMS, FACT_DOCUMENTS, FACTS, Page, Source};
use crate::store::AuditFilter;
use crate::store::integrity::{IntegrityState, VerifierConfig};

pub async fn wait(state: &AppState, p: &Params, source: Source) -> Result<(), ApiError> {
    if let Some(position) = p.wait_for()? {
        state.services.wait_for(source, position).await?;
    }
    Ok(())
}

/// A page as listings answer it.
#[derive(Serialize)]
pub struct Listing<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

fn listing<T: Serialize>(page: Page<T>) -> Json<Listing<T>> {
    Json(Listing {
        items: page.items,
        next_cursor: page.next,
    })
}

pub async fn list_claims(
    State(state): State<SharedState>,
    Caller(_): Caller,
    p: Params,
) -> Result<Json<Listing<Value>>, ApiError> {
    let status = p
        .text("status")?
        .map(|s| {
            Status::parse(&s)
                .map(|s| s.as_str().to_owned())
                .ok_or_else(|| {
                    FieldError::new(
                        "status",
                        "must be pending, verified, disputed, retracted or superseded",
                    )
                })
        })
        .transpose()?;
    let filter = ClaimFilter {
        status,
        story_id: p.uuid("story_id")?,
        asserted_by: p.text("asserted_by")?,
    };
    let (cursor, limit) = (p.uuid_cursor()?, p.limit()?);
    wait(&state, &p, CLAIMS).await?;
    Ok(listing(
        state.services.list_claims(&filter, cursor, limit).await?,
    ))
}

pub async fn list_facts(
    State(state): State<SharedState>,
    Caller(_): Caller,
    p: Params,
) -> Result<Json<Listing<Box<RawValue>>>, ApiError> {
    let status = p
        .text("status")?
        .map(|s| {
            FactStatus::parse(&s)
                .map(|s| s.as_str().to_owned())
                .ok_or_else(|| {
                    FieldError::new("status", "must be verified, contested or unverified")
                })
        })
        .transpose()?;
    let filter = FactFilter {
        subject_key: p.text("subject")?.map(|s| normalize_key(&s)),
        property_key: p.text("property")?.map(|s| normalize_key(&s)),
        status,
    };
    let (cursor, limit) = (p.uuid_cursor()?, p.limit()?);
    // The documents come through the fact cache, as single reads do.
    wait(&state, &p, FACT_DOCUMENTS).await?;
    Ok(listing(
        state.services.list_facts(&filter, cursor, limit).await?,
    ))
}

pub async fn get_fact(
    State(state): State<SharedState>,
    Caller(_): Caller,
    Path(id): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "fact")?;
    let as_of = p.time("as_of")?;
    let valid_at = p
        .text("valid_at")?
        .map(|s| ValidTime::parse_field("valid_at", &s))
        .transpose()?;
    if as_of.is_none() && valid_at.is_none() {
        // The plain read: the current document's bytes, through the fact cache.
        wait(&state, &p, FACT_DOCUMENTS).await?;
        let body = state
            .services
            .fact_document(id)
            .await?
            .ok_or_else(|| ApiError::not_found("fact"))?;
        return Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response());
    }
    // As of a record time: computed from the claim versions (the projection);
    // at a valid time: from the current document.
    wait(
        &state,
        &p,
        if as_of.is_some() {
            FACTS
        } else {
            FACT_DOCUMENTS
        },
    )
    .await?;
    let fact = state
        .services
        .fact(id, as_of, valid_at)
        .await?
        .ok_or_else(|| match as_of {
            Some(_) => ApiError::NotFound("no fact has this id at that record time".into()),
            None => ApiError::not_found("fact"),
        })?;
    Ok(Json(fact).into_response())
}

pub async fn fact_history(
    State(state): State<SharedState>,
    Caller(_): Caller,
    Path(id): Path<String>,
    p: Params,
) -> Result<Json<Listing<Value>>, ApiError> {
    let id = path_id(&id, "fact")?;
    let (cursor, limit) = (p.position_cursor()?, p.limit()?);
    wait(&state, &p, FACTS).await?;
    let page = state
        .services
        .fact_history(id, cursor, limit)
        .await?
        .ok_or_else(|| ApiError::not_found("fact"))?;
    Ok(listing(page))
}

pub async fn audit(
    State(state): State<SharedState>,
    Auditor(_): Auditor,
    p: Params,
) -> Result<Json<Listing<Value>>, ApiError> {
    let filter = AuditFilter {
        actor: p.text("actor")?,
        since: p.time("since")?,
        until: p.time("until")?,
    };
    let (cursor, limit) = (p.position_cursor()?, p.limit()?);
    wait(&state, &p, Source::Log).await?;
    Ok(listing(state.services.audit(&filter, cursor, limit).await?))
}

pub async fn events(
    State(state): State<SharedState>,
    Auditor(_): Auditor,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let after = p.position("after")?.unwrap_or(0);
    let limit = p.limit()?;
    wait(&state, &p, Source::Log).await?;
    let events = state.services.events(after, limit).await?;
    let next_after = events
        .last()
        .and_then(|e| e.get("position"))
        .and_then(Value::as_i64)
        .unwrap_or(after);
    Ok(Json(json!({"events": events, "next_after": next_after})))
}

pub async fn integrity(
    State(state): State<SharedState>,
    Auditor(_): Auditor,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    wait(&state, &p, Source::Log).await?;
    let r = state.services.integrity().await?;
    Ok(Json(json!({
        "ok": r.ok,
        "checked": r.checked,
        "first_bad_position": r.first_bad_position,
        "head": {"position": r.head_position, "hash": r.head_hash},
        "unverified": r.unverified,
        "verified": {
            "position": r.state.position,
            "hash": hex::encode(r.state.hash),
            "at": r.state.extended_at,
        },
        "full_check": full_check_json(&r.state, state.services.verifier()),
    })))
}

/// The last full pass over the chain, and the next.
fn full_check_json(s: &IntegrityState, config: &VerifierConfig) -> Value {
    json!({
        "started_at": s.full_started_at,
        "finished_at": s.full_finished_at,
        "checked": s.full_checked,
        "ok": s.full_ok,
        "requested_at": s.full_requested_at,
        "requested_by": s.full_requested_by,
        "pending": s.full_pending(),
        "next_at": s.next_full_at(config),
    })
}

/// `POST /v1/integrity/checks`: asks the verifier for a full pass over the
/// chain. Asking again before it starts changes nothing; passes are at
/// least the verifier's minimum gap apart, whoever asks.
pub async fn request_full_check(
    State(state): State<SharedState>,
    Auditor(actor): Auditor,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = state.services.request_full_check(&actor.name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"full_check": full_check_json(&s, state.services.verifier())})),
    ))
}
