//! ClaimReview (schema.org JSON-LD): a story's claims' reviews, the feed
//! of reviews changed since a time, and (in `reads::get_fact`) a fact's.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde_json::Value;

use super::SharedState;
use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::negotiate::{self, Accept};
use super::openapi::{AcceptProblems, QueryProblems, TokenProblems, WaitProblems};
use super::params::{Limit, Params, WaitFor};
use super::reads::routed;
use super::write::path_id;
use crate::domain::error::FieldError;
use crate::service::claim_review::FeedCursor;
use crate::service::reads::CLAIMS;

/// The types a ClaimReview resource offers: JSON-LD first; plain JSON
/// (the same bytes) for clients that only say `application/json`.
const OFFERED: &[&str] = &[negotiate::JSON_LD, negotiate::JSON];

/// A JSON-LD document, labelled as the client asked. Publishers paste
/// these into `<script type="application/ld+json">`, where a `</script>`
/// in a claim would end the script: `<`, `>` and `&` (which occur only
/// inside strings) go out as JSON escapes, the same text to any parser.
pub fn respond(media: &'static str, doc: &Value) -> Response {
    let text = doc
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(media))],
        text,
    )
        .into_response()
}

/// A story's claims as ClaimReview
///
/// One `ClaimReview` per claim of the story, in an `ItemList`. README
/// lists the rating each claim status maps to.
#[utoipa::path(
    get, path = "/v1/stories/{id}/claimreview", tag = "exchange", operation_id = "story_claim_reviews",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The story's id"),
        WaitFor,
    ),
    responses(
        (status = 200, description = "schema.org JSON-LD: an `ItemList` of `ClaimReview`s", content(
            (Object = "application/ld+json"),
            (Object = "application/json"),
        )),
        AcceptProblems,
        QueryProblems,
        TokenProblems,
        (status = 404, description = "No story has this id", body = Problem, content_type = "application/problem+json"),
        WaitProblems,
    )
)]
pub async fn of_story(
    State(state): State<SharedState>,
    _: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let media = Accept::of(&headers).choose(OFFERED)?;
    let id = path_id(&id, "story")?;
    let publication = &state.limits.publication;
    let doc = routed(&state, &p, CLAIMS, |s| async move {
        s.story_reviews(publication, id).await
    })
    .await?
    .ok_or_else(|| ApiError::not_found("story"))?;
    Ok(respond(media, &doc))
}

/// The ClaimReview feed
///
/// A schema.org `DataFeed` of the reviews of every claim whose state
/// changed at or after `since`, oldest change first; the next page is in
/// the `Link` header. A claim that changes again moves to the end, so a
/// reader polling with the time of its last read sees each claim's latest
/// review.
#[utoipa::path(
    get, path = "/v1/claimreview", tag = "exchange", operation_id = "claim_review_feed",
    security(("bearer" = [])),
    params(
        ("since" = Option<DateTime<Utc>>, Query, description = "An RFC 3339 record time; the whole history when absent"),
        ("cursor" = Option<String>, Query, description = "From the previous page's `Link` header"),
        Limit,
        WaitFor,
    ),
    responses(
        (status = 200, description = "schema.org JSON-LD: a `DataFeed` whose `dataFeedElement`s are `ClaimReview`s", content(
            (Object = "application/ld+json"),
            (Object = "application/json"),
        ), headers(
            ("Link" = String, description = "The next page, `<…>; rel=\"next\"`, when there is one"),
        )),
        AcceptProblems,
        QueryProblems,
        TokenProblems,
        WaitProblems,
    )
)]
pub async fn feed(
    State(state): State<SharedState>,
    _: Caller,
    headers: HeaderMap,
    p: Params,
) -> Result<Response, ApiError> {
    let media = Accept::of(&headers).choose(OFFERED)?;
    let since = p.time("since")?;
    let after = match p.text("cursor")? {
        Some(c) => FeedCursor::parse(&c)
            .ok_or_else(|| FieldError::new("cursor", "is not a cursor this API issued"))?,
        // Nothing was recorded before 1970: the epoch is the whole history.
        None => FeedCursor::since(since.unwrap_or(DateTime::UNIX_EPOCH)),
    };
    let limit = p.limit()?;
    let publication = &state.limits.publication;
    let (doc, next) = routed(&state, &p, CLAIMS, |s| async move {
        s.review_feed(publication, after, limit).await
    })
    .await?;
    let mut response = respond(media, &doc);
    if let Some(link) = next.and_then(|c| p.next_link("/v1/claimreview", &c.to_string())) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}
