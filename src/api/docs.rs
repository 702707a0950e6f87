//! `/openapi.json` and the API browser at `/docs`.
//!
//! The browser is RapiDoc, vendored under `assets/` and compiled into the
//! binary: newsroom networks may be air-gapped, so the page must load
//! nothing from a CDN (no script, no font).

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::openapi;

/// RapiDoc 9.3.8 from the npm package `rapidoc` (`dist/rapidoc-min.js`),
/// MIT; see `assets/rapidoc-LICENSE.txt`.
static RAPIDOC: &[u8] = include_bytes!("../../assets/rapidoc-min.js");

// The `?v=` names the vendored version, so a cached script can be kept for
// a year and an upgrade (which must change it) is still fetched at once.
// `load-fonts="false"` stops RapiDoc fetching Open Sans from Google Fonts.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>factlog API</title>
<script type="module" src="/docs/rapidoc-min.js?v=9.3.8"></script>
</head>
<body>
<rapi-doc
  spec-url="/openapi.json"
  load-fonts="false"
  regular-font="system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
  mono-font="ui-monospace, 'SFMono-Regular', Menlo, Consolas, 'Liberation Mono', monospace"
  theme="light"
  render-style="read"
  show-header="false"
  allow-spec-url-load="false"
  allow-spec-file-load="false"
  schema-style="table"
  default-schema-tab="schema"
></rapi-doc>
</body>
</html>
"#;

// Only this origin: makes "no CDN" a property the browser enforces, not just
// a habit of the page. RapiDoc styles itself with inline styles and renders
// data: images.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

// Generated once: the document is fixed at compile time.
static SPEC_JSON: LazyLock<Result<Bytes, String>> = LazyLock::new(|| {
    openapi::spec()
        .to_json()
        .map(Bytes::from)
        .map_err(|e| e.to_string())
});

/// This description
#[utoipa::path(
    get, path = "/openapi.json", tag = "service",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object, content_type = "application/json"),
    )
)]
pub async fn openapi_json() -> Result<Response, ApiError> {
    let json = SPEC_JSON
        .as_ref()
        .map_err(|e| ApiError::Internal(e.clone()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json.clone(),
    )
        .into_response())
}

/// An API browser
///
/// Served entirely by the service itself: no CDN, no remote fonts.
#[utoipa::path(
    get, path = "/docs", tag = "service", operation_id = "docs",
    responses(
        (status = 200, description = "An HTML page rendering this description", body = String, content_type = "text/html"),
    )
)]
pub async fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        PAGE,
    )
        .into_response()
}

pub async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        RAPIDOC,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    /// The whole document as served, so that every change to the contract's
    /// description shows in review as a diff of `snapshots/openapi.json.snap`.
    /// After an intentional change: `INSTA_UPDATE=always cargo test --lib
    /// openapi_document`, then read the diff.
    #[test]
    fn openapi_document() {
        let doc = super::openapi::spec()
            .to_pretty_json()
            .expect("the document serializes");
        insta::with_settings!({prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!("openapi.json", doc);
        });
    }
}
