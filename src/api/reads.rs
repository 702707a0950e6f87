//! The read endpoints: lists, facts (now, as of, at a valid time), history,
//! audit, events and integrity.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{Auditor, Caller};
use super::claim_review;
use super::csv;
use super::error::{ApiError, Problem};
use super::negotiate::{self, Accept};
use super::openapi::{AcceptProblems, QueryProblems, TokenProblems, WaitProblems};
use super::params::{Limit, Paging, Params, WaitFor, text_filters};
use super::write::path_id;
use super::{AppState, SharedState};
use crate::domain::claim::Status;
use crate::domain::error::FieldError;
use crate::domain::fact::{Fact, FactStatus};
use crate::domain::text::normalize_key;
use crate::domain::valid_time::ValidTime;
use crate::projections::read::{ClaimFilter, FactFilter};
use crate::service::reads::{CLAIMS, FACT_DOCUMENTS, FACTS, HistoryItem, Page, Source};
use crate::service::view::ClaimView;
use crate::service::{ServiceError, Services};
use crate::store::integrity::{IntegrityState, VerifierConfig};
use crate::store::{AuditFilter, RecordedEvent, SortedKeys};

text_filters!(
    /// `GET /v1/claims`' text filter.
    ClaimsBy {
        "asserted_by": "Only claims asserted by this token name",
    }
);
text_filters!(
    /// `GET /v1/facts`' text filters.
    FactsAbout {
        "subject": "Only facts about this subject",
        "property": "Only facts about this property",
    }
);
text_filters!(
    /// `GET /v1/audit`'s text filter.
    EventsBy {
        "actor": "Only events written by this token name",
    }
);

/// Waits for `wait_for` on the primary, for the reads that stay there.
pub async fn wait(state: &AppState, p: &Params, source: Source) -> Result<(), ApiError> {
    if let Some(position) = p.wait_for()? {
        state.services.wait_for(source, position).await?;
    }
    Ok(())
}

/// Makes `read` where the service routes it (`Services::routed`): a
/// standby that has reached `wait_for`, when there are standbys.
pub async fn routed<T, F, Fut>(
    state: &AppState,
    p: &Params,
    source: Source,
    read: F,
) -> Result<T, ApiError>
where
    F: Fn(Services) -> Fut,
    Fut: Future<Output = Result<T, ServiceError>>,
{
    Ok(state.services.routed(source, p.wait_for()?, read).await?)
}

/// A page as listings answer it.
#[derive(Serialize)]
pub struct Listing<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

// The listings' pages as `/openapi.json` names them: a `Listing` of each.

#[derive(ToSchema)]
#[allow(dead_code, reason = "schema-only: the page is a `Listing`")]
pub struct ClaimPage {
    items: Vec<ClaimView<'static>>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "schema-only: the page is a `Listing`")]
pub struct FactPage {
    items: Vec<Fact>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "schema-only: the page is a `Listing`")]
pub struct HistoryPage {
    items: Vec<HistoryItem>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "schema-only: the page is a `Listing`")]
pub struct AuditPage {
    items: Vec<RecordedEvent>,
    next_cursor: Option<String>,
}

/// Adds the next page's `Link` header, as the CSV form has it.
fn linked(mut response: Response, next: Option<HeaderValue>) -> Response {
    if let Some(link) = next {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

fn listing<T: Serialize>(page: Page<T>) -> Json<Listing<T>> {
    Json(Listing {
        items: page.items,
        next_cursor: page.next,
    })
}

/// List claims
///
/// From projections, e.g. the queue of pending claims to confirm.
#[utoipa::path(
    get, path = "/v1/claims", tag = "claims",
    security(("bearer" = [])),
    params(
        ("status" = Option<Status>, Query, description = "Only claims in this state"),
        ("story_id" = Option<Uuid>, Query, description = "Only claims from this story"),
        ClaimsBy,
        Paging,
    ),
    responses(
        (status = 200, description = "A page of claims: JSON, or CSV with `Accept: text/csv` (a header row, RFC 4180 quoting)", content(
            (ClaimPage = "application/json"),
            (String = "text/csv"),
        ), headers(
            ("Link" = String, description = "The next page, `<…>; rel=\"next\"`, when there is one"),
        )),
        AcceptProblems,
        QueryProblems,
        TokenProblems,
        WaitProblems,
    )
)]
pub async fn list_claims(
    State(state): State<SharedState>,
    _: Caller,
    headers: HeaderMap,
    p: Params,
) -> Result<Response, ApiError> {
    let media = Accept::of(&headers).choose(&[negotiate::JSON, negotiate::CSV])?;
    let status = p.parsed(
        "status",
        |s| Status::parse(s).map(|s| s.as_str().to_owned()),
        "must be pending, verified, disputed, retracted or superseded",
    )?;
    let filter = ClaimFilter {
        status,
        story_id: p.uuid("story_id")?,
        asserted_by: p.text("asserted_by")?,
    };
    let (cursor, limit) = (p.uuid_cursor()?, p.limit()?);
    let filter = &filter;
    let page = routed(&state, &p, CLAIMS, |s| async move {
        s.list_claims(filter, cursor, limit).await
    })
    .await?;
    let next = page
        .next
        .as_deref()
        .and_then(|c| p.next_link("/v1/claims", c));
    if media == negotiate::CSV {
        let table = csv::table(csv::CLAIM_COLUMNS, &page.items);
        return Ok(linked(csv::response(table), next));
    }
    Ok(linked(listing(page).into_response(), next))
}

/// List facts
///
/// `subject` and `property` match after normalization (NFKC, lower
/// case, white space folded).
#[utoipa::path(
    get, path = "/v1/facts", tag = "facts",
    security(("bearer" = [])),
    params(
        FactsAbout,
        ("status" = Option<FactStatus>, Query, description = "Only facts with this status"),
        Paging,
    ),
    responses(
        (status = 200, description = "A page of facts: JSON, or CSV with `Accept: text/csv` (a header row, RFC 4180 quoting)", content(
            (FactPage = "application/json"),
            (String = "text/csv"),
        ), headers(
            ("Link" = String, description = "The next page, `<…>; rel=\"next\"`, when there is one"),
        )),
        AcceptProblems,
        QueryProblems,
        TokenProblems,
        WaitProblems,
    )
)]
pub async fn list_facts(
    State(state): State<SharedState>,
    _: Caller,
    headers: HeaderMap,
    p: Params,
) -> Result<Response, ApiError> {
    let media = Accept::of(&headers).choose(&[negotiate::JSON, negotiate::CSV])?;
    let status = p.parsed(
        "status",
        |s| FactStatus::parse(s).map(|s| s.as_str().to_owned()),
        "must be verified, contested or unverified",
    )?;
    let filter = FactFilter {
        subject_key: p.text("subject")?.map(|s| normalize_key(&s)),
        property_key: p.text("property")?.map(|s| normalize_key(&s)),
        status,
    };
    let (cursor, limit) = (p.uuid_cursor()?, p.limit()?);
    // The documents come through the fact cache, as single reads do.
    let filter = &filter;
    let page = routed(&state, &p, FACT_DOCUMENTS, |s| async move {
        s.list_facts(filter, cursor, limit).await
    })
    .await?;
    let next = page
        .next
        .as_deref()
        .and_then(|c| p.next_link("/v1/facts", c));
    if media == negotiate::CSV {
        let items = page
            .items
            .iter()
            .map(|d| csv::fact_item(d.get()))
            .collect::<Result<Vec<Value>, _>>()
            .map_err(|e| ApiError::Internal(format!("a stored fact document is not JSON: {e}")))?;
        let table = csv::table(csv::FACT_COLUMNS, &items);
        return Ok(linked(csv::response(table), next));
    }
    Ok(linked(listing(page).into_response(), next))
}

/// Read a fact
///
/// `as_of` answers as the system knew it at that record time;
/// `valid_at` takes `status`, `value` and `valid_at` from the latest
/// valid time at or before the given one.
#[utoipa::path(
    get, path = "/v1/facts/{fact_id}", tag = "facts",
    security(("bearer" = [])),
    params(
        ("fact_id" = Uuid, Path, description = "Deterministic from the normalized subject and property"),
        ("as_of" = Option<DateTime<Utc>>, Query, description = "An RFC 3339 record time"),
        ("valid_at" = Option<ValidTime>, Query, description = "A date (YYYY, YYYY-MM, YYYY-MM-DD) or an RFC 3339 timestamp"),
        WaitFor,
    ),
    responses(
        (status = 200, description = "The fact along valid time; with `Accept: application/ld+json`, its current state as one schema.org `ClaimReview`", content(
            (Fact = "application/json"),
            (Object = "application/ld+json"),
        )),
        AcceptProblems,
        QueryProblems,
        TokenProblems,
        (status = 404, description = "No fact has this id", body = Problem, content_type = "application/problem+json"),
        WaitProblems,
    )
)]
pub async fn get_fact(
    State(state): State<SharedState>,
    _: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let media = Accept::of(&headers).choose(&[negotiate::JSON, negotiate::JSON_LD])?;
    let id = path_id(&id, "fact")?;
    let as_of = p.time("as_of")?;
    let valid_at = p
        .text("valid_at")?
        .map(|s| ValidTime::parse_field("valid_at", &s))
        .transpose()?;
    if media == negotiate::JSON_LD {
        // A review speaks of what is known now, at the latest valid time.
        if let Some(name) = [("as_of", as_of.is_some()), ("valid_at", valid_at.is_some())]
            .into_iter()
            .find_map(|(name, given)| given.then_some(name))
        {
            return Err(FieldError::new(
                name,
                "a ClaimReview describes the fact's current state; ask for JSON to read it at a time",
            )
            .into());
        }
        let publication = &state.limits.publication;
        let doc = routed(&state, &p, FACT_DOCUMENTS, |s| async move {
            s.fact_review(publication, id).await
        })
        .await?
        .ok_or_else(|| ApiError::not_found("fact"))?;
        return Ok(claim_review::respond(media, &doc));
    }
    if as_of.is_none() && valid_at.is_none() {
        // The plain read: the current document's bytes, through the fact cache.
        let body = routed(&state, &p, FACT_DOCUMENTS, |s| async move {
            s.fact_document(id).await
        })
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
    let source = if as_of.is_some() {
        FACTS
    } else {
        FACT_DOCUMENTS
    };
    let fact = routed(&state, &p, source, |s| async move {
        s.fact(id, as_of, valid_at).await
    })
    .await?
    .ok_or_else(|| match as_of {
        Some(_) => ApiError::NotFound("no fact has this id at that record time".into()),
        None => ApiError::not_found("fact"),
    })?;
    Ok(Json(fact).into_response())
}

/// A fact's history
///
/// Every event of every claim of the fact, in position order.
#[utoipa::path(
    get, path = "/v1/facts/{fact_id}/history", tag = "facts",
    security(("bearer" = [])),
    params(
        ("fact_id" = Uuid, Path, description = "The fact's id"),
        Paging,
    ),
    responses(
        (status = 200, description = "A page of the fact's events", body = HistoryPage, content_type = "application/json"),
        QueryProblems,
        TokenProblems,
        (status = 404, description = "No fact has this id", body = Problem, content_type = "application/problem+json"),
        WaitProblems,
    )
)]
pub async fn fact_history(
    State(state): State<SharedState>,
    _: Caller,
    Path(id): Path<String>,
    p: Params,
) -> Result<Json<Listing<Value>>, ApiError> {
    let id = path_id(&id, "fact")?;
    let (cursor, limit) = (p.position_cursor()?, p.limit()?);
    let page = routed(&state, &p, FACTS, |s| async move {
        s.fact_history(id, cursor, limit).await
    })
    .await?
    .ok_or_else(|| ApiError::not_found("fact"))?;
    Ok(listing(page))
}

/// Audit the log
///
/// Auditor or admin. Events oldest first, filtered by actor and record time.
#[utoipa::path(
    get, path = "/v1/audit", tag = "audit",
    security(("bearer" = [])),
    params(
        EventsBy,
        ("since" = Option<DateTime<Utc>>, Query, description = "Only events recorded at or after this time"),
        ("until" = Option<DateTime<Utc>>, Query, description = "Only events recorded before this time"),
        Paging,
    ),
    responses(
        (status = 200, description = "A page of events", body = AuditPage, content_type = "application/json"),
        QueryProblems,
        TokenProblems,
        (status = 403, description = "Only auditors and admins may audit", body = Problem, content_type = "application/problem+json"),
        WaitProblems,
    )
)]
pub async fn audit(
    State(state): State<SharedState>,
    Auditor(..): Auditor,
    p: Params,
) -> Result<Json<Listing<Value>>, ApiError> {
    let filter = AuditFilter {
        actor: p.text("actor")?,
        since: p.time("since")?,
        until: p.time("until")?,
    };
    let (cursor, limit) = (p.position_cursor()?, p.limit()?);
    let filter = &filter;
    Ok(listing(
        routed(&state, &p, Source::Log, |s| async move {
            s.audit(filter, cursor, limit).await
        })
        .await?,
    ))
}

/// Read the log
///
/// Auditor or admin. `data` is the payload as recorded.
#[utoipa::path(
    get, path = "/v1/events", tag = "audit",
    security(("bearer" = [])),
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "Only events after this position (default 0)"),
        Limit,
        WaitFor,
    ),
    responses(
        (status = 200, description = "A page of events in position order", body = EventPage, content_type = "application/json"),
        QueryProblems,
        TokenProblems,
        (status = 403, description = "Only auditors and admins may read the log", body = Problem, content_type = "application/problem+json"),
        WaitProblems,
    )
)]
pub async fn events(
    State(state): State<SharedState>,
    Auditor(..): Auditor,
    p: Params,
) -> Result<Json<EventPage>, ApiError> {
    let after = p.position("after")?.unwrap_or(0);
    let limit = p.limit()?;
    let events = routed(&state, &p, Source::Log, |s| async move {
        s.events(after, limit).await
    })
    .await?;
    let next_after = events.last().map_or(after, |e| e.position);
    Ok(Json(EventPage { events, next_after }))
}

fn sorted_keys<S: serde::Serializer>(
    events: &[RecordedEvent],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(events.iter().map(SortedKeys))
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    #[serde(serialize_with = "sorted_keys")]
    events: Vec<RecordedEvent>,
    /// The last position returned, or `after` on an empty page.
    next_after: i64,
}

/// Check the hash chain
///
/// Auditor or admin. Answers from what the background verifier has
/// established (every event re-hashed within a second of its commit;
/// the whole log again on a schedule) and re-hashes at most 10,000
/// events past it. Keep `head` to detect a rewritten or truncated log
/// later.
#[utoipa::path(
    get, path = "/v1/integrity", tag = "audit",
    security(("bearer" = [])),
    params(
        WaitFor,
    ),
    responses(
        (status = 200, description = "The result of the check", body = Integrity, content_type = "application/json"),
        QueryProblems,
        TokenProblems,
        (status = 403, description = "Only auditors and admins may check integrity", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn integrity(
    State(state): State<SharedState>,
    Auditor(..): Auditor,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    wait(&state, &p, Source::Log).await?;
    let r = state.services.integrity().await?;
    let answer = Integrity {
        ok: r.ok,
        checked: r.checked,
        first_bad_position: r.first_bad_position,
        head: ChainHead {
            position: r.head_position,
            hash: r.head_hash,
        },
        unverified: r.unverified,
        verified: VerifiedPrefix {
            position: r.state.position,
            hash: hex::encode(r.state.hash),
            at: r.state.extended_at,
        },
        full_check: FullCheck::of(&r.state, state.services.verifier()),
    };
    Ok(Json(sorted(&answer)?))
}

/// A body rendered through a `Value`, as every view is (keys sorted).
fn sorted(body: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(body).map_err(|e| ApiError::Internal(e.to_string()))
}

#[derive(Serialize, ToSchema)]
pub struct Integrity {
    /// No link checked failed and no pass of the verifier found a break.
    ok: bool,
    /// Events whose links are known to hold: the verified prefix and what
    /// this request re-hashed past it.
    checked: u64,
    first_bad_position: Option<i64>,
    /// The log's recorded head. Keep it: a later check against it detects a
    /// rewritten or truncated log.
    head: ChainHead,
    /// Events past the last one this answer covers (the verifier is behind
    /// by more than a request re-hashes, or the chain is broken).
    unverified: i64,
    verified: VerifiedPrefix,
    full_check: FullCheck,
}

#[derive(Serialize, ToSchema)]
pub struct ChainHead {
    position: i64,
    hash: String,
}

/// What the background verifier has re-hashed, up to where.
#[derive(Serialize, ToSchema)]
pub struct VerifiedPrefix {
    position: i64,
    hash: String,
    /// When the prefix last grew.
    at: Option<DateTime<Utc>>,
}

/// The last full pass over the whole log, and the next.
#[derive(Serialize, ToSchema)]
pub struct FullCheck {
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    checked: Option<i64>,
    ok: Option<bool>,
    /// When an auditor last asked for a pass, and who.
    requested_at: Option<DateTime<Utc>>,
    requested_by: Option<String>,
    /// A pass was asked for and has not started.
    pending: bool,
    /// The earliest start of the next pass.
    next_at: Option<DateTime<Utc>>,
}

impl FullCheck {
    fn of(s: &IntegrityState, config: &VerifierConfig) -> Self {
        FullCheck {
            started_at: s.full_started_at,
            finished_at: s.full_finished_at,
            checked: s.full_checked,
            ok: s.full_ok,
            requested_at: s.full_requested_at,
            requested_by: s.full_requested_by.clone(),
            pending: s.full_pending(),
            next_at: s.next_full_at(config),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct FullCheckRequested {
    full_check: FullCheck,
}

// `POST /v1/integrity/checks`: asks the verifier for a full pass over the
// chain. Asking again before it starts changes nothing; passes are at
// least the verifier's minimum gap apart, whoever asks.
/// Ask for a full pass over the chain
///
/// Auditor or admin. The verifier re-hashes the whole log from the
/// first event, no sooner than its minimum gap after the last pass
/// (`FACTLOG_VERIFY_MIN_GAP_MINUTES`); asking again before it starts
/// changes nothing. `GET /v1/integrity` reports the result.
#[utoipa::path(
    post, path = "/v1/integrity/checks", tag = "audit",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The pass is asked for", body = FullCheckRequested, content_type = "application/json"),
        TokenProblems,
        (status = 403, description = "Only auditors and admins may ask for a check", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn request_full_check(
    State(state): State<SharedState>,
    Auditor(actor): Auditor,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = state.services.request_full_check(&actor.name).await?;
    let answer = FullCheckRequested {
        full_check: FullCheck::of(&s, state.services.verifier()),
    };
    Ok((StatusCode::ACCEPTED, Json(sorted(&answer)?)))
}
