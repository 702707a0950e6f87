//! What goes wrong in the console, said in words on a page (never JSON).
//! A refusal from the service keeps the service's own reason; the form it
//! came from is shown again beside it by the handler (see `stories.rs`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::layout;
use crate::domain::error::FieldError;
use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, or one that ended: the sign-in page.
    #[error("sign in to continue")]
    SignInRequired,
    /// A writing request that did not come from the console's own pages.
    #[error("{0}")]
    CrossSite(String),
    /// The user's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A form the console could not read (not one of its own).
    #[error("{0}")]
    BadForm(String),
    #[error("too many requests; wait {retry_after} s and try again")]
    TooMany { retry_after: u64 },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::StoreError> for ConsoleError {
    fn from(e: crate::store::StoreError) -> Self {
        ConsoleError::Service(e.into())
    }
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Service(ServiceError::Store(e.into()))
    }
}

/// What a form field is called on the page, for messages about it.
pub fn label(field: &str) -> &str {
    match field {
        "title" => "Title",
        "publisher" => "Publisher",
        "published_at" => "Published at",
        "url" => "URL",
        "body" => "Body",
        "token" => "Token",
        "Idempotency-Key" => "The form",
        "story_id" => "Story",
        "subject" => "Subject",
        "property" => "Property",
        "value.kind" => "Value kind",
        "value.unit" => "Unit",
        "value.approximate" => "Approximate",
        "value.lower" => "Lower bound",
        "value.upper" => "Upper bound",
        "value.for" => "Votes for",
        "value.against" => "Votes against",
        "value.id" => "Identifier",
        "valid_at" => "Valid at",
        "attributed_to" => "Attributed to",
        "quote" => "Quote",
        "corrects" => "Corrects",
        "note" => "Note",
        "reason" => "Reason",
        "as_of" => "As of",
        "since" => "Since",
        "until" => "Until",
        "actor" => "Actor",
        f if f == "value" || f.starts_with("value.") => "Value",
        other => other,
    }
}

fn field_message(f: &FieldError) -> String {
    format!("{}: {}.", label(&f.field), f.message)
}

/// The status and the words for a refusal of the service.
pub fn describe(e: &ServiceError) -> (StatusCode, String) {
    match e {
        ServiceError::NotFound(what) => (StatusCode::NOT_FOUND, format!("No {what} has this id.")),
        ServiceError::Invalid(f) => (StatusCode::UNPROCESSABLE_ENTITY, field_message(f)),
        ServiceError::Conflict(m) => (StatusCode::CONFLICT, sentence(m)),
        ServiceError::Forbidden(m) => (StatusCode::FORBIDDEN, sentence(m)),
        ServiceError::PreconditionFailed { .. } => (
            StatusCode::PRECONDITION_FAILED,
            "This has changed since you opened it; look at it again and retry.".into(),
        ),
        ServiceError::IdempotencyKeyReused => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "This form was already sent with other contents. Reload the page to start a new one."
                .into(),
        ),
        ServiceError::DuplicateStory { .. } => (
            StatusCode::CONFLICT,
            "A story with this URL is already registered.".into(),
        ),
        ServiceError::Contended => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Others are changing this at the same moment; send the form again.".into(),
        ),
        ServiceError::NotCaughtUp { .. } | ServiceError::BeyondHead { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The lists are catching up with the latest changes; reload in a moment.".into(),
        ),
        ServiceError::Store(s) if s.is_unavailable() => {
            tracing::warn!(error = %s, "database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable; try again in a moment.".into(),
            )
        }
        ServiceError::Store(s) => {
            tracing::error!(error = %s, "console: store error");
            internal()
        }
        ServiceError::Corrupt(m) => {
            tracing::error!(error = %m, "console: unreadable stored data");
            internal()
        }
    }
}

fn internal() -> (StatusCode, String) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on the server; it has been logged.".into(),
    )
}

/// A service message (lower case, no full stop) as a sentence.
fn sentence(m: &str) -> String {
    let mut chars = m.chars();
    let mut s: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

impl ConsoleError {
    pub fn status_and_words(&self) -> (StatusCode, String) {
        match self {
            ConsoleError::SignInRequired => (StatusCode::SEE_OTHER, self.to_string()),
            ConsoleError::CrossSite(m) | ConsoleError::Forbidden(m) => {
                (StatusCode::FORBIDDEN, m.clone())
            }
            ConsoleError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            ConsoleError::BadForm(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ConsoleError::TooMany { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, sentence(&self.to_string()))
            }
            ConsoleError::Service(e) => describe(e),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        if let ConsoleError::SignInRequired = self {
            return Redirect::to(super::sign_in::PATH).into_response();
        }
        let (status, words) = self.status_and_words();
        let mut res = layout::error_page(status, &words);
        if let ConsoleError::TooMany { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}
