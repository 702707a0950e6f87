//! The editors' console: HTML pages for the people in the newsroom who will
//! never use curl, served by the binary itself under `/console`.
//!
//! Another client of `service/`, like `api/`: every write goes through the
//! same [`crate::service::Services`] methods with a
//! [`crate::service::WriteContext`], its fields are checked by the same
//! `api::input` rules, and every refusal is the service's own error, put
//! into words beside the form. Pages are `maud` templates (every
//! interpolated string is escaped); the stylesheet and the script are files
//! under `assets/console/`, compiled in and served with a content hash in
//! their names. Sessions are rows in PostgreSQL (`session.rs`), so every
//! API process shares them; writing forms carry a per-session CSRF token
//! and must come from the console's own origin (`csrf.rs`).

mod assets;
mod audit;
mod claim_form;
mod claims;
mod csrf;
pub(crate) mod error;
mod facts;
mod layout;
mod queue;
pub(crate) mod session;
mod sign_in;
mod stories;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use error::ConsoleError;
pub use session::{COOKIE, MAX_AGE_SECS};

use crate::api::SharedState;

/// The console's routes, to be nested at `/console`. `max_body_bytes`
/// bounds a form as it bounds a JSON body.
pub fn router(max_body_bytes: usize) -> Router<SharedState> {
    Router::new()
        .route("/", get(sign_in::start))
        .route("/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/queue", get(queue::page))
        .route("/queue/stream", get(queue::stream))
        .route("/stories", get(stories::list).post(stories::create))
        .route("/stories/{id}", get(stories::page))
        .route("/stories/{id}/claims", post(claim_form::create))
        .route("/stories/{id}/claims/new", get(claim_form::new))
        .route("/claims/{id}", get(claims::page))
        .route(
            "/claims/{id}/amend",
            get(claims::amend).post(claims::act_amend),
        )
        .route("/claims/{id}/{action}", post(claims::act))
        .route("/facts", get(facts::list))
        .route("/facts/{id}", get(facts::page))
        .route("/audit", get(audit::page))
        .route("/assets/{file}", get(assets::serve))
        .fallback(layout::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(layout::headers))
}
