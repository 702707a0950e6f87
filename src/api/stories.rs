//! Story endpoints: register one, read one with its claims.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    KnownFormat, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::{PartialSchema, ToSchema};

use super::SharedState;
use super::auth::{Caller, Writer};
use super::body::JsonBody;
use super::error::{ApiError, ConflictProblem, Problem, ValidationProblem};
use super::input;
use super::openapi::{BodyProblems, FirstWriteHeaders, QueryProblems, TokenProblems, WaitProblems};
use super::params::Params;
use super::reads::routed;
use super::write::{self, path_id};
use crate::domain::error::text_schema;
use crate::service::reads::CLAIMS;
use crate::service::view::{self, StoryReceipt, StoryView};

/// Register a story
///
/// Editor or admin. A story's `url`, when given, is unique.
#[utoipa::path(
    post, path = "/v1/stories", tag = "stories", operation_id = "create_story",
    security(("bearer" = [])),
    params(
        FirstWriteHeaders,
    ),
    request_body(content = NewStory, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = StoryReceipt, content_type = "application/json", headers(
            ("ETag" = String, description = "The story's version, quoted: `\"1\"`"),
            ("Location" = String, description = "`/v1/stories/{id}`"),
            ("Idempotent-Replayed" = String, description = "`true` when this is a replay of an earlier request with the same Idempotency-Key"),
        ), links(
            ("GetStory" = (operation_id = "get_story", parameters(("id" = "$response.body#/id")), description = "Read the story just registered")),
        )),
        BodyProblems,
        TokenProblems,
        (status = 403, description = "The token's role may not write", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A story with this url is already registered: `existing_story_id` names it", body = ConflictProblem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, or the Idempotency-Key was used for another request", body = ValidationProblem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<SharedState>,
    Writer(actor): Writer,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let w = write::context(actor, &headers, "/v1/stories", &body)?;
    let outcome = state
        .services
        .register_story(input::story(&body), &w)
        .await?;
    Ok(write::respond(outcome, "/v1/stories"))
}

// The story's own fields from its stream (always current); its claims from
// the facts projection's open claim versions (`wait_for` applies to them).
/// Read a story
///
/// The story's own fields always reflect every acknowledged write; its
/// `claims` come from projections (see `wait_for`).
#[utoipa::path(
    get, path = "/v1/stories/{id}", tag = "stories", operation_id = "get_story",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The story's id"),
        ("wait_for" = Option<i64>, Query, minimum = 0, description = "Answer once the projections read here have applied this position"),
    ),
    responses(
        (status = 200, description = "The story with a summary of its claims", body = StoryView, content_type = "application/json", headers(
            ("ETag" = String, description = "The story's version, quoted"),
        )),
        QueryProblems,
        TokenProblems,
        (status = 404, description = "No story has this id", body = Problem, content_type = "application/problem+json"),
        WaitProblems,
    )
)]
pub async fn get(
    State(state): State<SharedState>,
    _: Caller,
    Path(id): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "story")?;
    let (story, claims) = routed(&state, &p, CLAIMS, |s| async move {
        let Some(story) = s.load_story(id).await? else {
            return Ok((None, Vec::new()));
        };
        Ok((Some(story), s.story_claims(id).await?))
    })
    .await?;
    let story = story.ok_or_else(|| ApiError::not_found("story"))?;
    let mut res = Json(view::story(&story, &claims)).into_response();
    write::set_etag(res.headers_mut(), story.version);
    Ok(res)
}

// The body as `/openapi.json` describes it (`input::story` reads it field by
// field, so that every refusal names its field), with the same bounds.

/// Registers a published piece that claims come from.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Troops to stay in Iraq",
    "publisher": "Example Times",
    "published_at": "2020-01-06T09:30:00Z",
    "url": "https://example.com/2020/01/06/troops",
    "body": "Some 5,200 U.S. troops remain in Iraq, officials said."
}))]
#[allow(dead_code, reason = "schema-only")]
pub struct NewStory {
    #[schema(schema_with = title)]
    title: String,
    #[schema(schema_with = publisher)]
    publisher: String,
    published_at: PublishedAt,
    #[schema(schema_with = url)]
    url: Option<String>,
    #[schema(schema_with = body)]
    body: Option<String>,
}

fn title() -> Object {
    text_schema(input::TITLE, false).build()
}

fn publisher() -> Object {
    text_schema(input::SHORT, false).build()
}

fn url() -> Object {
    input::url_schema()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(
            "Unique among stories: registering it again is 409. At most 2,048\ncharacters and \
             2,600 bytes of UTF-8 (it is indexed; a url in other\nscripts than Latin may reach \
             the bytes first): 422 beyond either.",
        ))
        .build()
}

fn body() -> Object {
    text_schema(usize::MAX, true)
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(
            "The full text; a claim's quote must occur in it when it is given.",
        ))
        .build()
}

/// A publication time: an RFC 3339 timestamp, or a date (midnight UTC).
pub struct PublishedAt;

impl PartialSchema for PublishedAt {
    fn schema() -> RefOr<Schema> {
        let string = |format, description| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(format)))
                .description(Some(description))
        };
        OneOfBuilder::new()
            .item(string(KnownFormat::DateTime, "an RFC 3339 timestamp"))
            .item(string(KnownFormat::Date, "a date, taken as midnight UTC"))
            .examples(["2020-01-06T09:30:00Z"])
            .into()
    }
}

impl ToSchema for PublishedAt {}
