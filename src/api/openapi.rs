//! The root of the OpenAPI 3.1 description served at `/openapi.json`: its
//! info, tags and security scheme, and what many operations share. The
//! operations themselves are described on their handlers (`#[utoipa::path]`)
//! and collected from the router that registers them ([`super::router`]);
//! the shapes are the request and response types' own (`ToSchema`).

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Required};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi};

use super::error::{ConflictProblem, PreconditionProblem, Problem, ValidationProblem};
use super::write::MAX_KEY_LEN;

/// The OpenAPI document served at `/openapi.json`.
pub fn spec() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::described_routes());
    NotNull.modify(&mut doc);
    doc
}

// Response sets many operations share, so each is described once.

/// Every operation that takes a token.
#[derive(IntoResponses)]
pub enum TokenProblems {
    #[response(
        status = 400,
        description = "Malformed: the Authorization header appears more than once, or a body or query string does not parse",
        content_type = "application/problem+json"
    )]
    Malformed(Problem),
    #[response(
        status = 401,
        description = "No token, or an unknown or revoked one",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 429,
        description = "This token has spent its request budget, or this address has presented too many unknown tokens; retry after `Retry-After` seconds",
        content_type = "application/problem+json",
        headers(("Retry-After" = String, description = "Seconds to wait before retrying"))
    )]
    TooManyRequests(Problem),
}

/// Every operation with query parameters.
#[derive(IntoResponses)]
pub enum QueryProblems {
    #[response(
        status = 400,
        description = "The query string is malformed",
        content_type = "application/problem+json"
    )]
    Malformed(Problem),
    #[response(
        status = 422,
        description = "A query parameter is invalid",
        content_type = "application/problem+json"
    )]
    Invalid(ValidationProblem),
}

/// Every read with more than one representation.
#[derive(IntoResponses)]
pub enum AcceptProblems {
    #[response(
        status = 406,
        description = "The `Accept` header allows none of this resource's media types",
        content_type = "application/problem+json"
    )]
    NotAcceptable(Problem),
}

/// Every read that takes `wait_for`.
#[derive(IntoResponses)]
pub enum WaitProblems {
    #[response(
        status = 503,
        description = "The database is unavailable, or `wait_for` was not reached in 5 s",
        content_type = "application/problem+json",
        headers(("Retry-After" = String, description = "Seconds to wait before retrying"))
    )]
    Unavailable(Problem),
}

/// Every operation that reads a JSON body. (Its 422 differs per operation.)
#[derive(IntoResponses)]
pub enum BodyProblems {
    #[response(
        status = 400,
        description = "The body is not valid JSON",
        content_type = "application/problem+json"
    )]
    Malformed(Problem),
    #[response(
        status = 413,
        description = "The body exceeds the limit (default 1 MiB)",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    #[response(
        status = 415,
        description = "The body is not sent as JSON",
        content_type = "application/problem+json"
    )]
    NotJson(Problem),
}

// Header sets the writes share, so each is described once.

/// A write header.
fn header(name: &str, description: &str, schema: ObjectBuilder) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .description(Some(description))
        .required(Required::False)
        .schema(Some(schema))
        .build()
}

/// `Idempotency-Key` as `write::context` accepts it.
fn idempotency_key(description: &str) -> Parameter {
    header(
        "Idempotency-Key",
        description,
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_KEY_LEN))
            .pattern(Some(format!(r"^[\x21-\x7E]{{1,{MAX_KEY_LEN}}}$"))),
    )
}

fn request_id(description: &str) -> Parameter {
    header(
        "X-Request-Id",
        description,
        ObjectBuilder::new().schema_type(Type::String),
    )
}

/// `POST /v1/stories`, where the retry headers are explained.
pub struct FirstWriteHeaders;

impl IntoParams for FirstWriteHeaders {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            idempotency_key(
                "1-255 visible ASCII characters (0x21-0x7E: no spaces or tabs). Makes the write \
                 safe to retry: a repeat with the same key, path and body \
                 returns the first response and writes nothing; the same key with another body \
                 or path is 422. Scoped to the token's name, kept at least 24 h.",
            ),
            request_id(
                "A UUID to correlate the write's events with; one is made when absent. Echoed \
                 in the response.",
            ),
        ]
    }
}

/// Every other write that creates a resource.
pub struct WriteHeaders;

impl IntoParams for WriteHeaders {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            idempotency_key("Makes the write safe to retry (see POST /v1/stories)"),
            request_id("A UUID to correlate the write's events with"),
        ]
    }
}

/// Writes to an existing claim: conditional on its version, too.
pub struct ActionHeaders;

impl IntoParams for ActionHeaders {
    fn into_params(in_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let if_match = header(
            "If-Match",
            "`\"<version>\"`: write only if the claim is still at this version (412 otherwise)",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r#"^(\*|(W/)?"[0-9]{1,19}"|[0-9]{1,19})$"#)),
        );
        std::iter::once(if_match)
            .chain(WriteHeaders::into_params(in_))
            .collect()
    }
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `factlog token create --name NAME --role ROLE`. Roles: \
                         reader (reads), editor (reads and writes), auditor (reads, audit, \
                         events, integrity), admin (everything).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Optional parameters and bodies come out of the derive as nullable (they
/// are `Option`s), but a header or query value is never JSON `null`, and an
/// omitted body is not a `null` body: a client generated from a nullable
/// schema would send what the server refuses.
struct NotNull;

impl Modify for NotNull {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                for param in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(param) = param
                        && let Some(schema) = &mut param.schema
                    {
                        strip_null(schema);
                    }
                }
                if let Some(RefOr::T(body)) = &mut op.request_body {
                    for content in body.content.values_mut() {
                        if let RefOr::T(content) = content
                            && let Some(schema) = &mut content.schema
                        {
                            strip_null(schema);
                        }
                    }
                }
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}

fn strip_null(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Object(o)) => {
            if let SchemaType::Array(types) = &o.schema_type {
                let mut rest: Vec<Type> = types
                    .iter()
                    .filter(|t| **t != Type::Null)
                    .cloned()
                    .collect();
                o.schema_type = match rest.len() {
                    1 => SchemaType::Type(rest.remove(0)),
                    _ => SchemaType::Array(rest),
                };
            }
        }
        RefOr::T(Schema::OneOf(one)) => {
            one.items.retain(|item| !is_null(item));
            if one.items.len() == 1 {
                let only = one.items.remove(0);
                *schema = only;
            }
        }
        _ => {}
    }
}

const DESCRIPTION: &str = "An event-sourced fact log for newsrooms: stories, the claims found in \
them, and facts laid out along valid time, over an append-only, hash-chained event log.

Errors are `application/problem+json` (RFC 9457). Checks run in this order and the first that \
fails answers: authentication (401), role (403), body media type, size and syntax (415, 413, 400), \
the resource in the path (404; a malformed id is 404 too), fields (422), idempotency replay, \
`If-Match` (412), then the life-cycle rules (409, else 403).

Every response carries `X-Content-Type-Options: nosniff`, and every response under `/v1` \
`Cache-Control: no-store`. The Authorization header may appear once (400 otherwise). Unknown \
tokens are limited per client address (429 with `Retry-After` beyond about 100 at once, then 10 \
a second); valid tokens from that address are still served. Text that is indexed has a limit in \
UTF-8 bytes beside its limit in characters (`maxLength`): a story's `url` 2,600 bytes, a claim's \
`subject` and `property` 1,200 bytes each once normalized for matching (422 beyond). A JSON \
number beyond a double's range is read exactly where a decimal is expected (`amount`, \
`lower`, `upper`) and is 422 naming the field elsewhere.

Reads from projections accept `wait_for=<position>`: the answer waits until the projections it \
reads have applied that position (up to 5 s, then 503 with `Retry-After`).";

#[derive(OpenApi)]
#[openapi(
    info(title = "factlog", description = DESCRIPTION),
    components(schemas(Problem, ValidationProblem, ConflictProblem, PreconditionProblem)),
    modifiers(&Security),
    tags(
        (name = "stories", description = "Published pieces that claims come from"),
        (name = "claims", description = "Assertions found in stories, and their life cycle"),
        (name = "facts", description = "Everything claimed about one subject and property, along valid time"),
        (name = "audit", description = "The event log itself (auditor or admin)"),
        (name = "erasure", description = "Removing personal values without changing a hash (admin)"),
        (name = "exchange", description = "Facts and claims for other systems: schema.org ClaimReview (JSON-LD)"),
        (name = "service", description = "Health, metrics and this description; no token"),
    )
)]
struct ApiDoc;
