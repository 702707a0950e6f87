//! `/openapi.json` describes the whole contract; `/docs` renders it with
//! nothing loaded from outside the service.

use serde_json::Value;

use crate::support::TestApp;

/// Every operation of the contract (shared/API.md).
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/v1/stories"),
    ("get", "/v1/stories/{id}"),
    ("post", "/v1/claims"),
    ("get", "/v1/claims"),
    ("get", "/v1/claims/{id}"),
    ("post", "/v1/claims/{id}/confirmations"),
    ("post", "/v1/claims/{id}/disputes"),
    ("post", "/v1/claims/{id}/retraction"),
    ("post", "/v1/claims/{id}/amendments"),
    ("post", "/v1/claims/{id}/evidence"),
    ("get", "/v1/facts"),
    ("get", "/v1/facts/{fact_id}"),
    ("get", "/v1/facts/{fact_id}/history"),
    ("get", "/v1/audit"),
    ("get", "/v1/events"),
    ("get", "/v1/events/stream"),
    ("get", "/v1/integrity"),
    ("post", "/v1/integrity/checks"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn spec(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    let ct = res.headers()["content-type"].to_str().expect("ascii");
    assert!(ct.starts_with("application/json"), "{ct}");
    res.json().await.expect("json")
}

/// Every (method, path, operation) in the document.
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let paths = spec["paths"].as_object().expect("paths");
    let mut ops = Vec::new();
    for (path, item) in paths {
        for m in METHODS {
            if let Some(op) = item.get(*m) {
                ops.push((m.to_string(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn openapi_json_is_3_1_and_has_every_contract_path() {
    let app = TestApp::start().await;
    let spec = spec(&app).await;
    let version = spec["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "{version}");
    for (method, path) in CONTRACT {
        assert!(
            spec["paths"][path][method].is_object(),
            "{} {path} is not described",
            method.to_uppercase()
        );
    }
    // Nothing described under another method than the contract's.
    for (method, path, _) in operations(&spec) {
        if CONTRACT.iter().any(|(_, p)| *p == path) {
            assert!(
                CONTRACT.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is not in the contract"
            );
        }
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// The editors' console (`/console`) is HTML for people, not the API: it is
/// exempt from the contract's rule that every route is described, stays out
/// of `/openapi.json`, and so is never fuzzed as API (`.ci/schemathesis.sh`
/// works from that document).
#[tokio::test]
async fn the_console_is_not_in_the_api_document() {
    let app = TestApp::start().await;
    let spec = spec(&app).await;
    let paths = spec["paths"].as_object().expect("paths");
    let console: Vec<&String> = paths
        .keys()
        .filter(|p| *p == "/console" || p.starts_with("/console/"))
        .collect();
    assert!(console.is_empty(), "{console:?}");
    let res = app
        .client
        .get(app.url("/console"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    let ct = res.headers()["content-type"].to_str().expect("ascii");
    assert!(ct.starts_with("text/html"), "{ct}");
}

#[tokio::test]
async fn every_api_operation_requires_a_token_and_errors_are_problems() {
    let app = TestApp::start().await;
    let spec = spec(&app).await;
    for (method, path, op) in operations(&spec) {
        let name = format!("{} {path}", method.to_uppercase());
        let responses = op["responses"].as_object().expect("responses");
        if path.starts_with("/v1/") {
            assert!(responses.contains_key("401"), "{name} has no 401");
            if method == "get" {
                let takes_query = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
                let statuses: &[&str] = if takes_query {
                    &["400", "422", "503"]
                } else {
                    &["503"]
                };
                for status in statuses {
                    assert!(responses.contains_key(*status), "{name} has no {status}");
                }
            }
            assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{name}");
        } else {
            assert!(op.get("security").is_none(), "{name} needs no token");
        }
        for (status, response) in responses {
            let code: u16 = status.parse().expect("numeric status");
            let content = response["content"].as_object();
            if code >= 400 {
                let content = content.unwrap_or_else(|| panic!("{name} {status} has no body"));
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{name} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn writes_describe_bodies_headers_and_statuses() {
    let app = TestApp::start().await;
    let spec = spec(&app).await;
    for (method, path, op) in operations(&spec) {
        // Writes to the log; asking for an integrity check writes none.
        if method != "post" || path.starts_with("/v1/integrity") {
            continue;
        }
        let name = format!("POST {path}");
        assert!(
            op["requestBody"]["content"]["application/json"]["schema"].is_object(),
            "{name} has no JSON body"
        );
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(params.contains(&"Idempotency-Key"), "{name}");
        let responses = &op["responses"];
        if path == "/v1/erasures" {
            // Not a resource's version: an erasure answers with its receipt.
            for status in ["200", "403", "409", "422"] {
                assert!(responses[status].is_object(), "{name} lacks {status}");
            }
            continue;
        }
        let created = path == "/v1/stories" || path == "/v1/claims";
        let ok = if created { "201" } else { "200" };
        assert!(responses[ok]["headers"]["ETag"].is_object(), "{name}");
        if created {
            assert!(responses[ok]["headers"]["Location"].is_object(), "{name}");
        } else {
            assert!(params.contains(&"If-Match"), "{name}");
            assert!(params.contains(&"id"), "{name}");
            for status in ["404", "409", "412"] {
                assert!(responses[status].is_object(), "{name} lacks {status}");
            }
        }
        for status in ["400", "401", "403", "413", "415", "422", "503"] {
            assert!(responses[status].is_object(), "{name} lacks {status}");
        }
    }
    let value = &spec["components"]["schemas"]["Value"];
    assert_eq!(value["discriminator"]["propertyName"], "kind");
    assert_eq!(value["oneOf"].as_array().map(Vec::len), Some(6));
}

#[tokio::test]
async fn docs_page_loads_only_from_the_service() {
    let app = TestApp::start().await;
    let res = app
        .client
        .get(app.url("/docs"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    let ct = res.headers()["content-type"].to_str().expect("ascii");
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = res.text().await.expect("body");
    assert!(html.contains("/docs/rapidoc-min.js"), "{html}");
    assert!(html.contains(r#"spec-url="/openapi.json""#), "{html}");
    assert!(html.contains(r#"load-fonts="false""#), "{html}");
    let lower = html.to_ascii_lowercase();
    assert!(
        !lower.contains("http://") && !lower.contains("https://") && !lower.contains("src=\"//"),
        "the page names an outside source: {html}"
    );

    // The script exactly as the page asks for it.
    let src = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a script src");
    assert!(src.starts_with("/docs/rapidoc-min.js"), "{src}");
    let res = app.client.get(app.url(src)).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 200);
    let ct = res.headers()["content-type"].to_str().expect("ascii");
    assert!(ct.contains("javascript"), "{ct}");
    let cache = res.headers()["cache-control"].to_str().expect("ascii");
    assert!(cache.contains("max-age="), "{cache}");
    let js = res.bytes().await.expect("body");
    assert!(js.len() > 100_000, "{} bytes", js.len());
    assert!(
        String::from_utf8_lossy(&js).contains("rapi-doc"),
        "not RapiDoc"
    );
}

/// The event stream's documented schema describes the events it sends: each
/// has an `id` (the position) and `data`, JSON text of an `Event` with every
/// property the document requires.
#[tokio::test]
async fn the_event_streams_events_match_their_documented_shape() {
    let app = TestApp::start().await;
    let spec = spec(&app).await;
    let schema = &spec["components"]["schemas"]["StreamEvent"];
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, ["id", "data"]);
    let event_required: Vec<String> = spec["components"]["schemas"]["Event"]["required"]
        .as_array()
        .expect("Event.required")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();

    let auditor = app.token("audrey", "auditor").await;
    let mut res = app
        .get("/v1/events/stream?after=0", &auditor)
        .send()
        .await
        .expect("stream");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), res.chunk())
            .await
            .expect("an event in time")
            .expect("chunk")
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let first = text.split("\n\n").next().unwrap_or_default();
    let field = |name: &str| {
        first
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {first:?}"))
            .to_owned()
    };
    let id = field("id");
    assert!(id.chars().all(|c| c.is_ascii_digit()), "{id}");
    let data: Value = serde_json::from_str(&field("data")).expect("data is JSON");
    for name in &event_required {
        assert!(data.get(name).is_some(), "the event lacks {name}: {data}");
    }
    assert_eq!(data["position"].to_string(), id);
}
