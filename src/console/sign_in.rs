//! Signing in with a token, and out.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::csrf;
use super::error::ConsoleError;
use super::layout::{self, Nav};
use super::session::{self, Session};
use crate::api::{PeerAddr, SharedState};
use crate::auth::hash_token;

pub const PATH: &str = "/console/sign-in";

/// Where a signed-in user starts.
const HOME: &str = "/console/queue";

fn form(words: Option<&str>, status: StatusCode) -> Response {
    layout::respond(
        status,
        layout::page(
            "Sign in",
            None,
            Nav::None,
            html! {
                h1 { "Sign in" }
                p { "Paste the token you were given (it begins with fl_)." }
                (layout::message(words))
                form class="stacked" method="post" action=(PATH) {
                    label for="token" { "Token" }
                    input type="password" id="token" name="token" autocomplete="off" required autofocus;
                    button type="submit" { "Sign in" }
                }
            },
        ),
    )
}

/// `GET /console`: the queue when signed in, else the sign-in form.
pub async fn start(session: Option<Session>) -> Response {
    match session {
        Some(_) => Redirect::to(HOME).into_response(),
        None => form(None, StatusCode::OK),
    }
}

/// `GET /console/sign-in`.
pub async fn page(session: Option<Session>) -> Response {
    start(session).await
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
}

/// `POST /console/sign-in`: checks the token as the API does (the same
/// cache, the same limit on failures per address), opens a session.
pub async fn submit(
    State(state): State<SharedState>,
    headers: HeaderMap,
    peer: Option<axum::Extension<PeerAddr>>,
    form_data: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    // A form posted from elsewhere could sign the browser in as someone else.
    csrf::check_origin(&headers)?;
    let Form(f) = form_data.map_err(|e| ConsoleError::BadForm(e.body_text()))?;
    let token = f.token.trim();
    if token.is_empty() {
        return Ok(form(
            Some("Token: paste a token."),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let hash = hash_token(token);
    let actor = match state.tokens.active(&hash) {
        Some(actor) => Some(actor),
        None => {
            let peer = peer.map(|p| p.0.0.ip());
            state
                .rate
                .check_failure(peer)
                .map_err(|wait| ConsoleError::TooMany {
                    retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                })?;
            state.tokens.resolve(&hash).await?
        }
    };
    let Some(actor) = actor else {
        return Ok(form(
            Some("That token is unknown or has been revoked. Check it and try again."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    tracing::Span::current().record("actor", actor.name.as_str());
    let id = session::open(state.services.store().pool(), &hash).await?;
    let mut res = Redirect::to(HOME).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id, csrf::is_https(&headers))) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/sign-out`: forgets the session and the cookie.
pub async fn sign_out(
    State(state): State<SharedState>,
    headers: HeaderMap,
    session: Option<Session>,
    form_data: Result<Form<SignOutForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    csrf::check_origin(&headers)?;
    let Some(session) = session else {
        return Err(ConsoleError::SignInRequired);
    };
    let Form(f) = form_data.map_err(|e| ConsoleError::BadForm(e.body_text()))?;
    csrf::check_token(&session, &f.csrf)?;
    session::close(state.services.store().pool(), &session).await?;
    let mut res = Redirect::to(PATH).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(csrf::is_https(&headers))) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}
