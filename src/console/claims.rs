//! A claim's page: its fields, status, confirmations, disputes and
//! evidence, and the actions this user may take on it now (as the domain's
//! `allowed_actions` says), each a form that carries the version shown and
//! an idempotency key of its own; "Amend" opens a page with the claim's
//! amendable fields. Also how a claim is shown in lists.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::claim_form::{self, ClaimForm, beside, field_key, writer};
use super::csrf;
use super::error::{ConsoleError, describe};
use super::layout::{self, Nav};
use super::session::{self, Session};
use crate::api::SharedState;
use crate::api::body::JsonBody;
use crate::api::input;
use crate::domain::claim::{self as rules, Action, Claim, Command, Context};
use crate::domain::error::FieldError;
use crate::service::{IfMatch, ServiceError, view};

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A claim's value in words: `5200 soldier (approximate)`, `passed (170 for,
/// 0 against)`, …
pub fn value_text(v: &Value) -> String {
    let kind = text(v, "kind");
    match kind {
        "quantity" => {
            let mut s = format!("{} {}", text(v, "amount"), text(v, "unit"));
            let bounds = (
                v.get("lower").and_then(Value::as_str),
                v.get("upper").and_then(Value::as_str),
            );
            match bounds {
                (Some(l), Some(u)) => s.push_str(&format!(" (between {l} and {u})")),
                (Some(l), None) => s.push_str(&format!(" (at least {l})")),
                (None, Some(u)) => s.push_str(&format!(" (at most {u})")),
                (None, None) => {}
            }
            if v.get("approximate").and_then(Value::as_bool) == Some(true) {
                s.push_str(" (approximate)");
            }
            s
        }
        "date" => text(v, "date").to_owned(),
        "outcome" => {
            let mut s = text(v, "outcome").to_owned();
            let votes = (
                v.get("for").and_then(Value::as_u64),
                v.get("against").and_then(Value::as_u64),
            );
            match votes {
                (Some(f), Some(a)) => s.push_str(&format!(" ({f} for, {a} against)")),
                (Some(f), None) => s.push_str(&format!(" ({f} for)")),
                (None, Some(a)) => s.push_str(&format!(" ({a} against)")),
                (None, None) => {}
            }
            s
        }
        "entity" => match v.get("id").and_then(Value::as_str) {
            Some(id) => format!("{} ({id})", text(v, "label")),
            None => text(v, "label").to_owned(),
        },
        "boolean" => match v.get("value").and_then(Value::as_bool) {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => String::new(),
        },
        "text" => text(v, "text").to_owned(),
        _ => String::new(),
    }
}

/// One claim in a list (the queue, a story's claims): subject, property,
/// value, status, the quote, linking to its page.
/// `story` is the title of its story, to name it (the queue).
pub fn summary(c: &Value, with_quote: bool, story: Option<&str>) -> Markup {
    let id = text(c, "id");
    html! {
        li {
            a href={ "/console/claims/" (id) } {
                (text(c, "subject")) " — " (text(c, "property"))
            }
            ": " (value_text(&c["value"]))
            " " span class="status" { "(" (text(c, "status")) ")" }
            @if with_quote {
                blockquote { (erasable(c, c, "quote", "quote")) }
            }
            div class="meta" {
                @if let Some(title) = story {
                    "in " a href={ "/console/stories/" (text(c, "story_id")) } { (title) } "; "
                }
                "asserted by " (text(c, "asserted_by")) " at " (text(c, "asserted_at"))
            }
        }
    }
}

/// Whether an erasure removed `field` (`notes` for a note or reason) from
/// the claim `c`: its value then reads as null.
fn erased(c: &Value, field: &str) -> bool {
    c["erased"]["fields"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == field))
}

/// A text the claim `c` may have had erased: the text, or a mark saying it
/// was erased.
fn erasable(c: &Value, holder: &Value, key: &str, field: &str) -> Markup {
    html! {
        @match holder.get(key).and_then(Value::as_str) {
            Some(s) => (s),
            None if erased(c, field) => span class="meta erased" { "erased" },
            None => span class="meta" { "none" },
        }
    }
}

fn optional(v: &Value, key: &str) -> Markup {
    html! {
        @match v.get(key).and_then(Value::as_str) {
            Some(s) => (s),
            None => span class="meta" { "none" },
        }
    }
}

/// Each action's name in its form's path.
fn slug(a: Action) -> &'static str {
    match a {
        Action::Confirm => "confirm",
        Action::Dispute => "dispute",
        Action::Retract => "retract",
        Action::Amend => "amend",
        Action::AttachEvidence => "evidence",
    }
}

fn action_of(slug: &str) -> Option<Action> {
    Action::ALL.into_iter().find(|a| self::slug(*a) == slug)
}

/// The button (and the form's heading) of each action.
fn button(a: Action) -> &'static str {
    match a {
        Action::Confirm => "Confirm",
        Action::Dispute => "Dispute",
        Action::Retract => "Retract",
        Action::Amend => "Amend",
        Action::AttachEvidence => "Add evidence",
    }
}

fn action_path(id: Uuid, a: Action) -> String {
    format!("/console/claims/{id}/{}", slug(a))
}

/// A form sent back refused, to show again as it was typed, with the
/// words beside its field.
struct Refused<'a> {
    action: Action,
    form: &'a ClaimForm,
    field: String,
    words: String,
}

/// The form of one action (all but "Amend", which has a page of its own).
fn action_form(
    session: &Session,
    claim: &Claim,
    a: Action,
    refused: Option<&Refused<'_>>,
) -> Result<Markup, ConsoleError> {
    let id = claim.asserted.claim_id;
    let (typed, error) = match refused.filter(|r| r.action == a) {
        Some(r) => (Some(r.form), Some((r.field.as_str(), r.words.as_str()))),
        None => (None, None),
    };
    let key = match typed {
        Some(f) if !f.idempotency_key.is_empty() => f.idempotency_key.clone(),
        _ => session::random_hex()?,
    };
    let kept = |f: fn(&ClaimForm) -> &str| typed.map(f).unwrap_or_default().to_owned();
    Ok(html! {
        @if a == Action::Amend {
            p { a class="button" href=(action_path(id, a)) { (button(a)) } }
        } @else {
            form class="stacked action" method="post" action=(action_path(id, a)) {
                input type="hidden" name="csrf" value=(session.csrf_token());
                input type="hidden" name="idempotency_key" value=(key);
                input type="hidden" name="version" value=(claim.version);
                @match a {
                    Action::Dispute | Action::Retract => {
                        label {
                            "Reason"
                            textarea name="reason" class="short" required { (kept(|f| &f.reason)) }
                            (beside(error, "reason"))
                        }
                    }
                    Action::AttachEvidence => {
                        label {
                            "URL"
                            input type="url" name="url" value=(kept(|f| &f.url)) required;
                            (beside(error, "url"))
                        }
                        label {
                            "Note" span class="hint" { "optional" }
                            input type="text" name="note" value=(kept(|f| &f.note));
                            (beside(error, "note"))
                        }
                    }
                    _ => {
                        label {
                            "Note" span class="hint" { "optional" }
                            input type="text" name="note" value=(kept(|f| &f.note));
                            (beside(error, "note"))
                        }
                    }
                }
                button type="submit" { (button(a)) }
            }
        }
    })
}

/// What this user may do to the claim now, as the domain's rules say.
fn allowed(state: &SharedState, session: &Session, claim: &Claim) -> Vec<Action> {
    rules::allowed_actions(
        claim,
        &Context {
            actor: &session.actor,
            required_confirmations: state.services.rules().required_confirmations,
        },
    )
}

/// The claim's page, with `words` above it (a refusal) when given.
fn render(
    state: &SharedState,
    session: &Session,
    claim: &Claim,
    words: Option<&str>,
    refused: Option<&Refused<'_>>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let c = view::claim(claim);
    let list = |key: &str| {
        c.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let confirmations = list("confirmations");
    let disputes = list("disputes");
    let evidence = list("evidence");
    let story_id = text(&c, "story_id");
    let fact_id = text(&c, "fact_id");
    let title = format!("{} — {}", text(&c, "subject"), text(&c, "property"));
    let mut forms = Vec::new();
    for a in allowed(state, session, claim) {
        forms.push((a, action_form(session, claim, a, refused)?));
    }
    let content = html! {
        h1 { (title) }
        (layout::message(words))
        dl class="fields" {
            dt { "Status" } dd class="status" { (text(&c, "status")) }
            dt { "Subject" } dd { (text(&c, "subject")) }
            dt { "Property" } dd { (text(&c, "property")) }
            dt { "Value kind" } dd { (text(&c["value"], "kind")) }
            dt { "Value" } dd { (value_text(&c["value"])) }
            dt { "Valid at" } dd { (optional(&c, "valid_at")) }
            dt { "Attributed to" } dd { (erasable(&c, &c, "attributed_to", "attributed_to")) }
            dt { "Quote" } dd { blockquote { (erasable(&c, &c, "quote", "quote")) } }
            dt { "Story" } dd { a href={ "/console/stories/" (story_id) } { "the story" } }
            dt { "Fact" } dd { a href={ "/console/facts/" (fact_id) } { "everything claimed about " (text(&c, "subject")) " — " (text(&c, "property")) } }
            dt { "Asserted by" } dd { (text(&c, "asserted_by")) " at " (text(&c, "asserted_at")) }
            dt { "Confirmed by" } dd {
                @if confirmations.is_empty() { span class="meta" { "no one yet" } }
                @else {
                    @for (i, k) in confirmations.iter().enumerate() {
                        @if i > 0 { "; " }
                        (text(k, "by")) " at " (text(k, "at"))
                        @if let Some(note) = k.get("note").and_then(Value::as_str) { ": " (note) }
                    }
                }
            }
            @if let Some(corrects) = c.get("corrects").and_then(Value::as_str) {
                dt { "Corrects" } dd { a href={ "/console/claims/" (corrects) } { "an earlier claim" } }
            }
            @if let Some(by) = c.get("superseded_by").and_then(Value::as_str) {
                dt { "Superseded by" } dd { a href={ "/console/claims/" (by) } { "a later claim" } }
            }
            @if let Some(r) = c.get("retraction").filter(|r| !r.is_null()) {
                dt { "Retracted" } dd { (text(r, "by")) " at " (text(r, "at")) ": " (erasable(&c, r, "reason", "notes")) }
            }
            @if let Some(fields) = c["erased"]["fields"].as_array() {
                dt { "Erased" } dd {
                    @for (i, f) in fields.iter().enumerate() {
                        @if i > 0 { ", " }
                        (f.as_str().unwrap_or_default())
                    }
                    " (the erasure at position " (c["erased"]["position"]) ")"
                }
            }
            dt { "Version" } dd { (claim.version) }
        }
        h2 { "Disputes" }
        @if disputes.is_empty() { p class="meta" { "None." } }
        @else {
            ul class="items" {
                @for d in &disputes {
                    li { (text(d, "by")) " at " (text(d, "at")) ": " (erasable(&c, d, "reason", "notes")) }
                }
            }
        }
        h2 { "Evidence" }
        @if evidence.is_empty() { p class="meta" { "None." } }
        @else {
            ul class="items" {
                @for e in &evidence {
                    li {
                        (text(e, "url"))
                        @if let Some(note) = e.get("note").and_then(Value::as_str) { " — " (note) }
                        div class="meta" { (text(e, "by")) " at " (text(e, "at")) }
                    }
                }
            }
        }
        @if !forms.is_empty() {
            h2 { "Actions" }
            div class="actions" {
                @for (a, form) in &forms {
                    section aria-label=(button(*a)) { (form) }
                }
            }
        }
    };
    Ok(layout::respond(
        status,
        layout::page(&title, Some(session), Nav::Stories, content),
    ))
}

fn claim_id(raw: &str) -> Result<Uuid, ConsoleError> {
    raw.parse()
        .map_err(|_| ConsoleError::NotFound("No claim has this id.".into()))
}

async fn load(state: &SharedState, id: Uuid) -> Result<Claim, ConsoleError> {
    state
        .services
        .load_claim(id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound("No claim has this id.".into()))
}

/// `GET /console/claims/{id}`.
pub async fn page(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let claim = load(&state, claim_id(&id)?).await?;
    render(&state, &session, &claim, None, None, StatusCode::OK)
}

/// The "Amend" page: the claim's amendable fields, as they are or as typed.
fn amend_page(
    session: &Session,
    claim: &Claim,
    f: &ClaimForm,
    error: Option<(&str, &str)>,
    status: StatusCode,
) -> Response {
    let id = claim.asserted.claim_id;
    let a = &claim.asserted;
    let title = format!("Amend: {} — {}", a.subject, a.property);
    let content = html! {
        h1 { (title) }
        p { a href={ "/console/claims/" (id) } { "Back to the claim" } }
        (layout::message(error.map(|(_, words)| words)))
        p class="notice" { "Amending clears the claim's confirmations." }
        form class="stacked" method="post" action=(action_path(id, Action::Amend)) {
            input type="hidden" name="csrf" value=(session.csrf_token());
            input type="hidden" name="idempotency_key" value=(f.idempotency_key);
            input type="hidden" name="version" value=(f.version);
            dl class="fields" {
                dt { "Subject" } dd { (a.subject) }
                dt { "Property" } dd { (a.property) }
            }
            (claim_form::value_fields(f, error))
            button type="submit" { "Save amendment" }
        }
    };
    layout::respond(
        status,
        layout::page(&title, Some(session), Nav::Stories, content),
    )
}

/// `GET /console/claims/{id}/amend`: only when this user may amend it now.
pub async fn amend(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let claim = load(&state, claim_id(&id)?).await?;
    let ctx = Context {
        actor: &session.actor,
        required_confirmations: state.services.rules().required_confirmations,
    };
    if let Err(e) = rules::check_action(&claim, Action::Amend, &ctx) {
        let (status, words) = describe(&ServiceError::from(e));
        return render(&state, &session, &claim, Some(&words), None, status);
    }
    let f = ClaimForm {
        idempotency_key: session::random_hex()?,
        ..ClaimForm::of_claim(&claim)
    };
    Ok(amend_page(&session, &claim, &f, None, StatusCode::OK))
}

/// The body the API would take for `action`, from the form.
fn body(action: Action, f: &ClaimForm) -> Value {
    let mut m = Map::new();
    let mut put = |key: &str, typed: &str| {
        if !typed.trim().is_empty() {
            m.insert(key.into(), Value::String(typed.to_owned()));
        }
    };
    match action {
        Action::Confirm => put("note", &f.note),
        Action::Dispute | Action::Retract => put("reason", &f.reason),
        Action::AttachEvidence => {
            put("url", f.url.trim());
            put("note", &f.note);
        }
        Action::Amend => return f.amendment_json(),
    }
    Value::Object(m)
}

fn parse(action: Action, body: &JsonBody) -> Result<Command, FieldError> {
    match action {
        Action::Confirm => input::confirmation(body),
        Action::Dispute => input::dispute(body),
        Action::Retract => input::retraction(body),
        Action::Amend => input::amendment(body),
        Action::AttachEvidence => input::evidence(body),
    }
}

/// `POST /console/claims/{id}/{action}`: the action through the service, as
/// the API's `POST /v1/claims/{id}/…` does, conditional on the version the
/// page showed; then the claim's page again.
pub async fn act(
    State(state): State<SharedState>,
    headers: HeaderMap,
    session: Option<Session>,
    Path((id, action)): Path<(String, String)>,
    form_data: Result<Form<ClaimForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    act_on(state, headers, session, id, action, form_data).await
}

/// `POST /console/claims/{id}/amend` (its own route, beside the page).
pub async fn act_amend(
    State(state): State<SharedState>,
    headers: HeaderMap,
    session: Option<Session>,
    Path(id): Path<String>,
    form_data: Result<Form<ClaimForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let action = slug(Action::Amend).to_owned();
    act_on(state, headers, session, id, action, form_data).await
}

async fn act_on(
    state: SharedState,
    headers: HeaderMap,
    session: Option<Session>,
    id: String,
    action: String,
    form_data: Result<Form<ClaimForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    csrf::check_origin(&headers)?;
    let session = session.ok_or(ConsoleError::SignInRequired)?;
    let Form(f) = form_data.map_err(|e| ConsoleError::BadForm(e.body_text()))?;
    csrf::check_token(&session, &f.csrf)?;
    let action = action_of(&action)
        .ok_or_else(|| ConsoleError::NotFound("There is no such action on a claim.".into()))?;
    writer(&session.actor)?;
    let id = claim_id(&id)?;
    let if_match = match f.version.trim() {
        "" => {
            return Err(ConsoleError::BadForm(
                "This form does not say which version of the claim it was opened at: \
                 nothing was saved. Reload the claim's page and send it again."
                    .into(),
            ));
        }
        v => Some(v.parse().map_or(IfMatch::Unmatchable, IfMatch::Version)),
    };
    let json = body(action, &f);
    let path = action_path(id, action);
    let w = claim_form::write_context(&session.actor, &f.idempotency_key, &path, &json, if_match);
    let input = parse(action, &JsonBody::of_value(json));
    let e = match state.services.act_on_claim(id, input, &w).await {
        Ok(_) => return Ok(Redirect::to(&format!("/console/claims/{id}")).into_response()),
        Err(e) => e,
    };
    let (status, mut words) = describe(&e);
    if status == StatusCode::INTERNAL_SERVER_ERROR || matches!(e, ServiceError::NotFound(_)) {
        return Err(e.into());
    }
    let claim = load(&state, id).await?;
    match e {
        ServiceError::Invalid(fe) => {
            let field = field_key(&fe.field).to_owned();
            if action == Action::Amend {
                let error = Some((field.as_str(), words.as_str()));
                return Ok(amend_page(&session, &claim, &f, error, status));
            }
            let refused = Refused {
                action,
                form: &f,
                field,
                words: words.clone(),
            };
            render(
                &state,
                &session,
                &claim,
                Some(&words),
                Some(&refused),
                status,
            )
        }
        ServiceError::PreconditionFailed { .. } => {
            words = "This claim has changed since you opened it: nothing was saved. \
                     This is how it is now; send the form again if you still mean it."
                .into();
            render(&state, &session, &claim, Some(&words), None, status)
        }
        _ => {
            words.push_str(" Nothing was saved.");
            render(&state, &session, &claim, Some(&words), None, status)
        }
    }
}
