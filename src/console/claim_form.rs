//! A claim's fields as a form: "New claim" (from a story's page, its quote
//! filled in from `?quote=`) and "Amend" (the amendable fields of a pending
//! claim). What was typed becomes the JSON body the API would take and goes
//! through the same `api::input` checks and `Services` methods; a refusal
//! is shown beside its field, with everything typed kept.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::csrf;
use super::error::{ConsoleError, describe};
use super::layout::{self, Nav};
use super::session::{self, Session};
use crate::api::SharedState;
use crate::api::body::JsonBody;
use crate::api::input;
use crate::domain::claim::Claim;
use crate::domain::principal::Actor;
use crate::domain::story::Story;
use crate::domain::value;
use crate::service::{IfMatch, ServiceError, WriteContext};
use crate::store::RequestFingerprint;

/// Every field any claim form sends (each action's form sends some):
/// strings as typed, so that a refused form is shown again as it was.
#[derive(Deserialize, Default, Clone)]
pub struct ClaimForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub idempotency_key: String,
    /// The claim's version the page showed (actions only).
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub property: String,
    #[serde(default)]
    pub value_kind: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub unit: String,
    /// "yes" when the "Approximate" box is ticked (a browser sends nothing
    /// for an unticked one).
    #[serde(default)]
    pub approximate: String,
    #[serde(default)]
    pub lower: String,
    #[serde(default)]
    pub upper: String,
    #[serde(default)]
    pub votes_for: String,
    #[serde(default)]
    pub votes_against: String,
    #[serde(default)]
    pub entity_id: String,
    #[serde(default)]
    pub valid_at: String,
    #[serde(default)]
    pub attributed_to: String,
    #[serde(default)]
    pub quote: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub url: String,
}

/// A text field of the body when something was typed.
fn put(m: &mut Map<String, Value>, key: &str, typed: &str) {
    let t = typed.trim();
    if !t.is_empty() {
        m.insert(key.into(), Value::String(t.to_owned()));
    }
}

/// A count (an outcome's votes) when something was typed: a number when it
/// is one, else the text, for the service to refuse by name.
fn put_count(m: &mut Map<String, Value>, key: &str, typed: &str) {
    let t = typed.trim();
    if t.is_empty() {
        return;
    }
    let v = t
        .parse::<u64>()
        .map_or_else(|_| Value::String(t.to_owned()), Value::from);
    m.insert(key.into(), v);
}

/// A text field of an amendment: `null` (cleared) when left empty.
fn put_or_null(m: &mut Map<String, Value>, key: &str, typed: &str) {
    let t = typed.trim();
    m.insert(
        key.into(),
        if t.is_empty() {
            Value::Null
        } else {
            Value::String(t.to_owned())
        },
    );
}

impl ClaimForm {
    /// The value object: "Value" is the field its kind names (a quantity's
    /// amount, a date, an outcome, an entity's label, yes or no, the text).
    fn value_json(&self) -> Value {
        let mut m = Map::new();
        let kind = self.value_kind.trim();
        m.insert("kind".into(), Value::String(kind.to_owned()));
        let typed = self.value.trim();
        let field = match kind {
            "quantity" => "amount",
            "date" => "date",
            "outcome" => "outcome",
            "entity" => "label",
            "boolean" => "value",
            _ => "text",
        };
        if kind == "boolean" {
            let b = match typed.to_ascii_lowercase().as_str() {
                "yes" | "true" => Value::Bool(true),
                "no" | "false" => Value::Bool(false),
                "" => Value::Null,
                _ => Value::String(typed.to_owned()),
            };
            if !b.is_null() {
                m.insert(field.into(), b);
            }
        } else if kind == "text" {
            // A text value is kept as typed, inner lines and all.
            if !typed.is_empty() {
                m.insert(field.into(), Value::String(self.value.clone()));
            }
        } else {
            put(&mut m, field, typed);
        }
        // Each kind's other fields go in whenever something was typed, even
        // under another kind: the service then names the field it refuses,
        // rather than the console dropping what the editor typed.
        put(&mut m, "unit", &self.unit);
        let ticked = !self.approximate.trim().is_empty();
        if kind == "quantity" || ticked {
            m.insert("approximate".into(), Value::Bool(ticked));
        }
        put(&mut m, "lower", &self.lower);
        put(&mut m, "upper", &self.upper);
        put_count(&mut m, "for", &self.votes_for);
        put_count(&mut m, "against", &self.votes_against);
        put(&mut m, "id", &self.entity_id);
        Value::Object(m)
    }

    /// The body of `POST /v1/claims`.
    pub fn new_claim_json(&self, story_id: Uuid) -> Value {
        let mut m = Map::new();
        m.insert("story_id".into(), Value::String(story_id.to_string()));
        m.insert("subject".into(), Value::String(self.subject.trim().into()));
        m.insert(
            "property".into(),
            Value::String(self.property.trim().into()),
        );
        m.insert("value".into(), self.value_json());
        m.insert("quote".into(), Value::String(self.quote.clone()));
        put(&mut m, "valid_at", &self.valid_at);
        put(&mut m, "attributed_to", &self.attributed_to);
        Value::Object(m)
    }

    /// The body of an amendment: every amendable field as the form holds
    /// it (an empty "Valid at" or "Attributed to" clears it).
    pub fn amendment_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("value".into(), self.value_json());
        m.insert("quote".into(), Value::String(self.quote.clone()));
        put_or_null(&mut m, "valid_at", &self.valid_at);
        put_or_null(&mut m, "attributed_to", &self.attributed_to);
        Value::Object(m)
    }

    /// The form filled in with a claim's amendable fields as they are.
    pub fn of_claim(claim: &Claim) -> ClaimForm {
        let a = &claim.asserted;
        let v = serde_json::to_value(&a.value).unwrap_or(Value::Null);
        let text = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default();
        let kind = text("kind").to_owned();
        let value = match kind.as_str() {
            "quantity" => text("amount").to_owned(),
            "date" => text("date").to_owned(),
            "outcome" => text("outcome").to_owned(),
            "entity" => text("label").to_owned(),
            "boolean" => match v.get("value").and_then(Value::as_bool) {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => String::new(),
            },
            _ => text("text").to_owned(),
        };
        let count = |key: &str| v.get(key).and_then(Value::as_u64).map(|n| n.to_string());
        ClaimForm {
            version: claim.version.to_string(),
            subject: a.subject.clone(),
            property: a.property.clone(),
            unit: text("unit").to_owned(),
            approximate: if v.get("approximate").and_then(Value::as_bool) == Some(true) {
                "yes".into()
            } else {
                String::new()
            },
            lower: text("lower").to_owned(),
            upper: text("upper").to_owned(),
            votes_for: count("for").unwrap_or_default(),
            votes_against: count("against").unwrap_or_default(),
            entity_id: text("id").to_owned(),
            value_kind: kind,
            value,
            valid_at: a.valid_at.map(|t| t.to_string()).unwrap_or_default(),
            attributed_to: a.attributed_to.clone().unwrap_or_default(),
            quote: a.quote.clone(),
            ..ClaimForm::default()
        }
    }
}

/// The form field a refusal is about (`FieldError::field` as the service
/// names it), to show it beside that field.
pub fn field_key(field: &str) -> &str {
    match field {
        "value.kind" => "value_kind",
        "value.unit" => "unit",
        "value.approximate" => "approximate",
        "value.lower" => "lower",
        "value.upper" => "upper",
        "value.for" => "votes_for",
        "value.against" => "votes_against",
        "value.id" => "entity_id",
        f if f == "value" || f.starts_with("value.") => "value",
        other => other,
    }
}

/// The refusal's words beside the field they are about, if it is `key`.
pub fn beside(error: Option<(&str, &str)>, key: &str) -> Markup {
    html! {
        @if let Some((field, words)) = error && field == key {
            span class="field-error" { (words) }
        }
    }
}

/// A writing role, or 403 in words.
pub fn writer(actor: &Actor) -> Result<(), ConsoleError> {
    if actor.role.can_write() {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden(format!(
            "The {} role may not write; editors and admins may. Nothing was saved.",
            actor.role.as_str()
        )))
    }
}

/// The write's context, as `api::write::context` builds it from headers:
/// the form's idempotency key bound to the form's path and body, and the
/// version it was opened at.
pub fn write_context(
    actor: &Actor,
    key: &str,
    path: &str,
    json: &Value,
    if_match: Option<IfMatch>,
) -> WriteContext {
    let idempotency = Some(key).filter(|k| !k.is_empty()).map(|key| {
        Ok(RequestFingerprint::of_canonical(
            actor.name.clone(),
            key,
            "POST",
            path,
            &crate::store::chain::canonical_json(json),
        ))
    });
    WriteContext {
        actor: actor.clone(),
        correlation_id: Uuid::new_v4(),
        idempotency,
        if_match,
    }
}

/// The "Value kind", "Value", "Unit", "Valid at", "Attributed to" and
/// "Quote" fields, holding `f`.
pub fn value_fields(f: &ClaimForm, error: Option<(&str, &str)>) -> Markup {
    html! {
        label {
            "Value kind"
            select name="value_kind" {
                @for kind in value::kinds() {
                    option value=(kind) selected[f.value_kind == kind] { (kind) }
                }
            }
            (beside(error, "value_kind"))
        }
        label {
            "Value"
            span class="hint" {
                "a quantity's amount (5200), a date (2020-01-06), an outcome (passed), \
                 a name, yes or no, or text"
            }
            input type="text" name="value" value=(f.value) required;
            (beside(error, "value"))
        }
        fieldset class="kind-fields" {
            legend { "A quantity's" }
            label {
                "Unit" span class="hint" { "soldier, USD" }
                input type="text" name="unit" value=(f.unit);
                (beside(error, "unit"))
            }
            label class="check" {
                input type="checkbox" name="approximate" value="yes" checked[!f.approximate.is_empty()];
                "Approximate" span class="hint" { "the story says \"some\", \"about\", \"nearly\"" }
                (beside(error, "approximate"))
            }
            label {
                "Lower bound" span class="hint" { "optional: the least it may be" }
                input type="text" name="lower" value=(f.lower) inputmode="decimal";
                (beside(error, "lower"))
            }
            label {
                "Upper bound" span class="hint" { "optional: the most it may be" }
                input type="text" name="upper" value=(f.upper) inputmode="decimal";
                (beside(error, "upper"))
            }
        }
        fieldset class="kind-fields" {
            legend { "An outcome's" }
            label {
                "Votes for" span class="hint" { "optional" }
                input type="text" name="votes_for" value=(f.votes_for) inputmode="numeric";
                (beside(error, "votes_for"))
            }
            label {
                "Votes against" span class="hint" { "optional" }
                input type="text" name="votes_against" value=(f.votes_against) inputmode="numeric";
                (beside(error, "votes_against"))
            }
        }
        fieldset class="kind-fields" {
            legend { "A name's" }
            label {
                "Identifier" span class="hint" { "optional: e.g. a Wikidata id (Q42)" }
                input type="text" name="entity_id" value=(f.entity_id);
                (beside(error, "entity_id"))
            }
        }
        label {
            "Valid at"
            span class="hint" { "optional: 2020, 2020-01, 2020-01-06 or a time; the story's publication time when empty" }
            input type="text" name="valid_at" value=(f.valid_at);
            (beside(error, "valid_at"))
        }
        label {
            "Attributed to" span class="hint" { "optional: who in the story said it" }
            input type="text" name="attributed_to" value=(f.attributed_to);
            (beside(error, "attributed_to"))
        }
        label {
            "Quote" span class="hint" { "the exact words of the story the claim rests on" }
            textarea name="quote" required { (f.quote) }
            (beside(error, "quote"))
        }
    }
}

fn form_path(story_id: Uuid) -> String {
    format!("/console/stories/{story_id}/claims")
}

/// The "New claim" page for `story`.
fn new_claim_page(
    session: &Session,
    story: &Story,
    f: &ClaimForm,
    error: Option<(&str, &str)>,
    status: StatusCode,
) -> Response {
    let r = &story.registered;
    let content = html! {
        h1 { "New claim" }
        p { "From " a href={ "/console/stories/" (r.story_id) } { (r.title) } }
        (layout::message(error.map(|(_, words)| words)))
        form class="stacked" method="post" action=(form_path(r.story_id)) {
            input type="hidden" name="csrf" value=(session.csrf_token());
            input type="hidden" name="idempotency_key" value=(f.idempotency_key);
            label {
                "Subject" span class="hint" { "what the claim is about" }
                input type="text" name="subject" value=(f.subject) required;
                (beside(error, "subject"))
            }
            label {
                "Property" span class="hint" { "which property of it (troop_count)" }
                input type="text" name="property" value=(f.property) required;
                (beside(error, "property"))
            }
            (value_fields(f, error))
            button type="submit" { "Save claim" }
        }
        @if let Some(body) = &r.body {
            details {
                summary { "The story's body" }
                div class="story-body" { (body) }
            }
        }
    };
    layout::respond(
        status,
        layout::page("New claim", Some(session), Nav::Stories, content),
    )
}

async fn story(state: &SharedState, id: &str) -> Result<(Uuid, Story), ConsoleError> {
    let missing = || ConsoleError::NotFound("No story has this id.".into());
    let id: Uuid = id.parse().map_err(|_| missing())?;
    let story = state.services.load_story(id).await?.ok_or_else(missing)?;
    Ok((id, story))
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    #[serde(default)]
    quote: String,
}

/// `GET /console/stories/{id}/claims/new?quote=…`.
pub async fn new(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    query: Result<Query<NewQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Query(q) = query.map_err(|e| ConsoleError::BadForm(e.body_text()))?;
    let (_, story) = story(&state, &id).await?;
    writer(&session.actor)?;
    let f = ClaimForm {
        idempotency_key: session::random_hex()?,
        quote: q.quote,
        value_kind: "quantity".into(),
        ..ClaimForm::default()
    };
    Ok(new_claim_page(&session, &story, &f, None, StatusCode::OK))
}

/// `POST /console/stories/{id}/claims`: asserts the claim through the
/// service, as `POST /v1/claims` does, and opens its page.
pub async fn create(
    State(state): State<SharedState>,
    headers: HeaderMap,
    session: Option<Session>,
    Path(id): Path<String>,
    form_data: Result<Form<ClaimForm>, FormRejection>,
) -> Result<Response, ConsoleError> {
    csrf::check_origin(&headers)?;
    let session = session.ok_or(ConsoleError::SignInRequired)?;
    let Form(f) = form_data.map_err(|e| ConsoleError::BadForm(e.body_text()))?;
    csrf::check_token(&session, &f.csrf)?;
    writer(&session.actor)?;
    let (story_id, story) = story(&state, &id).await?;
    let json = f.new_claim_json(story_id);
    let w = write_context(
        &session.actor,
        &f.idempotency_key,
        &form_path(story_id),
        &json,
        None,
    );
    let input = input::claim(&JsonBody::of_value(json));
    match state.services.assert_claim(input, &w).await {
        Ok(outcome) => Ok(Redirect::to(&format!("/console/claims/{}", outcome.id)).into_response()),
        Err(e) => {
            let (status, words) = describe(&e);
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                return Err(e.into());
            }
            let field = match &e {
                ServiceError::Invalid(fe) => field_key(&fe.field).to_owned(),
                _ => String::new(),
            };
            Ok(new_claim_page(
                &session,
                &story,
                &f,
                Some((&field, &words)),
                status,
            ))
        }
    }
}
