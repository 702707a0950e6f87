//! The one place errors become HTTP: `application/problem+json` (RFC 9457).
//! Internal details are logged here and never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::domain::error::FieldError;
use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The caller's role may not use this endpoint at all.
    #[error("{0}")]
    RoleNotAllowed(String),
    /// A life-cycle rule about who may act (e.g. the asserter confirming).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    /// The `Accept` header allows none of the resource's media types.
    #[error("{0}")]
    NotAcceptable(String),
    #[error("send the body as JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{detail}")]
    Conflict {
        detail: String,
        extra: Option<(&'static str, Value)>,
    },
    #[error("the resource is at version {current}")]
    PreconditionFailed { current: u64 },
    #[error("too many requests for this token; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    /// An event stream over its token's or the server's cap.
    #[error("{detail}")]
    TooManyStreams { detail: String, retry_after: u64 },
    #[error("too many failed authentications from this address; retry in {retry_after} s")]
    TooManyFailures { retry_after: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("no {what} has this id"))
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::RoleNotAllowed(_) | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::TooManyRequests { .. }
            | ApiError::TooManyStreams { .. }
            | ApiError::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, stable name for the problem type (`/problems/<slug>`).
    fn slug(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::RoleNotAllowed(_) => "role-not-allowed",
            ApiError::Forbidden(_) => "not-permitted",
            ApiError::BadRequest(_) => "malformed-request",
            ApiError::NotAcceptable(_) => "not-acceptable",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::NotFound(_) => "not-found",
            ApiError::Invalid(_) => "invalid-field",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PreconditionFailed { .. } => "precondition-failed",
            ApiError::TooManyRequests { .. } | ApiError::TooManyFailures { .. } => "rate-limited",
            ApiError::TooManyStreams { .. } => "too-many-streams",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::Unavailable("the database is unavailable; retry shortly".into())
            }
            StoreError::EventTooLarge { limit, .. } => ApiError::PayloadTooLarge(limit),
            StoreError::InvalidAppend(m) => ApiError::Invalid(FieldError::new("body", m)),
            StoreError::IdempotencyKeyReused { .. } => idempotency_reused(),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

fn idempotency_reused() -> ApiError {
    ApiError::Invalid(FieldError::new(
        "Idempotency-Key",
        "this key was already used for a different request (another body or path)",
    ))
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::Invalid(f) => ApiError::Invalid(f),
            ServiceError::Conflict(m) => ApiError::Conflict {
                detail: m,
                extra: None,
            },
            ServiceError::Forbidden(m) => ApiError::Forbidden(m),
            ServiceError::PreconditionFailed { current } => {
                ApiError::PreconditionFailed { current }
            }
            ServiceError::IdempotencyKeyReused => idempotency_reused(),
            ServiceError::DuplicateStory { existing } => ApiError::Conflict {
                detail: format!("a story with this url is already registered: {existing}"),
                extra: Some(("existing_story_id", json!(existing))),
            },
            ServiceError::Contended => {
                ApiError::Unavailable("the resource is busy with concurrent writes; retry".into())
            }
            ServiceError::Corrupt(m) => ApiError::Internal(m),
            ServiceError::BeyondHead { position, head } => ApiError::Invalid(FieldError::new(
                "wait_for",
                format!(
                    "position {position} is beyond the log's head ({head}): no write returned it"
                ),
            )),
            ServiceError::NotCaughtUp { position } => ApiError::Unavailable(format!(
                "the read side has not reached position {position} yet; retry"
            )),
            ServiceError::Store(e) => e.into(),
        }
    }
}

pub fn problem(
    status: StatusCode,
    slug: &str,
    detail: &str,
    extra: Map<String, Value>,
) -> Response {
    let mut body = Map::new();
    body.insert("type".into(), json!(format!("/problems/{slug}")));
    body.insert(
        "title".into(),
        json!(status.canonical_reason().unwrap_or("Error")),
    );
    body.insert("status".into(), json!(status.as_u16()));
    body.insert("detail".into(), json!(detail));
    body.extend(extra);
    let mut res = (status, Value::Object(body).to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut extra = Map::new();
        let detail = match &self {
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "request failed");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        match &self {
            ApiError::Invalid(f) => {
                extra.insert("field".into(), json!(f.field));
                extra.insert(
                    "errors".into(),
                    json!([{"field": f.field, "message": f.message}]),
                );
            }
            ApiError::Conflict {
                extra: Some((k, v)),
                ..
            } => {
                extra.insert((*k).into(), v.clone());
            }
            ApiError::PreconditionFailed { current } => {
                extra.insert("current_version".into(), json!(current));
            }
            _ => {}
        }
        let mut res = problem(status, self.slug(), &detail, extra);
        let headers = res.headers_mut();
        match &self {
            ApiError::Unauthenticated(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::TooManyRequests { retry_after }
            | ApiError::TooManyStreams { retry_after, .. }
            | ApiError::TooManyFailures { retry_after } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::PreconditionFailed { current } => {
                super::write::set_etag(headers, *current);
            }
            _ => {}
        }
        res
    }
}

// The bodies [`problem`] builds, as `/openapi.json` describes them.

/// `application/problem+json`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "schema-only: problems are built by `problem`")]
pub struct Problem {
    /// `/problems/<slug>`, stable per kind of problem.
    #[schema(format = "uri-reference", example = "/problems/not-found")]
    #[serde(rename = "type")]
    problem_type: String,
    title: String,
    status: u16,
    detail: String,
}

/// 422: the first invalid field (e.g. `value.amount`, or `Idempotency-Key`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "schema-only")]
pub struct ValidationProblem {
    #[serde(flatten)]
    problem: Problem,
    field: String,
    errors: Vec<FieldError>,
}

/// 409: the claim's state forbids the transition, or the story's url is
/// already registered (then `existing_story_id` names it).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "schema-only")]
pub struct ConflictProblem {
    #[serde(flatten)]
    problem: Problem,
    #[schema(required = false)]
    existing_story_id: uuid::Uuid,
}

/// 412: `If-Match` named another version.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "schema-only")]
pub struct PreconditionProblem {
    #[serde(flatten)]
    problem: Problem,
    current_version: u64,
}
