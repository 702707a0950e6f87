//! The page around every console page: head, top navigation, the signed-in
//! user, and the headers every console response carries.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::error::ConsoleError;
use super::session::Session;

/// No inline script or style anywhere: everything the pages load comes
/// from the service, and nothing may frame them.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                       base-uri 'none'";

/// The policy, the frame and referrer rules on every console response;
/// `Cache-Control: no-store` on each that did not set its own (pages show
/// what one user may see; only the hashed assets are cached).
pub async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The entries of the top navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Queue,
    Stories,
    Facts,
    Audit,
    None,
}

/// A whole page: `title` (also the `<h1>` unless the content has its own),
/// the navigation when someone is signed in, and `content`.
pub fn page(title: &str, session: Option<&Session>, current: Nav, content: Markup) -> Markup {
    let link = |nav: Nav, href: &str, name: &str| {
        html! {
            li {
                @if nav == current {
                    a href=(href) aria-current="page" { (name) }
                } @else {
                    a href=(href) { (name) }
                }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — factlog" }
                link rel="stylesheet" href=(assets::css_path());
                script src=(assets::js_path()) defer {}
            }
            body {
                a class="skip" href="#content" { "Skip to content" }
                header class="top" {
                    span class="brand" { "factlog" }
                    @if let Some(s) = session {
                        nav class="main" aria-label="Main" {
                            ul {
                                (link(Nav::Queue, "/console/queue", "Queue"))
                                (link(Nav::Stories, "/console/stories", "Stories"))
                                (link(Nav::Facts, "/console/facts", "Facts"))
                                @if s.actor.role.can_audit() {
                                    (link(Nav::Audit, "/console/audit", "Audit"))
                                }
                            }
                        }
                        div class="who" {
                            span { "Signed in as " strong { (s.actor.name) } " (" (s.actor.role.as_str()) ")" }
                            form method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(s.csrf_token());
                                button type="submit" class="link" { "Sign out" }
                            }
                        }
                    }
                }
                main id="content" {
                    (content)
                }
            }
        }
    }
}

/// An HTML response of `status`.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

/// The message box beside a form, or nothing.
pub fn message(words: Option<&str>) -> Markup {
    html! {
        @if let Some(words) = words {
            div class="message" role="alert" {
                p { (words) }
            }
        }
    }
}

/// A page that only says what went wrong, with a way back.
pub fn error_page(status: StatusCode, words: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    respond(
        status,
        page(
            title,
            None,
            Nav::None,
            html! {
                h1 { (title) }
                (message(Some(words)))
                p { a href="/console" { "Back to the console" } }
            },
        ),
    )
}

pub async fn not_found() -> Response {
    ConsoleError::NotFound("There is no such page in the console.".into()).into_response()
}
