//! "Stories": the list (newest first, paged), the "New story" form, and a
//! story's page: its body with every claim's quote highlighted, and its
//! claims.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::claims;
use super::csrf;
use super::error::{ConsoleError, describe};
use super::layout::{self, Nav};
use super::session::{self, Session};
use crate::api::SharedState;
use crate::api::body::JsonBody;
use crate::api::input;
use crate::domain::story::Story;
use crate::domain::text::quote_spans;
use crate::service::{ServiceError, WriteContext};
use crate::store::RequestFingerprint;

/// Stories on one page of the list.
const PAGE: i64 = 50;

/// The path a story form's idempotency key is bound to.
const FORM_PATH: &str = "/console/stories";

#[derive(Deserialize)]
pub struct ListQuery {
    /// The position the previous page ended at.
    before: Option<i64>,
}

/// What the "New story" form holds: as typed, to show it again beside a
/// refusal.
#[derive(Deserialize, Default)]
pub struct StoryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    publisher: String,
    #[serde(default)]
    published_at: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    body: String,
}

impl StoryForm {
    /// The JSON body the API would take: empty optional fields left out.
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("title".into(), Value::String(self.title.clone()));
        m.insert("publisher".into(), Value::String(self.publisher.clone()));
        m.insert(
            "published_at".into(),
            Value::String(self.published_at.trim().to_owned()),
        );
        if !self.url.trim().is_empty() {
            m.insert("url".into(), Value::String(self.url.trim().to_owned()));
        }
        if !self.body.is_empty() {
            m.insert("body".into(), Value::String(self.body.clone()));
        }
        Value::Object(m)
    }
}

fn new_story_form(session: &Session, f: &StoryForm, words: Option<&str>) -> Markup {
    html! {
        section aria-labelledby="new-story" {
            h2 id="new-story" { "New story" }
            (layout::message(words))
            form class="stacked" method="post" action=(FORM_PATH) {
                input type="hidden" name="csrf" value=(session.csrf_token());
                input type="hidden" name="idempotency_key" value=(f.idempotency_key);
                label { "Title" input type="text" name="title" value=(f.title) required; }
                label { "Publisher" input type="text" name="publisher" value=(f.publisher) required; }
                label {
                    "Published at"
                    span class="hint" { "a date (2020-01-06) or a time (2020-01-06T09:30:00Z)" }
                    input type="text" name="published_at" value=(f.published_at) required;
                }
                label {
                    "URL" span class="hint" { "optional; unique among stories" }
                    input type="url" name="url" value=(f.url);
                }
                label {
                    "Body" span class="hint" { "the full text; claims quote it" }
                    textarea name="body" { (f.body) }
                }
                button type="submit" { "Save story" }
            }
        }
    }
}

async fn list_page(
    state: &SharedState,
    session: &Session,
    before: Option<i64>,
    form: Option<(&StoryForm, Option<&str>)>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let page = state.services.list_stories(before, PAGE).await?;
    let fresh;
    let form = match form {
        Some(f) => f,
        None => {
            fresh = StoryForm {
                idempotency_key: session::random_hex()?,
                ..Default::default()
            };
            (&fresh, None)
        }
    };
    let content = html! {
        h1 { "Stories" }
        @if session.actor.role.can_write() {
            (new_story_form(session, form.0, form.1))
        }
        h2 { "Newest first" }
        @if page.items.is_empty() {
            p class="notice" { "No stories yet." }
        } @else {
            ul class="items" {
                @for (_, s) in &page.items {
                    (story_item(s))
                }
            }
        }
        @if let Some(next) = &page.next {
            p { a href={ "/console/stories?before=" (next) } { "Older stories" } }
        }
    };
    Ok(layout::respond(
        status,
        layout::page("Stories", Some(session), Nav::Stories, content),
    ))
}

fn story_item(s: &Story) -> Markup {
    let r = &s.registered;
    html! {
        li {
            a href={ "/console/stories/" (r.story_id) } { (r.title) }
            div class="meta" {
                (r.publisher) ", published " (r.published_at.to_rfc3339())
                "; registered by " (s.registered_by)
            }
        }
    }
}

/// `GET /console/stories`.
pub async fn list(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    list_page(&state, &session, q.before, None, StatusCode::OK).await
}

/// `POST /console/stories`: registers the story through the service, as
/// `POST /v1/stories` does; a refusal is shown beside the form, with what
/// was typed.
pub async fn create(
    State(state): State<SharedState>,
    headers: HeaderMap,
    session: Option<Session>,
    form_data: Result<Form<StoryForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    csrf::check_origin(&headers)?;
    let session = session.ok_or(ConsoleError::SignInRequired)?;
    let Form(f) = form_data.map_err(|e| ConsoleError::BadForm(e.body_text()))?;
    csrf::check_token(&session, &f.csrf)?;
    let actor = session.actor.clone();
    if !actor.role.can_write() {
        return Err(ConsoleError::Forbidden(format!(
            "The {} role may not write; editors and admins may. Nothing was saved.",
            actor.role.as_str()
        )));
    }
    let json = f.to_json();
    let idempotency = Some(f.idempotency_key.as_str())
        .filter(|k| !k.is_empty())
        .map(|key| {
            Ok(RequestFingerprint::of_canonical(
                actor.name.clone(),
                key,
                "POST",
                FORM_PATH,
                &crate::store::chain::canonical_json(&json),
            ))
        });
    let w = WriteContext {
        actor,
        correlation_id: Uuid::new_v4(),
        idempotency,
        if_match: None,
    };
    let input = input::story(&JsonBody::of_value(json));
    match state.services.register_story(input, &w).await {
        Ok(outcome) => {
            Ok(Redirect::to(&format!("/console/stories/{}", outcome.id)).into_response())
        }
        Err(e @ (ServiceError::Store(_) | ServiceError::Corrupt(_)))
            if describe(&e).0 == StatusCode::INTERNAL_SERVER_ERROR =>
        {
            Err(e.into())
        }
        Err(e) => {
            let (status, mut words) = describe(&e);
            if let ServiceError::DuplicateStory { existing } = e {
                words = format!("{words} It is at /console/stories/{existing}.");
            }
            list_page(&state, &session, None, Some((&f, Some(&words))), status).await
        }
    }
}

/// The body with every quote's occurrences in `<mark>`: the text is cut
/// around them and each piece escaped; nothing is inserted as HTML.
fn highlighted(body: &str, quotes: &[&str]) -> Markup {
    let mut spans: Vec<std::ops::Range<usize>> =
        quotes.iter().flat_map(|q| quote_spans(body, q)).collect();
    spans.sort_by_key(|r| (r.start, r.end));
    // Overlapping or touching quotes become one mark.
    let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
    for r in spans {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let mut pieces: Vec<(bool, &str)> = Vec::new();
    let mut at = 0;
    for r in &merged {
        if let (Some(before), Some(marked)) = (body.get(at..r.start), body.get(r.clone())) {
            pieces.push((false, before));
            pieces.push((true, marked));
            at = r.end;
        }
    }
    pieces.push((false, body.get(at..).unwrap_or_default()));
    html! {
        @for (mark, text) in pieces {
            @if mark { mark { (text) } } @else { (text) }
        }
    }
}

/// `GET /console/stories/{id}`.
pub async fn page(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let missing = || ConsoleError::NotFound("No story has this id.".into());
    let id: Uuid = id.parse().map_err(|_| missing())?;
    let story = state.services.load_story(id).await?.ok_or_else(missing)?;
    let claims = state.services.story_claims(id).await?;
    let r = &story.registered;
    let new_claim = format!("/console/stories/{id}/claims/new");
    let quotes: Vec<&str> = claims
        .iter()
        .filter_map(|c| c.get("quote").and_then(Value::as_str))
        .collect();
    let content = html! {
        h1 { (r.title) }
        dl class="fields" {
            dt { "Publisher" } dd { (r.publisher) }
            dt { "Published at" } dd { (r.published_at.to_rfc3339()) }
            dt { "URL" } dd {
                @match &r.url {
                    Some(url) => a href=(url) rel="noopener noreferrer" { (url) },
                    None => span class="meta" { "none" },
                }
            }
            dt { "Registered by" } dd { (story.registered_by) " at " (story.registered_at.to_rfc3339()) }
        }
        h2 { "Body" }
        @if session.actor.role.can_write() {
            // The script adds the body's selected text as ?quote=; without it
            // the form opens the empty claim form.
            form class="toolbar" method="get" action=(new_claim) {
                button type="submit" id="new-claim" data-href=(new_claim) { "New claim" }
                @if r.body.is_some() {
                    span class="hint" { "Select the sentence a claim quotes in the body, then press New claim." }
                }
            }
        }
        @match &r.body {
            Some(body) => div class="story-body" { (highlighted(body, &quotes)) },
            None if story.erased.is_some() => p class="meta erased" { "This story's body was erased." },
            None => p class="meta" { "This story has no body." },
        }
        h2 { "Claims" }
        @if claims.is_empty() {
            p class="notice" { "No claims yet." }
        } @else {
            ul class="items" {
                @for c in &claims { (claims::summary(c, true, None)) }
            }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page(&r.title, Some(&session), Nav::Stories, content),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_marked_and_everything_is_escaped() {
        let body = "<b>Lede</b> & \"we will pass it\" <script>x</script> we will pass it";
        let html = highlighted(body, &["we will pass it", "<script>"]).into_string();
        assert_eq!(
            html,
            "&lt;b&gt;Lede&lt;/b&gt; &amp; &quot;<mark>we will pass it</mark>&quot; \
             <mark>&lt;script&gt;</mark>x&lt;/script&gt; <mark>we will pass it</mark>"
        );
        assert_eq!(highlighted("plain", &[]).into_string(), "plain");
    }
}
