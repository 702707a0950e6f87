//! What every write endpoint shares: reading the conditional and idempotency
//! headers, and shaping the response (status, ETag, Location, receipt).

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::body::JsonBody;
use super::error::ApiError;
use crate::domain::error::FieldError;
use crate::domain::principal::Actor;
use crate::service::{Effect, IfMatch, WriteContext, WriteOutcome};
use crate::store::RequestFingerprint;

const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub(super) const MAX_KEY_LEN: usize = 255;

/// An `Idempotency-Key` is 1-255 visible ASCII characters (0x21-0x7E): no
/// space, no tab, nothing else. (HTTP strips white space around a field's
/// value, so none is left at either end by the time it gets here.)
fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Reads `If-Match`: `"3"` (or `W/"3"`, or a bare 3) asks for version 3; `*`
/// for any existing version. Anything else can never match (412, in its turn).
fn if_match(headers: &HeaderMap) -> Option<IfMatch> {
    let v = headers.get(header::IF_MATCH)?;
    let s = v.to_str().unwrap_or_default().trim();
    if s == "*" {
        return Some(IfMatch::Any);
    }
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    Some(
        s.parse::<u64>()
            .map_or(IfMatch::Unmatchable, IfMatch::Version),
    )
}

/// `path` is the resource's canonical path (ids lower-case and hyphenated),
/// not the one the client spelt: a retry that writes an id in upper case is
/// the same request.
pub fn context(
    actor: Actor,
    headers: &HeaderMap,
    path: &str,
    body: &JsonBody,
) -> Result<WriteContext, ApiError> {
    let idempotency = headers.get(IDEMPOTENCY_KEY).map(|v| {
        v.to_str()
            .ok()
            .filter(|k| valid_key(k))
            .map(|key| {
                RequestFingerprint::of_canonical(
                    actor.name.clone(),
                    key,
                    "POST",
                    path,
                    &body.canonical(),
                )
            })
            .ok_or_else(|| {
                FieldError::new(
                    "Idempotency-Key",
                    "must be 1-255 visible ASCII characters (0x21-0x7E; no spaces or tabs)",
                )
            })
    });
    let correlation_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(Uuid::new_v4);
    Ok(WriteContext {
        actor,
        correlation_id,
        idempotency,
        if_match: if_match(headers),
    })
}

/// A write's response. `collection` is where a created resource lives
/// (for `Location`), e.g. `/v1/claims`.
pub fn respond(outcome: WriteOutcome, collection: &str) -> Response {
    let status = match outcome.effect {
        Effect::Created => StatusCode::CREATED,
        Effect::Done => StatusCode::OK,
    };
    let mut res = (status, Json(outcome.body)).into_response();
    let headers = res.headers_mut();
    set_etag(headers, outcome.version);
    if outcome.effect == Effect::Created
        && let Ok(loc) = HeaderValue::from_str(&format!("{collection}/{}", outcome.id))
    {
        headers.insert(header::LOCATION, loc);
    }
    if outcome.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

/// A stream's version as the `ETag` of what it holds: `"3"`, which
/// `If-Match` takes back.
pub fn set_etag(headers: &mut HeaderMap, version: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        headers.insert(header::ETAG, v);
    }
}

/// Ids in paths: a malformed one is as unknown as a missing one.
pub fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_visible_ascii_only() {
        for good in ["a", "abc-1", "~!#$%&'*+.^_`|", &"k".repeat(255)] {
            assert!(valid_key(good), "{good:?}");
        }
        for bad in [
            "",
            "a b",
            "a\tb",
            " a",
            "a ",
            "\u{e9}",
            "a\u{7f}",
            &"k".repeat(256),
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}
