//! Request bodies: media type (415), size (413) and JSON syntax (400), in
//! that order, before any field is looked at.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::Value;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::{AppState, SharedState};
use crate::domain::error::FieldError;

/// A JSON request body: the raw bytes (fields are read from them, so
/// numbers are read exactly) and the parsed value when serde_json can hold
/// it, which it cannot for a number beyond binary floating point's range
/// (`1e400`): such a body is still JSON, and its fields get their own
/// verdict (an exact decimal `amount` may be that large).
pub struct JsonBody {
    value: Option<Value>,
    pub raw: Bytes,
}

impl JsonBody {
    /// The body as canonical JSON (keys sorted, numbers by value): what an
    /// idempotent retry is compared by.
    pub fn canonical(&self) -> String {
        match &self.value {
            Some(v) => crate::store::chain::canonical_json(v),
            // `read` checked that the text has a canonical form.
            None => std::str::from_utf8(&self.raw)
                .ok()
                .and_then(crate::store::chain::canonical_json_text)
                .unwrap_or_default(),
        }
    }

    /// A body made in the process rather than read from a request (the
    /// console's forms), so it is checked field by field like any other.
    pub(crate) fn of_value(value: Value) -> JsonBody {
        let raw = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        JsonBody {
            value: Some(value),
            raw,
        }
    }

    fn is_object(&self) -> bool {
        match &self.value {
            Some(v) => v.is_object(),
            None => self.raw.trim_ascii_start().starts_with(b"{"),
        }
    }
}

/// Like [`JsonBody`], but an empty body (with or without a Content-Type)
/// stands for `{}`: for endpoints whose fields are all optional.
pub struct OptionalJsonBody(pub JsonBody);

impl From<OptionalJsonBody> for JsonBody {
    fn from(body: OptionalJsonBody) -> JsonBody {
        body.0
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read(req: Request, state: &AppState, allow_empty: bool) -> Result<JsonBody, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = state.limits.max_body_bytes;
    let raw = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            // The only error with a length-limit source is the body being too large.
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::BadRequest("the request body could not be read".into())
            }
        })?;
    if raw.is_empty() && allow_empty {
        return Ok(JsonBody {
            value: Some(Value::Object(Default::default())),
            raw: Bytes::from_static(b"{}"),
        });
    }
    if !content_type.as_deref().is_some_and(is_json) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let not_json =
        |e: serde_json::Error| ApiError::BadRequest(format!("the body is not valid JSON: {e}"));
    match serde_json::from_slice::<Value>(&raw) {
        Ok(value) => Ok(JsonBody {
            value: Some(value),
            raw,
        }),
        Err(e) => {
            // Valid JSON that `Value` cannot hold: a number out of its range.
            // (Too deep a nesting has no canonical form either, and stays 400.)
            serde_json::from_slice::<serde::de::IgnoredAny>(&raw).map_err(not_json)?;
            let canonical = std::str::from_utf8(&raw)
                .ok()
                .and_then(crate::store::chain::canonical_json_text);
            match canonical {
                Some(_) => Ok(JsonBody { value: None, raw }),
                None => Err(not_json(e)),
            }
        }
    }
}

impl FromRequest<SharedState> for JsonBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        read(req, state, false).await
    }
}

impl FromRequest<SharedState> for OptionalJsonBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        read(req, state, true).await.map(OptionalJsonBody)
    }
}

/// The top-level fields of a JSON object body, each kept as raw JSON text.
pub struct Fields {
    map: BTreeMap<String, Box<RawValue>>,
}

impl Fields {
    /// Refuses a body that is not an object, or that has fields outside `allowed`
    /// (a misspelt field is an error, not silently ignored).
    pub fn of(body: &JsonBody, allowed: &[&str]) -> Result<Fields, FieldError> {
        if !body.is_object() {
            return Err(FieldError::new("body", "must be a JSON object"));
        }
        let map: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(&body.raw)
            .map_err(|_| FieldError::new("body", "must be a JSON object"))?;
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(FieldError::new(
                unknown.clone(),
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            ));
        }
        Ok(Fields { map })
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Raw JSON text of a field that is present and not null.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.map
            .get(name)
            .map(|r| r.get())
            .filter(|t| t.trim() != "null")
    }

    pub fn required_raw(&self, name: &str) -> Result<&str, FieldError> {
        self.raw(name)
            .ok_or_else(|| FieldError::new(name, "is required"))
    }

    fn string(name: &str, raw: &str) -> Result<String, FieldError> {
        serde_json::from_str::<String>(raw).map_err(|_| FieldError::new(name, "must be a string"))
    }

    pub fn required_str(&self, name: &str) -> Result<String, FieldError> {
        Self::string(name, self.required_raw(name)?)
    }

    pub fn optional_str(&self, name: &str) -> Result<Option<String>, FieldError> {
        self.raw(name).map(|r| Self::string(name, r)).transpose()
    }
}
