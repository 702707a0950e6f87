//! The console's claim, fact and audit pages through a real socket: actions
//! offered only to those the domain allows, each conditional on the version
//! shown and written once however often it is sent; refusals in words that
//! write nothing; the "New claim" form; facts as known now and then; the
//! audit trail and the latest checkpoint; hostile text escaped; the policy
//! header on every page.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::console::{
    Page, assert_page_headers, escaped, get, hidden, location, post_form, sign_in,
};
use crate::hostile::hostile;
use crate::support::TestApp;

const BODY: &str = "Some 5,200 U.S. troops remain in Iraq, officials said on Monday. \
                    The vote passed 170 to 0.";
const QUOTE: &str = "Some 5,200 U.S. troops remain in Iraq";

/// The hidden fields of the form that posts to `action`.
fn form_fields(html: &str, action: &str) -> Vec<(String, String)> {
    let marker = format!("action=\"{action}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no form posts to {action}: {html}"));
    let form = &html[start..];
    let form = &form[..form.find("</form>").expect("form end")];
    form.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let name = rest.split('"').next().expect("name").to_owned();
            let value = rest
                .split("value=\"")
                .nth(1)
                .and_then(|v| v.split('"').next())
                .expect("value")
                .to_owned();
            (name, value)
        })
        .collect()
}

/// The form's hidden fields with `extra` on top, as a browser sends it.
fn filled(hidden: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = hidden.to_vec();
    all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    all
}

async fn send_form(app: &TestApp, path: &str, cookie: &str, fields: &[(String, String)]) -> Page {
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post_form(app, path, Some(cookie), Some(&app.base), &pairs).await
}

/// A story (by `token`) with [`BODY`], and its id.
async fn story(app: &TestApp, token: &str) -> String {
    let (st, _, s) = app
        .post_json(
            "/v1/stories",
            token,
            &json!({"title": "Troops", "publisher": "Example Times",
                    "published_at": "2020-01-06", "body": BODY}),
        )
        .await;
    assert_eq!(st, 201, "{s}");
    s["id"].as_str().expect("id").to_owned()
}

/// A claim asserted through the API; its receipt.
async fn claim(app: &TestApp, token: &str, story_id: &str) -> Value {
    let (st, _, c) = app
        .post_json(
            "/v1/claims",
            token,
            &json!({"story_id": story_id, "subject": "U.S. troops in Iraq",
                    "property": "troop_count", "valid_at": "2020-01-06",
                    "value": {"kind": "quantity", "amount": "5200", "unit": "soldier"},
                    "quote": QUOTE}),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    c
}

async fn api_claim(app: &TestApp, token: &str, id: &str) -> Value {
    let (st, _, c) = app.get_json(&format!("/v1/claims/{id}"), token).await;
    assert_eq!(st, 200, "{c}");
    c
}

/// Waits until the projections have read the write at `position`.
async fn caught_up(app: &TestApp, token: &str, receipt: &Value) {
    let position = receipt["position"].as_i64().expect("position");
    let (st, _, body) = app
        .get_json(&format!("/v1/claims?wait_for={position}"), token)
        .await;
    assert_eq!(st, 200, "{body}");
}

const BUTTONS: [&str; 5] = [
    ">Confirm</button>",
    ">Dispute</button>",
    ">Retract</button>",
    ">Amend</a>",
    ">Add evidence</button>",
];

struct World {
    app: TestApp,
    ann: String,
    bob: String,
    claim_id: String,
    claim_path: String,
}

/// ann's story and claim; bob is another editor.
async fn world() -> World {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let story_id = story(&app, &ann).await;
    let c = claim(&app, &ann, &story_id).await;
    let claim_id = c["id"].as_str().expect("id").to_owned();
    World {
        claim_path: format!("/console/claims/{claim_id}"),
        app,
        ann,
        bob,
        claim_id,
    }
}

#[tokio::test]
async fn the_asserter_sees_no_confirm_and_a_forged_confirm_writes_nothing() {
    let w = world().await;
    let anns = sign_in(&w.app, &w.ann).await;
    let page = get(&w.app, &w.claim_path, Some(&anns)).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(!page.html.contains(">Confirm</button>"), "{}", page.html);
    for b in &BUTTONS[1..] {
        assert!(page.html.contains(b), "{b}: {}", page.html);
    }
    // A Confirm form forged from another form of the page.
    let fields = form_fields(&page.html, &format!("{}/dispute", w.claim_path));
    let before = w.app.count_events().await;
    let p = send_form(
        &w.app,
        &format!("{}/confirm", w.claim_path),
        &anns,
        &filled(&fields, &[("note", "mine")]),
    )
    .await;
    assert_eq!(p.status, 403, "{}", p.html);
    assert!(
        p.html
            .contains("The editor who asserted a claim cannot confirm it. Nothing was saved."),
        "{}",
        p.html
    );
    assert_page_headers(&p, "a refused action");
    assert_eq!(w.app.count_events().await, before);
    assert_eq!(
        api_claim(&w.app, &w.ann, &w.claim_id).await["status"],
        "pending"
    );
}

#[tokio::test]
async fn another_editor_confirms_through_the_form() {
    let w = world().await;
    let bobs = sign_in(&w.app, &w.bob).await;
    let page = get(&w.app, &w.claim_path, Some(&bobs)).await;
    assert!(page.html.contains(">Confirm</button>"), "{}", page.html);
    assert!(!page.html.contains(">Retract</button>"), "not bob's claim");
    assert!(!page.html.contains(">Amend</a>"), "not bob's claim");
    let fields = form_fields(&page.html, &format!("{}/confirm", w.claim_path));
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["csrf", "idempotency_key", "version"]);
    assert_eq!(fields[2].1, "1");
    let p = send_form(
        &w.app,
        &format!("{}/confirm", w.claim_path),
        &bobs,
        &filled(&fields, &[("note", "checked with the Pentagon")]),
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    assert_eq!(location(&p), w.claim_path);
    let c = api_claim(&w.app, &w.bob, &w.claim_id).await;
    assert_eq!(c["status"], "verified", "{c}");
    assert_eq!(c["confirmations"][0]["by"], "bob");
    assert_eq!(c["confirmations"][0]["note"], "checked with the Pentagon");
    let page = get(&w.app, &w.claim_path, Some(&bobs)).await;
    assert!(page.html.contains("checked with the Pentagon"));
    assert!(!page.html.contains(">Confirm</button>"), "confirmed once");
}

#[tokio::test]
async fn a_stale_confirm_says_the_claim_changed_and_writes_nothing() {
    let w = world().await;
    let cy = w.app.token("cy", "editor").await;
    let bobs = sign_in(&w.app, &w.bob).await;
    let cys = sign_in(&w.app, &cy).await;
    // bob opens the claim at version 1 ...
    let bobs_page = get(&w.app, &w.claim_path, Some(&bobs)).await;
    let confirm = form_fields(&bobs_page.html, &format!("{}/confirm", w.claim_path));
    // ... cy disputes it meanwhile (version 2) ...
    let cys_page = get(&w.app, &w.claim_path, Some(&cys)).await;
    let dispute = form_fields(&cys_page.html, &format!("{}/dispute", w.claim_path));
    let p = send_form(
        &w.app,
        &format!("{}/dispute", w.claim_path),
        &cys,
        &filled(&dispute, &[("reason", "the Pentagon says 6,000")]),
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    let before = w.app.count_events().await;
    // ... and bob's confirmation of version 1 is refused.
    let p = send_form(
        &w.app,
        &format!("{}/confirm", w.claim_path),
        &bobs,
        &filled(&confirm, &[]),
    )
    .await;
    assert_eq!(p.status, 412, "{}", p.html);
    assert!(p.html.contains("changed since you opened it"), "{}", p.html);
    // The new state: disputed, with cy's reason, at version 2.
    assert!(p.html.contains(">disputed</dd>"), "{}", p.html);
    assert!(p.html.contains("the Pentagon says 6,000"), "{}", p.html);
    assert!(p.html.contains("<dd>2</dd>"), "{}", p.html);
    assert_eq!(
        form_fields(&p.html, &format!("{}/confirm", w.claim_path))[2].1,
        "2"
    );
    assert_eq!(w.app.count_events().await, before);
    let c = api_claim(&w.app, &w.bob, &w.claim_id).await;
    assert_eq!(c["status"], "disputed");
    assert_eq!(c["confirmations"], json!([]));
}

#[tokio::test]
async fn a_double_submitted_dispute_writes_once() {
    let w = world().await;
    let bobs = sign_in(&w.app, &w.bob).await;
    let page = get(&w.app, &w.claim_path, Some(&bobs)).await;
    let path = format!("{}/dispute", w.claim_path);
    let fields = filled(&form_fields(&page.html, &path), &[("reason", "doubtful")]);
    let before = w.app.count_events().await;
    for _ in 0..2 {
        let p = send_form(&w.app, &path, &bobs, &fields).await;
        assert_eq!(p.status, 303, "{}", p.html);
        assert_eq!(location(&p), w.claim_path);
    }
    assert_eq!(w.app.count_events().await, before + 1);
    let c = api_claim(&w.app, &w.bob, &w.claim_id).await;
    assert_eq!(c["disputes"].as_array().map(Vec::len), Some(1), "{c}");
    // A field left empty is said beside it, with nothing written.
    let page = get(&w.app, &w.claim_path, Some(&bobs)).await;
    let fields = form_fields(&page.html, &path);
    let p = send_form(&w.app, &path, &bobs, &filled(&fields, &[("reason", " ")])).await;
    assert_eq!(p.status, 422, "{}", p.html);
    assert!(
        p.html.contains("class=\"field-error\">Reason: "),
        "{}",
        p.html
    );
    assert_eq!(w.app.count_events().await, before + 1);
}

#[tokio::test]
async fn a_reader_sees_no_actions_and_a_readers_action_is_refused() {
    let w = world().await;
    let rita = w.app.token("rita", "reader").await;
    let ritas = sign_in(&w.app, &rita).await;
    let page = get(&w.app, &w.claim_path, Some(&ritas)).await;
    assert_eq!(page.status, 200);
    for b in BUTTONS {
        assert!(!page.html.contains(b), "{b}: {}", page.html);
    }
    assert!(!page.html.contains("Actions"), "{}", page.html);
    let csrf = hidden(&page.html, "csrf");
    let before = w.app.count_events().await;
    for action in ["confirm", "dispute", "evidence", "amend"] {
        let p = post_form(
            &w.app,
            &format!("{}/{action}", w.claim_path),
            Some(&ritas),
            Some(&w.app.base),
            &[
                ("csrf", &csrf),
                ("idempotency_key", "k1"),
                ("version", "1"),
                ("reason", "r"),
                ("url", "https://example.org/"),
            ],
        )
        .await;
        assert_eq!(p.status, 403, "{action}: {}", p.html);
        assert!(
            p.html.contains("The reader role may not write"),
            "{action}: {}",
            p.html
        );
    }
    let p = get(&w.app, &format!("{}/amend", w.claim_path), Some(&ritas)).await;
    assert_eq!(p.status, 403, "{}", p.html);
    assert!(p.html.contains("The reader role may not write"));
    assert_eq!(w.app.count_events().await, before);
}

#[tokio::test]
async fn the_asserter_amends_and_adds_evidence_through_the_forms() {
    let w = world().await;
    let anns = sign_in(&w.app, &w.ann).await;
    let page = get(&w.app, &format!("{}/amend", w.claim_path), Some(&anns)).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert_page_headers(&page, "the amend page");
    for filled_in in [
        "<option value=\"quantity\" selected>",
        "name=\"value\" value=\"5200\"",
        "name=\"unit\" value=\"soldier\"",
        "name=\"valid_at\" value=\"2020-01-06\"",
        &format!(">{QUOTE}</textarea>"),
    ] {
        assert!(page.html.contains(filled_in), "{filled_in}: {}", page.html);
    }
    let path = format!("{}/amend", w.claim_path);
    let amend_fields = form_fields(&page.html, &path);
    let fields = filled(
        &amend_fields,
        &[
            ("value_kind", "quantity"),
            ("value", "5300"),
            ("unit", "soldier"),
            ("approximate", "yes"),
            ("lower", "5000"),
            ("upper", "5500"),
            ("valid_at", "2020-01"),
            ("attributed_to", "officials"),
            ("quote", QUOTE),
        ],
    );
    let p = send_form(&w.app, &path, &anns, &fields).await;
    assert_eq!(p.status, 303, "{}", p.html);
    let c = api_claim(&w.app, &w.ann, &w.claim_id).await;
    assert_eq!(
        c["value"],
        json!({"kind": "quantity", "amount": "5300", "unit": "soldier",
               "approximate": true, "lower": "5000", "upper": "5500"}),
        "{c}"
    );
    // The amend page holds them as they now are.
    let again = get(&w.app, &format!("{}/amend", w.claim_path), Some(&anns)).await;
    for filled_in in [
        "name=\"approximate\" value=\"yes\" checked",
        "name=\"lower\" value=\"5000\"",
        "name=\"upper\" value=\"5500\"",
    ] {
        assert!(
            again.html.contains(filled_in),
            "{filled_in}: {}",
            again.html
        );
    }
    assert_eq!(c["valid_at"], "2020-01");
    assert_eq!(c["attributed_to"], "officials");
    assert_eq!(c["version"], 2);

    let page = get(&w.app, &w.claim_path, Some(&anns)).await;
    let path = format!("{}/evidence", w.claim_path);
    let fields = filled(
        &form_fields(&page.html, &path),
        &[
            ("url", "https://example.org/pentagon"),
            ("note", "press release"),
        ],
    );
    let p = send_form(&w.app, &path, &anns, &fields).await;
    assert_eq!(p.status, 303, "{}", p.html);
    let c = api_claim(&w.app, &w.ann, &w.claim_id).await;
    assert_eq!(
        c["evidence"][0]["url"], "https://example.org/pentagon",
        "{c}"
    );
    assert_eq!(c["evidence"][0]["note"], "press release");
    // bob may not amend ann's claim: no page, and a forged one writes nothing.
    let bobs = sign_in(&w.app, &w.bob).await;
    let p = get(&w.app, &format!("{}/amend", w.claim_path), Some(&bobs)).await;
    assert_eq!(p.status, 403, "{}", p.html);
    assert!(
        p.html
            .contains("Only the editor who asserted a claim may amend it")
    );
    let before = w.app.count_events().await;
    let csrf = hidden(&p.html, "csrf");
    let forged = filled(
        &[
            ("csrf".into(), csrf),
            ("idempotency_key".into(), "k2".into()),
            ("version".into(), "3".into()),
        ],
        &[("value_kind", "text"), ("value", "x"), ("quote", QUOTE)],
    );
    let p = send_form(&w.app, &format!("{}/amend", w.claim_path), &bobs, &forged).await;
    assert_eq!(p.status, 403, "{}", p.html);
    assert_eq!(w.app.count_events().await, before);
}

#[tokio::test]
async fn the_new_claim_form_takes_its_quote_from_the_link_and_asserts_the_claim() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let story_id = story(&app, &ann).await;
    let anns = sign_in(&app, &ann).await;
    let story_page = get(&app, &format!("/console/stories/{story_id}"), Some(&anns)).await;
    let form_path = format!("/console/stories/{story_id}/claims/new");
    assert!(
        story_page.html.contains(&format!(
            "action=\"{form_path}\"><button type=\"submit\" id=\"new-claim\" data-href=\"{form_path}\""
        )),
        "{}",
        story_page.html
    );
    let quote = "The vote passed 170 to 0.";
    let page = get(
        &app,
        &format!("{form_path}?quote=The%20vote%20passed%20170%20to%200."),
        Some(&anns),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert_page_headers(&page, "the new claim form");
    for label in [
        "Subject",
        "Property",
        "Value kind",
        "Value",
        "Unit",
        "Valid at",
        "Attributed to",
        "Quote",
    ] {
        assert!(page.html.contains(&format!("<label>{label}")), "{label}");
    }
    assert!(
        page.html.contains(&format!(">{quote}</textarea>")),
        "{}",
        page.html
    );
    for kind in ["quantity", "date", "outcome", "entity", "boolean", "text"] {
        assert!(
            page.html.contains(&format!("<option value=\"{kind}\"")),
            "{kind}"
        );
    }
    let post = format!("/console/stories/{story_id}/claims");
    let hidden = form_fields(&page.html, &post);
    let fields = filled(
        &hidden,
        &[
            ("subject", "Iraq troop bill"),
            ("property", "vote"),
            ("value_kind", "outcome"),
            ("value", "passed"),
            ("unit", ""),
            ("votes_for", "many"),
            ("votes_against", "0"),
            ("valid_at", "2020-01-06"),
            ("attributed_to", "the clerk"),
            ("quote", quote),
        ],
    );
    let before = app.count_events().await;
    // A count that is not one is explained beside its field, and kept.
    let p = send_form(&app, &post, &anns, &fields).await;
    assert_eq!(p.status, 422, "{}", p.html);
    assert!(
        p.html
            .contains("class=\"field-error\">Votes for: must be a non-negative integer"),
        "{}",
        p.html
    );
    assert!(
        p.html.contains("name=\"votes_for\" value=\"many\""),
        "{}",
        p.html
    );
    assert_eq!(app.count_events().await, before, "nothing was written");
    let fields: Vec<(String, String)> = fields
        .into_iter()
        .map(|(k, v)| {
            if k == "votes_for" {
                (k, "170".to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    let p = send_form(&app, &post, &anns, &fields).await;
    assert_eq!(p.status, 303, "{}", p.html);
    let claim_path = location(&p).to_owned();
    assert!(claim_path.starts_with("/console/claims/"), "{claim_path}");
    // Sent again: the same claim, written once.
    let again = send_form(&app, &post, &anns, &fields).await;
    assert_eq!(location(&again), claim_path);
    assert_eq!(app.count_events().await, before + 1);
    let id = claim_path.trim_start_matches("/console/claims/");
    let c = api_claim(&app, &ann, id).await;
    assert_eq!(c["quote"], quote, "{c}");
    assert_eq!(
        c["value"],
        json!({"kind": "outcome", "outcome": "passed", "for": 170, "against": 0})
    );
    assert_eq!(c["valid_at"], "2020-01-06");
    assert_eq!(c["attributed_to"], "the clerk");
    assert_eq!(c["story_id"], story_id.as_str());
    let (_, _, _) = app
        .get_json(&format!("/v1/claims?wait_for={}", c["version"]), &ann)
        .await;
    let page = get(&app, &claim_path, Some(&anns)).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("passed"));
    // A reader is not offered the form.
    let rita = app.token("rita", "reader").await;
    let ritas = sign_in(&app, &rita).await;
    let p = get(&app, &format!("/console/stories/{story_id}"), Some(&ritas)).await;
    assert!(!p.html.contains("id=\"new-claim\""));
    assert_eq!(get(&app, &form_path, Some(&ritas)).await.status, 403);
}

#[tokio::test]
async fn a_bad_valid_at_is_explained_beside_it_and_what_was_typed_is_kept() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let story_id = story(&app, &ann).await;
    let anns = sign_in(&app, &ann).await;
    let page = get(
        &app,
        &format!("/console/stories/{story_id}/claims/new"),
        Some(&anns),
    )
    .await;
    let post = format!("/console/stories/{story_id}/claims");
    let fields = filled(
        &form_fields(&page.html, &post),
        &[
            ("subject", "Kept <subject>"),
            ("property", "troop_count"),
            ("value_kind", "quantity"),
            ("value", "5200"),
            ("unit", "soldier"),
            ("valid_at", "last Tuesday"),
            ("attributed_to", "officials"),
            ("quote", QUOTE),
        ],
    );
    let before = app.count_events().await;
    let p = send_form(&app, &post, &anns, &fields).await;
    assert_eq!(p.status, 422, "{}", p.html);
    assert!(
        p.html.contains("class=\"field-error\">Valid at: must be"),
        "{}",
        p.html
    );
    for kept in [
        "value=\"Kept &lt;subject&gt;\"",
        "value=\"last Tuesday\"",
        "value=\"5200\"",
        "value=\"soldier\"",
        "value=\"officials\"",
        "<option value=\"quantity\" selected>",
    ] {
        assert!(p.html.contains(kept), "{kept}: {}", p.html);
    }
    assert!(p.html.contains(&format!(">{QUOTE}</textarea>")));
    assert_eq!(app.count_events().await, before);
    // A quote not in the story: said beside "Quote".
    let mut fields = fields;
    for (k, v) in fields.iter_mut() {
        if k == "valid_at" {
            *v = "2020-01".into();
        }
        if k == "quote" {
            *v = "words no one wrote".into();
        }
    }
    let p = send_form(&app, &post, &anns, &fields).await;
    assert_eq!(p.status, 422, "{}", p.html);
    assert!(
        p.html
            .contains("class=\"field-error\">Quote: the quote does not occur"),
        "{}",
        p.html
    );
    assert_eq!(app.count_events().await, before);
}

#[tokio::test]
async fn facts_are_found_and_shown_now_and_as_known_before() {
    let w = world().await;
    let c = api_claim(&w.app, &w.ann, &w.claim_id).await;
    let asserted_at = c["asserted_at"].as_str().expect("time").to_owned();
    let fact_id = c["fact_id"].as_str().expect("fact").to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (st, _, confirmed) = w
        .app
        .post_json(
            &format!("/v1/claims/{}/confirmations", w.claim_id),
            &w.bob,
            &json!({}),
        )
        .await;
    assert_eq!(st, 200, "{confirmed}");
    caught_up(&w.app, &w.bob, &confirmed).await;
    let position = confirmed["position"].as_i64().expect("position");
    w.app
        .get_json(&format!("/v1/facts/{fact_id}?wait_for={position}"), &w.bob)
        .await;
    let bobs = sign_in(&w.app, &w.bob).await;

    let list = get(
        &w.app,
        "/console/facts?subject=u.s.+troops+in+iraq&property=troop_count",
        Some(&bobs),
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.html);
    assert_page_headers(&list, "the facts");
    let link = format!("href=\"/console/facts/{fact_id}\"");
    assert!(list.html.contains(&link), "{}", list.html);
    assert!(list.html.contains("(verified)"), "{}", list.html);
    let none = get(&w.app, "/console/facts?subject=nothing", Some(&bobs)).await;
    assert!(none.html.contains("No fact matches."), "{}", none.html);

    let path = format!("/console/facts/{fact_id}");
    let page = get(&w.app, &path, Some(&bobs)).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert_page_headers(&page, "a fact");
    for words in [
        "<h1>U.S. troops in Iraq — troop_count</h1>",
        "<dd class=\"status\">verified</dd>",
        "<h2>Timeline</h2>",
        "<strong>2020-01-06</strong>",
        "5200 soldier",
        &format!("href=\"/console/claims/{}\"", w.claim_id),
        "confirmed by bob",
        ">As of",
        "type=\"datetime-local\" name=\"as_of\"",
    ] {
        assert!(page.html.contains(words), "{words}: {}", page.html);
    }
    // As known when it was asserted: one pending claim, nothing verified.
    let then = get(
        &w.app,
        &format!("{path}?as_of={}", asserted_at.replace('+', "%2B")),
        Some(&bobs),
    )
    .await;
    assert_eq!(then.status, 200, "{}", then.html);
    assert!(then.html.contains("As known at"), "{}", then.html);
    assert!(
        then.html.contains("<dd class=\"status\">unverified</dd>"),
        "{}",
        then.html
    );
    assert!(then.html.contains("(pending)"), "{}", then.html);
    assert!(!then.html.contains("confirmed by bob"), "{}", then.html);
    // Before anything was recorded.
    let before = get(
        &w.app,
        &format!("{path}?as_of=2001-01-01T00:00"),
        Some(&bobs),
    )
    .await;
    assert!(
        before.html.contains("Nothing had been recorded"),
        "{}",
        before.html
    );
    // A bad time is said in words.
    let bad = get(&w.app, &format!("{path}?as_of=last+week"), Some(&bobs)).await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.html.contains("As of: must be a date and time"),
        "{}",
        bad.html
    );
    assert_page_headers(&bad, "a fact with a bad time");
    let missing = get(
        &w.app,
        &format!("/console/facts/{}", uuid::Uuid::now_v7()),
        Some(&bobs),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert!(missing.html.contains("No fact has this id."));
}

#[tokio::test]
async fn the_audit_page_lists_events_by_actor_and_the_latest_checkpoint() {
    let w = world().await;
    let (st, _, _) = w
        .app
        .post_json(
            &format!("/v1/claims/{}/disputes", w.claim_id),
            &w.bob,
            &json!({"reason": "doubtful"}),
        )
        .await;
    assert_eq!(st, 200);
    let audrey = w.app.token("audrey", "auditor").await;
    let audreys = sign_in(&w.app, &audrey).await;
    // The signer runs every 100 ms in tests: wait for a checkpoint.
    let started = Instant::now();
    let note = loop {
        let res = w
            .app
            .get("/v1/checkpoint", &audrey)
            .send()
            .await
            .expect("get");
        if res.status().as_u16() == 200 {
            break res.text().await.expect("note");
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no checkpoint");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let page = get(&w.app, "/console/audit?actor=bob", Some(&audreys)).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert_page_headers(&page, "the audit page");
    assert!(
        page.html.contains("<strong>ClaimDisputed</strong> by bob"),
        "{}",
        page.html
    );
    assert!(!page.html.contains(" by ann "), "{}", page.html);
    assert!(!page.html.contains("ClaimAsserted"), "{}", page.html);
    assert!(page.html.contains("value=\"bob\""), "{}", page.html);
    assert!(page.html.contains("<h2>Latest checkpoint</h2>"));
    // The latest one: at least as large as the one read above.
    let shown = page
        .html
        .split("<pre class=\"note\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .expect("a note");
    let size = |note: &str| -> u64 {
        note.lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .expect("size")
    };
    assert!(size(shown) >= size(&note), "{shown}");
    assert!(
        page.html
            .contains(&format!("<dd>{} events</dd>", size(shown)))
    );
    assert!(shown.starts_with(&escaped(note.lines().next().expect("origin"))));
    // A time window that ends before everything.
    let p = get(
        &w.app,
        "/console/audit?actor=ann&until=2001-01-01T00:00",
        Some(&audreys),
    )
    .await;
    assert!(p.html.contains("No events match."), "{}", p.html);
    let p = get(&w.app, "/console/audit?since=soon", Some(&audreys)).await;
    assert_eq!(p.status, 422);
    assert!(
        p.html.contains("Since: must be a date and time"),
        "{}",
        p.html
    );
    // Editors may not audit.
    let anns = sign_in(&w.app, &w.ann).await;
    let p = get(&w.app, "/console/audit", Some(&anns)).await;
    assert_eq!(p.status, 403, "{}", p.html);
    assert!(
        p.html
            .contains("The editor role may not audit; auditors and admins may."),
        "{}",
        p.html
    );
    assert_page_headers(&p, "the audit page, refused");
}

/// A string as it appears inside JSON text (pretty-printed data).
fn in_json(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("json");
    quoted[1..quoted.len() - 1].to_owned()
}

#[tokio::test]
async fn hostile_text_is_escaped_on_the_claim_fact_and_audit_pages() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let audrey = app.token("audrey", "auditor").await;
    let anns = sign_in(&app, &ann).await;
    let audreys = sign_in(&app, &audrey).await;
    for (i, s) in hostile().into_iter().enumerate() {
        let body = format!("Lede. {s} Tail.");
        let (_, _, st) = app
            .post_json(
                "/v1/stories",
                &ann,
                &json!({"title": "t", "publisher": "p", "published_at": "2020-01-01", "body": body}),
            )
            .await;
        let property = format!("p{i}");
        let (code, _, c) = app
            .post_json(
                "/v1/claims",
                &ann,
                &json!({"story_id": st["id"], "subject": s, "property": property,
                        "value": {"kind": "text", "text": s}, "quote": s,
                        "attributed_to": s}),
            )
            .await;
        assert_eq!(code, 201, "{c}");
        caught_up(&app, &ann, &c).await;
        let id = c["id"].as_str().expect("id");
        let claim_page = get(&app, &format!("/console/claims/{id}"), Some(&anns)).await;
        assert_eq!(claim_page.status, 200);
        assert!(
            claim_page
                .html
                .contains(&format!("<h1>{} — {property}</h1>", escaped(&s))),
            "{s:?}: {}",
            claim_page.html
        );
        assert!(
            claim_page
                .html
                .contains(&format!("<dd>{}</dd>", escaped(&s))),
            "{s:?}"
        );
        assert!(!claim_page.html.contains("<script>alert"), "{s:?}");
        let fact_id = c["fact_id"].as_str().expect("fact");
        let position = c["position"].as_i64().expect("position");
        app.get_json(&format!("/v1/facts/{fact_id}?wait_for={position}"), &ann)
            .await;
        let fact_page = get(&app, &format!("/console/facts/{fact_id}"), Some(&anns)).await;
        assert_eq!(fact_page.status, 200, "{s:?}: {}", fact_page.html);
        assert!(
            fact_page
                .html
                .contains(&format!("<h1>{} — {property}</h1>", escaped(&s))),
            "{s:?}: {}",
            fact_page.html
        );
        assert!(!fact_page.html.contains("<script>alert"), "{s:?}");
        let amend_page = get(&app, &format!("/console/claims/{id}/amend"), Some(&anns)).await;
        assert!(
            amend_page
                .html
                .contains(&format!("name=\"attributed_to\" value=\"{}\"", escaped(&s))),
            "{s:?}: {}",
            amend_page.html
        );
        assert!(!amend_page.html.contains("<script>alert"), "{s:?}");
    }
    let facts = get(&app, "/console/facts", Some(&anns)).await;
    assert!(!facts.html.contains("<script>alert"));
    let audit = get(&app, "/console/audit?actor=ann", Some(&audreys)).await;
    assert_eq!(audit.status, 200);
    for s in hostile() {
        assert!(
            audit.html.contains(&escaped(&in_json(&s))),
            "{s:?}: {}",
            audit.html
        );
    }
    assert!(!audit.html.contains("<script>alert"));
}

#[tokio::test]
async fn every_new_page_sends_the_policy() {
    let w = world().await;
    let audrey = w.app.token("audrey", "auditor").await;
    let anns = sign_in(&w.app, &w.ann).await;
    let audreys = sign_in(&w.app, &audrey).await;
    let c = api_claim(&w.app, &w.ann, &w.claim_id).await;
    let story_id = c["story_id"].as_str().expect("story");
    let fact_id = c["fact_id"].as_str().expect("fact");
    for (cookie, path) in [
        (&anns, w.claim_path.clone()),
        (&anns, format!("{}/amend", w.claim_path)),
        (
            &anns,
            format!("/console/stories/{story_id}/claims/new?quote=x"),
        ),
        (&anns, "/console/facts".into()),
        (&anns, format!("/console/facts/{fact_id}")),
        (&anns, format!("/console/facts/{fact_id}?as_of=nonsense")),
        (&anns, "/console/audit".into()),
        (&audreys, "/console/audit".into()),
        (&audreys, "/console/audit?until=nonsense".into()),
        (&anns, "/console/claims/not-an-id/amend".into()),
    ] {
        let p = get(&w.app, &path, Some(cookie)).await;
        assert_page_headers(&p, &path);
    }
    // Unsigned, every new page sends to sign in.
    for path in [
        w.claim_path.clone(),
        format!("/console/facts/{fact_id}"),
        "/console/audit".into(),
        format!("/console/stories/{story_id}/claims/new"),
    ] {
        let p = get(&w.app, &path, None).await;
        assert_eq!(p.status, 303, "{path}");
        assert_eq!(location(&p), "/console/sign-in", "{path}");
    }
}
