//! The console's stylesheet and script: files under `assets/console/`,
//! compiled into the binary and served under a name that carries a hash
//! of their content, so they can be cached for a year and a new build is
//! fetched at once.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ConsoleError;

const CSS: &str = include_str!("../../assets/console/console.css");
const JS: &str = include_str!("../../assets/console/console.js");

struct Asset {
    /// `console.<hash>.css`
    name: String,
    content_type: &'static str,
    body: &'static str,
}

fn named(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    Asset {
        name: format!("{stem}.{}.{ext}", &hash[..16]),
        content_type,
        body,
    }
}

fn all() -> &'static [Asset; 2] {
    static ALL: OnceLock<[Asset; 2]> = OnceLock::new();
    ALL.get_or_init(|| {
        [
            named("console", "css", "text/css; charset=utf-8", CSS),
            named("console", "js", "text/javascript; charset=utf-8", JS),
        ]
    })
}

/// Where the pages load the stylesheet from.
pub fn css_path() -> String {
    format!("/console/assets/{}", all()[0].name)
}

/// Where the pages load the script from.
pub fn js_path() -> String {
    format!("/console/assets/{}", all()[1].name)
}

pub async fn serve(Path(file): Path<String>) -> Result<Response, ConsoleError> {
    let asset = all()
        .iter()
        .find(|a| a.name == file)
        .ok_or_else(|| ConsoleError::NotFound("There is no such file.".into()))?;
    let mut res = asset.body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(res)
}
