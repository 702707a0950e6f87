//! Claim endpoints: assert, the life-cycle actions, and read one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;
use utoipa::openapi::schema::Object;
use uuid::Uuid;

use super::SharedState;
use super::auth::{Caller, Writer};
use super::body::{JsonBody, OptionalJsonBody};
use super::error::{ApiError, ConflictProblem, PreconditionProblem, Problem, ValidationProblem};
use super::input;
use super::openapi::{
    ActionHeaders, BodyProblems, QueryProblems, TokenProblems, WaitProblems, WriteHeaders,
};
use super::params::{Params, WaitFor};
use super::reads::routed;
use super::write::{self, path_id};
use crate::domain::claim::Command;
use crate::domain::error::{FieldError, nullable_text_schema, text_schema};
use crate::domain::principal::Actor;
use crate::domain::valid_time::ValidTime;
use crate::domain::value::ClaimValue;
use crate::service::reads::Source;
use crate::service::view::{self, ClaimReceipt, ClaimView};

/// Assert a claim
///
/// Editor or admin. `story_id` and `corrects` must name existing
/// resources (422 otherwise); the quote must occur in the story's body.
#[utoipa::path(
    post, path = "/v1/claims", tag = "claims", operation_id = "create_claim",
    security(("bearer" = [])),
    params(
        WriteHeaders,
    ),
    request_body(content = NewClaim, content_type = "application/json"),
    responses(
        (status = 201, description = "Asserted; status `pending`", body = ClaimReceipt, content_type = "application/json", headers(
            ("ETag" = String, description = "The claim's version, quoted: `\"1\"`"),
            ("Location" = String, description = "`/v1/claims/{id}`"),
            ("Idempotent-Replayed" = String, description = "`true` on a replay"),
        ), links(
            ("GetClaim" = (operation_id = "get_claim", parameters(("id" = "$response.body#/id")), description = "Read the claim just asserted")),
            ("ConfirmClaim" = (operation_id = "confirm_claim", parameters(("id" = "$response.body#/id")), description = "Confirm it (another editor)")),
            ("DisputeClaim" = (operation_id = "dispute_claim", parameters(("id" = "$response.body#/id")), description = "Dispute it")),
            ("RetractClaim" = (operation_id = "retract_claim", parameters(("id" = "$response.body#/id")), description = "Retract it")),
            ("AmendClaim" = (operation_id = "amend_claim", parameters(("id" = "$response.body#/id")), description = "Amend it while pending")),
            ("AttachEvidence" = (operation_id = "attach_evidence", parameters(("id" = "$response.body#/id")), description = "Attach evidence to it")),
        )),
        BodyProblems,
        TokenProblems,
        (status = 403, description = "The token's role may not write", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The corrected claim's state forbids a correction", body = ConflictProblem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (including an unknown `story_id` or `corrects`, or a quote not in the story's body), or the Idempotency-Key was used for another request", body = ValidationProblem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<SharedState>,
    Writer(actor): Writer,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let w = write::context(actor, &headers, "/v1/claims", &body)?;
    let outcome = state.services.assert_claim(input::claim(&body), &w).await?;
    Ok(write::respond(outcome, "/v1/claims"))
}

async fn act(
    state: SharedState,
    actor: Actor,
    id: String,
    path: &str,
    headers: HeaderMap,
    body: JsonBody,
    parse: fn(&JsonBody) -> Result<Command, FieldError>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "claim")?;
    // The canonical path, whatever spelling of the id the client used.
    let path = path.replace("{id}", &id.hyphenated().to_string());
    let w = write::context(actor, &headers, &path, &body)?;
    let outcome = state.services.act_on_claim(id, parse(&body), &w).await?;
    Ok(write::respond(outcome, "/v1/claims"))
}

/// The life-cycle actions: each writes one event to an existing claim and
/// answers alike. They differ in their path, how the body is read (all of
/// a confirmation's fields are optional, so it may be empty) and parsed,
/// and what their 403 and 409 mean; the rest of each description is here,
/// once.
macro_rules! action {
    (
        $(#[$doc:meta])*
        $name:ident: post $path:literal as $operation_id:literal,
        body $request:ty, read as $body:ty, parsed by $parse:path,
        forbidden $forbidden:literal,
        conflict $conflict:literal $(,)?
    ) => {
        $(#[$doc])*
        #[utoipa::path(
            post, path = $path, tag = "claims", operation_id = $operation_id,
            security(("bearer" = [])),
            params(
                ("id" = Uuid, Path, description = "The claim's id"),
                ActionHeaders,
            ),
            request_body(content = $request, content_type = "application/json"),
            responses(
                (status = 200, description = "The claim after the write", body = ClaimReceipt, content_type = "application/json", headers(
                    ("ETag" = String, description = "The claim's new version, quoted"),
                    ("Idempotent-Replayed" = String, description = "`true` on a replay"),
                )),
                BodyProblems,
                TokenProblems,
                (status = 403, description = $forbidden, body = Problem, content_type = "application/problem+json"),
                (status = 404, description = "No claim has this id", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = $conflict, body = ConflictProblem, content_type = "application/problem+json"),
                (status = 412, description = "`If-Match` named another version", body = PreconditionProblem, content_type = "application/problem+json", headers(
                    ("ETag" = String, description = "The current version, quoted"),
                )),
                (status = 422, description = "A field is invalid, or the Idempotency-Key was used for another request", body = ValidationProblem, content_type = "application/problem+json"),
                (status = 503, description = "The database is unavailable, or the claim is busy with concurrent writes; retry", body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $name(
            State(state): State<SharedState>,
            Writer(actor): Writer,
            Path(id): Path<String>,
            headers: HeaderMap,
            body: $body,
        ) -> Result<Response, ApiError> {
            act(state, actor, id, $path, headers, body.into(), $parse).await
        }
    };
}

action!(
    /// Confirm a claim
    ///
    /// Editor or admin, not the asserter, once per verification round. The
    /// body may be empty. Enough distinct confirmations verify the claim;
    /// verifying a correction also supersedes the claim it corrects.
    confirm: post "/v1/claims/{id}/confirmations" as "confirm_claim",
    body Option<ConfirmationRequest>, read as OptionalJsonBody, parsed by input::confirmation,
    forbidden "The token's role may not write, or the asserter is confirming",
    conflict "The claim is retracted or superseded, or this editor already confirmed it in this round",
);
action!(
    /// Dispute a claim
    ///
    /// Any editor, any number of times. The claim counts as unverified until
    /// confirmed again.
    dispute: post "/v1/claims/{id}/disputes" as "dispute_claim",
    body DisputeRequest, read as JsonBody, parsed by input::dispute,
    forbidden "The token's role may not write",
    conflict "The claim is retracted or superseded",
);
action!(
    /// Retract a claim
    ///
    /// The asserting editor or an admin. Terminal: the claim never counts again.
    retract: post "/v1/claims/{id}/retraction" as "retract_claim",
    body RetractionRequest, read as JsonBody, parsed by input::retraction,
    forbidden "The token's role may not write, or this editor is neither the asserter nor an admin",
    conflict "The claim is already retracted or superseded",
);
action!(
    /// Amend a claim
    ///
    /// Only the asserting editor, only while `pending`. Clears the claim's
    /// confirmations.
    amend: post "/v1/claims/{id}/amendments" as "amend_claim",
    body AmendmentRequest, read as JsonBody, parsed by input::amendment,
    forbidden "The token's role may not write, or this editor did not assert the claim",
    conflict "The claim is no longer pending",
);
action!(
    /// Attach evidence to a claim
    ///
    /// Any editor.
    evidence: post "/v1/claims/{id}/evidence" as "attach_evidence",
    body EvidenceRequest, read as JsonBody, parsed by input::evidence,
    forbidden "The token's role may not write",
    conflict "The claim is retracted or superseded",
);

// Folded from the claim's own stream: reflects every acknowledged write.
/// Read a claim
///
/// Folded from the claim's own stream: reflects every acknowledged write.
#[utoipa::path(
    get, path = "/v1/claims/{id}", tag = "claims", operation_id = "get_claim",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The claim's id"),
        WaitFor,
    ),
    responses(
        (status = 200, description = "The claim", body = ClaimView, content_type = "application/json", headers(
            ("ETag" = String, description = "The claim's version, quoted: send it as `If-Match` to make a write conditional"),
        )),
        QueryProblems,
        TokenProblems,
        (status = 404, description = "No claim has this id", body = Problem, content_type = "application/problem+json"),
        WaitProblems,
    )
)]
pub async fn get(
    State(state): State<SharedState>,
    _: Caller,
    Path(id): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "claim")?;
    let claim = routed(&state, &p, Source::Log, |s| async move {
        s.load_claim(id).await
    })
    .await?
    .ok_or_else(|| ApiError::not_found("claim"))?;
    let mut res = Json(view::claim(&claim)).into_response();
    write::set_etag(res.headers_mut(), claim.version);
    Ok(res)
}

// The bodies as `/openapi.json` describes them (`input` reads them field by
// field, so that every refusal names its field), with the same bounds.

/// Records one assertion found in a story.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "story_id": "0190a6a4-2a1b-7c3d-8e4f-5a6b7c8d9e0f",
    "subject": "U.S. troops in Iraq",
    "property": "troop_count",
    "value": {"kind": "quantity", "amount": "5200", "unit": "soldier", "approximate": true},
    "quote": "Some 5,200 U.S. troops remain in Iraq",
    "valid_at": "2020-01-06"
}))]
#[allow(dead_code, reason = "schema-only")]
pub struct NewClaim {
    /// An existing story (422 otherwise).
    story_id: Uuid,
    #[schema(schema_with = subject)]
    subject: String,
    #[schema(schema_with = property)]
    property: String,
    value: ClaimValue,
    #[schema(schema_with = quote)]
    quote: String,
    /// When it holds; the story's `published_at` when absent.
    valid_at: Option<ValidTime>,
    #[schema(schema_with = attributed_to)]
    attributed_to: Option<String>,
    /// An existing claim this one corrects; it is superseded once this one
    /// is verified.
    corrects: Option<Uuid>,
}

/// An empty body counts as `{}`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "schema-only")]
pub struct ConfirmationRequest {
    #[schema(schema_with = note)]
    note: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "schema-only")]
pub struct DisputeRequest {
    #[schema(schema_with = reason)]
    reason: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "schema-only")]
pub struct RetractionRequest {
    #[schema(schema_with = reason)]
    reason: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "schema-only")]
pub struct EvidenceRequest {
    #[schema(schema_with = evidence_url)]
    url: String,
    #[schema(schema_with = note)]
    note: Option<String>,
}

/// Any of the four fields; `null` clears `valid_at` or `attributed_to`.
/// Clears the claim's confirmations.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
#[allow(dead_code, reason = "schema-only")]
pub struct AmendmentRequest {
    #[schema(required = false)]
    value: ClaimValue,
    #[schema(required = false, schema_with = amended_quote)]
    quote: String,
    valid_at: Option<ValidTime>,
    #[schema(schema_with = amended_attribution)]
    attributed_to: Option<String>,
}

fn subject() -> Object {
    text_schema(input::SHORT, false)
        .description(Some(
            "What the claim is about. At most 500 characters, and at most 1,200\nbytes of UTF-8 \
             once normalized for matching (NFKC, lower case, white\nspace folded), as that form \
             is indexed: 422 beyond either.",
        ))
        .build()
}

fn property() -> Object {
    text_schema(input::SHORT, false)
        .description(Some(
            "Which property of the subject. The same limits as `subject`.",
        ))
        .build()
}

fn quote() -> Object {
    text_schema(input::QUOTE, false)
        .description(Some(
            "The exact words the claim rests on; must occur in the story's body\nwhen it has one (white space folded).",
        ))
        .build()
}

fn amended_quote() -> Object {
    text_schema(input::QUOTE, false).build()
}

fn attributed_to() -> Object {
    nullable_text_schema(input::SHORT)
        .description(Some("Who in the story said it."))
        .build()
}

fn amended_attribution() -> Object {
    nullable_text_schema(input::SHORT).build()
}

fn note() -> Object {
    nullable_text_schema(input::NOTE).build()
}

fn reason() -> Object {
    text_schema(input::NOTE, false).build()
}

fn evidence_url() -> Object {
    input::url_schema()
        .description(Some(
            "At most 2,048 characters and 2,600 bytes of UTF-8, as a story's.",
        ))
        .build()
}
