//! The console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver) against the app on a real socket, with its
//! workers on. What HTTP tests cannot show: the script runs under the
//! page's Content-Security-Policy, the Queue updates itself without a
//! reload, a selection in a story's body becomes a claim's quote, the
//! keyboard alone signs in, and a 375-pixel-wide screen needs no sideways
//! scrolling.
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them when missing). Without them
//! these tests fail and say so; `FACTLOG_SKIP_BROWSER=1` skips them on a
//! machine that has no browser (never in CI). Each page visited is saved as
//! `target/browser-screenshots/<test>-<step>.png`.
//!
//! The newsroom story: editor A registers a story, selects a sentence and
//! saves a claim through "New claim"; editor B's Queue shows it live, B
//! opens it and presses "Confirm", and its fact page says "verified" with a
//! "Timeline". A is offered no "Confirm" on A's own claim and a confirm
//! forged with the page's own token is refused in words, writing nothing;
//! a confirm sent from a page opened before a dispute says the claim
//! "changed since you opened it"; a reader is offered no writing at all.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::TestApp;

/// One browser test at a time in this process: each runs a Chromium, and
/// the Queue's 2-second promise is measured, not merely hoped for.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The opt-out for a machine without a browser.
const SKIP: &str = "FACTLOG_SKIP_BROWSER";

/// Where a program is: the first of `names` on `PATH`.
fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// chromedriver and Chromium, or `None` when the tests are to be skipped;
/// panics, saying how to get them, when they are missing.
fn programs() -> Option<(PathBuf, PathBuf)> {
    if std::env::var(SKIP).is_ok_and(|v| v == "1") {
        eprintln!("{SKIP}=1: browser test skipped");
        return None;
    }
    let driver = which(&["chromedriver"]);
    let chromium = which(&["chromium", "chromium-browser", "google-chrome"]);
    match (driver, chromium) {
        (Some(d), Some(c)) => Some((d, c)),
        (d, c) => panic!(
            "the browser tests need Chromium and chromedriver (missing: {}{}). \
             .ci/run installs them (apt-get install chromium chromium-driver); \
             set {SKIP}=1 to skip these tests on a machine without a browser",
            if d.is_none() { "chromedriver " } else { "" },
            if c.is_none() { "chromium" } else { "" },
        ),
    }
}

/// A chromedriver of this test's own, on a free port, in a process group
/// of its own: dropping it ends it and the browsers it started.
struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl Driver {
    async fn start(driver: &Path, chromium: PathBuf) -> Driver {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let d = Driver {
            child,
            url,
            chromium,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = reqwest::get(format!("{}/status", d.url))
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if let Some(res) = ready {
                let status: Value = res.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    return d;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new browser (its own cookies) with a window this wide and high.
    async fn browser(&self, test: &'static str, width: u32, height: u32) -> Browser {
        let mut options = json!({
            "binary": self.chromium,
            "args": [
                "--no-sandbox",
                "--headless=new",
                format!("--window-size={width},{height}"),
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--no-first-run",
            ],
        });
        // A window is never narrower than 500 px: a phone's screen is
        // emulated (its viewport, touch and `<meta name=viewport>`).
        if width < 500 {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0},
            });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("open a Chromium session");
        Browser { client, test }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group (its id is chromedriver's): chromedriver and every
        // Chromium it started, even after a failed test.
        if let Ok(group) = libc::pid_t::try_from(self.child.id())
            && group > 1
        {
            // SAFETY: kill(2) with a negative id signals that process group
            // only; the id is this test's own child's, never 0 or 1.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// One browser window, and the test it belongs to (for screenshots).
struct Browser {
    client: Client,
    test: &'static str,
}

impl Browser {
    async fn goto(&self, app: &TestApp, path: &str) {
        self.client
            .goto(&app.url(path))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The path (and query) the browser shows.
    async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The text of the first element `css` finds, as shown. Read in one
    /// script: the live Queue may replace its list between a find and a
    /// read.
    async fn text(&self, css: &str) -> String {
        let text = self
            .js(
                "const e = document.querySelector(arguments[0]); \
                 return e ? e.innerText.trim() : null;",
                vec![json!(css)],
            )
            .await;
        match text {
            Value::String(s) => s,
            _ => panic!("no {css} on {}: {}", self.test, self.path().await),
        }
    }

    /// The form field whose label says `label` (its own words, before any
    /// hint: "Value" is not "Value kind").
    async fn field(&self, label: &str) -> fantoccini::elements::Element {
        let xpath = format!(
            "//label[normalize-space(text()[1]) = '{label}']\
             //*[self::input or self::textarea or self::select] \
             | //*[@id = //label[normalize-space(.) = '{label}']/@for]"
        );
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no field labelled {label:?}: {e}"))
    }

    async fn fill(&self, label: &str, text: &str) {
        let f = self.field(label).await;
        f.clear().await.expect("clear");
        f.send_keys(text).await.expect("type");
    }

    /// What the field labelled `label` holds.
    async fn value_of(&self, label: &str) -> String {
        self.field(label)
            .await
            .prop("value")
            .await
            .expect("a field's value")
            .unwrap_or_default()
    }

    /// Picks the option `value` of the list labelled `label`.
    async fn choose(&self, label: &str, value: &str) {
        self.field(label)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choose {value:?} as {label:?}: {e}"));
    }

    /// Follows the link in the content whose words start with `words`,
    /// and waits for the page it opens.
    async fn follow(&self, words: &str) {
        self.js("window.beforeFollow = true; return true", vec![])
            .await;
        self.client
            .find(Locator::XPath(&format!(
                "//main//a[starts-with(normalize-space(.), '{words}')]"
            )))
            .await
            .unwrap_or_else(|e| panic!("{}: no link {words:?}: {e}", self.test))
            .click()
            .await
            .unwrap_or_else(|e| panic!("follow {words:?}: {e}"));
        self.wait_until(
            Duration::from_secs(10),
            &format!("the page {words:?} opens"),
            "return window.beforeFollow === undefined \
                 && document.readyState === 'complete';",
        )
        .await;
    }

    /// The words of the buttons and button-like links in the page's
    /// content (the header's "Sign out" is not content).
    async fn buttons(&self) -> Vec<String> {
        let words = self
            .js(
                "return [...document.querySelectorAll('main button, main a.button')] \
                     .map(e => e.textContent.trim());",
                vec![],
            )
            .await;
        serde_json::from_value(words).expect("a list of words")
    }

    /// Presses the button that says `words` (each sends a form) and waits
    /// for the page that answers: a click may return before it is shown.
    async fn press(&self, words: &str) {
        self.js("window.beforePress = true; return true", vec![])
            .await;
        let xpath = format!("//button[normalize-space(.) = '{words}']");
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {words:?}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("press {words:?}: {e}"));
        self.wait_until(
            Duration::from_secs(10),
            &format!("the answer to {words:?}"),
            "return window.beforePress === undefined \
                 && document.readyState === 'complete';",
        )
        .await;
    }

    /// Presses a key, sent to whatever has the focus.
    async fn key(&self, key: Key) {
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key.into() })
            .then(KeyAction::Up { value: key.into() });
        self.client
            .perform_actions(keys)
            .await
            .expect("press a key");
    }

    /// Waits until `ready` says yes, for at most `within`; returns how long.
    async fn wait_until(&self, within: Duration, what: &str, script: &str) -> Duration {
        let start = Instant::now();
        loop {
            // A script may fail while one page replaces another: not yet.
            let ready = self.client.execute(script, vec![]).await;
            if ready.is_ok_and(|v| v == json!(true)) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{}: {what} not within {within:?}",
                self.test
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves what the window shows as `<test>-<step>.png`.
    async fn shot(&self, step: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(format!("{}-{step}.png", self.test)), png).expect("save");
    }

    /// No sideways scrolling: the page is no wider than the window.
    async fn fits(&self, width: u32, step: &str) {
        self.shot(step).await;
        // What sticks out, to say so: a phone zooms out to show it all,
        // which widens the viewport.
        let wider = self
            .js(
                "const [w] = arguments; \
                 return [...document.querySelectorAll('body *')] \
                     .filter(e => e.getBoundingClientRect().right > w \
                         || e.scrollWidth > e.clientWidth + 1) \
                     .slice(0, 5).map(e => e.tagName + '.' + e.className);",
                vec![json!(width)],
            )
            .await;
        let viewport = self.js("return window.innerWidth", vec![]).await;
        assert_eq!(
            viewport,
            json!(width),
            "{}: {step}: the viewport is wider than the screen; too wide: {wider}",
            self.test
        );
        let wide = self
            .js("return document.documentElement.scrollWidth", vec![])
            .await;
        assert!(
            wide.as_u64().is_some_and(|w| w <= u64::from(width)),
            "{}: {step} is {wide} px wide, more than {width}; too wide: {wider}",
            self.test
        );
    }

    async fn sign_in(&self, app: &TestApp, token: &str) {
        self.goto(app, "/console/sign-in").await;
        self.fill("Token", token).await;
        self.press("Sign in").await;
        let start = Instant::now();
        while self.path().await != "/console/queue" {
            if start.elapsed() > Duration::from_secs(5) {
                self.shot("sign-in-failed").await;
                panic!(
                    "{}: signing in ended on {}: {}",
                    self.test,
                    self.path().await,
                    self.text("main").await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn close(self) {
        self.client.close().await.expect("close the browser");
    }
}

/// `target/browser-screenshots/`.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .join("browser-screenshots")
}

const BODY: &str = "The Senate met on Tuesday. \
                    Some 5,200 U.S. troops remain in the country, the ministry said. \
                    The vote passed 70 to 30.";
const SENTENCE: &str = "Some 5,200 U.S. troops remain in the country, the ministry said.";

/// Selects `text` inside the story's body, as a mouse drag would.
const SELECT: &str = r#"
    const [want] = arguments;
    const body = document.querySelector(".story-body");
    const walk = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
    const nodes = [];
    let all = "";
    while (walk.nextNode()) {
        nodes.push([walk.currentNode, all.length]);
        all += walk.currentNode.data;
    }
    const start = all.indexOf(want);
    if (start < 0) { return null; }
    const at = (pos) => {
        for (const [node, from] of nodes) {
            if (pos <= from + node.data.length) { return [node, pos - from]; }
        }
    };
    const range = document.createRange();
    range.setStart(...at(start));
    range.setEnd(...at(start + want.length));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    return sel.toString();
"#;

#[tokio::test]
async fn the_newsroom_story_in_a_browser() {
    let Some((driver, chromium)) = programs() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "newsroom";
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let rita = app.token("rita", "reader").await;
    let driver = Driver::start(&driver, chromium).await;

    // Editor A signs in and registers a story with a body through "New story".
    let a = driver.browser(test, 1280, 900).await;
    a.goto(&app, "/console").await;
    a.shot("sign-in").await;
    a.sign_in(&app, &ann).await;
    a.shot("a-queue").await;
    a.client
        .find(Locator::LinkText("Stories"))
        .await
        .expect("Stories in the navigation")
        .click()
        .await
        .expect("open Stories");
    assert_eq!(a.path().await, "/console/stories");
    a.shot("stories").await;
    a.fill("Title", "Troops stay").await;
    a.fill("Publisher", "Example Times").await;
    a.fill("Published at", "2020-01-06").await;
    a.fill("Body", BODY).await;
    a.press("Save story").await;
    let story_path = a.path().await;
    let story_id = story_path
        .strip_prefix("/console/stories/")
        .unwrap_or_else(|| panic!("not on the story's page: {story_path}"))
        .to_owned();
    // It is listed; opening it from the list shows it.
    a.goto(&app, "/console/stories").await;
    a.client
        .find(Locator::LinkText("Troops stay"))
        .await
        .expect("the story listed")
        .click()
        .await
        .expect("open the story");
    assert_eq!(a.path().await, story_path);
    assert_eq!(a.text("main h1").await, "Troops stay");
    assert_eq!(a.text(".story-body").await, BODY);
    a.shot("story").await;

    // A selects a sentence of the body and presses "New claim": the claim
    // form opens with the sentence as its quote.
    let selected = a.js(SELECT, vec![json!(SENTENCE)]).await;
    assert_eq!(selected, json!(SENTENCE));
    a.shot("story-selected").await;
    a.client
        .find(Locator::Id("new-claim"))
        .await
        .expect("a New claim button")
        .click()
        .await
        .expect("press New claim");
    a.wait_until(
        Duration::from_secs(5),
        "the claim form",
        "return location.pathname.endsWith('/claims/new')",
    )
    .await;
    let url = a.client.current_url().await.expect("url");
    assert_eq!(
        url.path(),
        format!("/console/stories/{story_id}/claims/new")
    );
    let quote: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "quote")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(quote, [SENTENCE], "{url}");
    a.shot("claim-form").await;
    assert_eq!(a.text("main h1").await, "New claim");
    assert_eq!(a.value_of("Quote").await, SENTENCE);

    // Editor B, in a browser of their own, has the Queue open.
    let b = driver.browser(test, 1280, 900).await;
    b.sign_in(&app, &bob).await;
    b.js("window.notReloaded = true; return true", vec![]).await;
    b.wait_until(
        Duration::from_secs(5),
        "the Queue's live stream",
        "const s = document.getElementById('queue-live'); \
         return !!s && !s.hidden && s.textContent.startsWith('Live');",
    )
    .await;
    assert!(b.text("#queue-list").await.contains("Nothing is waiting"));
    b.shot("b-queue-empty").await;

    // A fills in the claim and saves it; its page opens.
    a.fill("Subject", "us-troops-in-country").await;
    a.fill("Property", "count").await;
    a.choose("Value kind", "quantity").await;
    a.fill("Value", "5200").await;
    a.fill("Unit", "soldier").await;
    a.fill("Valid at", "2020-01").await;
    a.fill("Attributed to", "the ministry").await;
    a.shot("claim-form-filled").await;
    a.press("Save claim").await;
    // It appears in B's Queue within 2 s, without a reload.
    let took = b
        .wait_until(
            Duration::from_secs(2),
            "A's claim in B's Queue",
            "return document.getElementById('queue-list').textContent\
                 .includes('us-troops-in-country');",
        )
        .await;
    eprintln!("{test}: the claim showed in B's Queue after {took:?}");
    assert_eq!(
        b.js("return window.notReloaded === true", vec![]).await,
        json!(true),
        "the Queue reloaded instead of updating itself"
    );
    assert!(b.text("#queue-list").await.contains("Troops stay"));
    assert!(b.text("#queue-list").await.contains(SENTENCE));
    b.shot("b-queue-live").await;

    let claim_path = a.path().await;
    let claim_id = claim_path
        .strip_prefix("/console/claims/")
        .unwrap_or_else(|| panic!("not on the claim's page: {claim_path}"))
        .to_owned();
    assert_eq!(a.text("main h1").await, "us-troops-in-country — count");
    assert_eq!(a.text("dd.status").await, "pending");
    let main = a.text("main").await;
    for shown in ["5200 soldier", "2020-01", "the ministry", SENTENCE] {
        assert!(
            main.contains(shown),
            "{shown:?} not on the claim's page: {main}"
        );
    }
    let (status, _, claim) = app.get_json(&format!("/v1/claims/{claim_id}"), &ann).await;
    assert_eq!(status, 200, "{claim}");
    assert_eq!(claim["asserted_by"], "ann", "{claim}");
    assert_eq!(claim["quote"], SENTENCE, "{claim}");
    assert_eq!(claim["value"]["amount"], "5200", "{claim}");
    a.shot("a-claim").await;

    // A may not confirm A's own claim: no "Confirm" button, and a confirm
    // forged with the page's own token and version is refused in words
    // and writes nothing.
    let buttons = a.buttons().await;
    assert!(!buttons.iter().any(|b| b == "Confirm"), "{buttons:?}");
    for b in ["Dispute", "Retract", "Amend", "Add evidence"] {
        assert!(buttons.iter().any(|x| x == b), "no {b:?} in {buttons:?}");
    }
    let before = app.count_events().await;
    a.js(
        "const [action] = arguments; \
         const from = document.querySelector('form.action'); \
         const forged = document.createElement('form'); \
         forged.method = 'post'; \
         forged.action = action; \
         for (const name of ['csrf', 'idempotency_key', 'version']) { \
             const i = document.createElement('input'); \
             i.type = 'hidden'; \
             i.name = name; \
             i.value = from.elements[name].value; \
             forged.append(i); \
         } \
         document.body.append(forged); \
         forged.submit(); \
         return true;",
        vec![json!(format!("{claim_path}/confirm"))],
    )
    .await;
    a.wait_until(
        Duration::from_secs(5),
        "the forged confirm's answer",
        "return location.pathname.endsWith('/confirm') \
             && document.readyState === 'complete';",
    )
    .await;
    let refused = a.text("main").await;
    assert!(
        refused.contains("The editor who asserted a claim cannot confirm it. Nothing was saved."),
        "{refused}"
    );
    let buttons = a.buttons().await;
    assert!(!buttons.iter().any(|b| b == "Confirm"), "{buttons:?}");
    a.shot("a-forged-confirm").await;
    assert_eq!(app.count_events().await, before, "a forged confirm wrote");
    let (_, _, claim) = app.get_json(&format!("/v1/claims/{claim_id}"), &ann).await;
    assert_eq!(claim["status"], "pending", "{claim}");
    assert_eq!(claim["confirmations"], json!([]), "{claim}");

    // B opens the claim from the Queue and presses "Confirm": it is verified.
    b.follow("us-troops-in-country — count").await;
    assert_eq!(b.path().await, claim_path);
    assert_eq!(b.text("dd.status").await, "pending");
    b.shot("b-claim").await;
    b.press("Confirm").await;
    assert_eq!(b.path().await, claim_path);
    assert_eq!(b.text("dd.status").await, "verified");
    assert!(b.text("main").await.contains("bob at "));
    assert!(
        !b.buttons().await.iter().any(|x| x == "Confirm"),
        "confirmed once"
    );
    b.shot("b-confirmed").await;

    // Its fact (the claim's "Fact" link) is verified, with a timeline and
    // "As of"; it shows once the read side has caught up.
    b.follow("everything claimed about").await;
    let fact_path = b.path().await;
    assert!(fact_path.starts_with("/console/facts/"), "{fact_path}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.text("dd.status").await != "verified" {
        assert!(
            Instant::now() < deadline,
            "the fact is not verified: {}",
            b.text("main").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.goto(&app, &fact_path).await;
    }
    assert_eq!(b.text("main h1").await, "us-troops-in-country — count");
    let h2: Vec<String> = serde_json::from_value(
        b.js(
            "return [...document.querySelectorAll('main h2')].map(e => e.textContent);",
            vec![],
        )
        .await,
    )
    .expect("headings");
    assert!(h2.iter().any(|h| h == "Timeline"), "{h2:?}");
    let timeline = b.text("ol.timeline").await;
    assert!(timeline.contains("verified"), "{timeline}");
    assert!(timeline.contains("5200 soldier"), "{timeline}");
    assert!(b.field("As of").await.is_displayed().await.expect("shown"));
    b.shot("fact").await;

    // A stale confirm: B opens another claim of A's, A disputes it
    // meanwhile, then B presses "Confirm": refused, said so, nothing written.
    let (status, _, other) = app
        .post_json(
            "/v1/claims",
            &ann,
            &json!({"story_id": story_id, "subject": "senate-vote",
                    "property": "outcome",
                    "value": {"kind": "outcome", "outcome": "passed"},
                    "quote": "The vote passed 70 to 30."}),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    let other_id = other["id"].as_str().expect("id");
    let other_path = format!("/console/claims/{other_id}");
    b.goto(&app, &other_path).await;
    assert_eq!(b.text("dd.status").await, "pending");
    let (status, _, disputed) = app
        .post_json(
            &format!("/v1/claims/{other_id}/disputes"),
            &ann,
            &json!({"reason": "the clerk's count differs"}),
        )
        .await;
    assert_eq!(status, 200, "{disputed}");
    let before = app.count_events().await;
    b.press("Confirm").await;
    let stale = b.text("main").await;
    assert!(stale.contains("changed since you opened it"), "{stale}");
    assert_eq!(b.text("dd.status").await, "disputed");
    assert!(stale.contains("the clerk's count differs"), "{stale}");
    b.shot("b-stale-confirm").await;
    assert_eq!(app.count_events().await, before, "a stale confirm wrote");
    let (_, _, other) = app.get_json(&format!("/v1/claims/{other_id}"), &bob).await;
    assert_eq!(other["confirmations"], json!([]), "{other}");

    // The story's page now marks the quote.
    a.goto(&app, &story_path).await;
    assert_eq!(a.text(".story-body mark").await, SENTENCE);
    a.shot("story-marked").await;

    // A reader sees no "New story" form and no "New claim".
    let r = driver.browser(test, 1280, 900).await;
    r.sign_in(&app, &rita).await;
    r.goto(&app, "/console/stories").await;
    assert!(!r.text("main").await.contains("New story"));
    assert!(
        r.client
            .find_all(Locator::Css("form[action='/console/stories']"))
            .await
            .expect("find")
            .is_empty()
    );
    r.shot("reader-stories").await;
    r.goto(&app, &story_path).await;
    assert!(
        r.client
            .find_all(Locator::Id("new-claim"))
            .await
            .expect("find")
            .is_empty()
    );
    r.shot("reader-story").await;
    // ... and a claim's page with no write buttons and no forms.
    r.goto(&app, &claim_path).await;
    assert_eq!(r.text("dd.status").await, "verified");
    let buttons = r.buttons().await;
    assert!(buttons.is_empty(), "a reader is offered {buttons:?}");
    assert!(
        r.client
            .find_all(Locator::Css("main form[method=post]"))
            .await
            .expect("find")
            .is_empty()
    );
    r.shot("reader-claim").await;
    r.close().await;

    // "Sign out" ends A's session: the Queue sends A to sign in.
    a.press("Sign out").await;
    assert_eq!(a.path().await, "/console/sign-in");
    a.goto(&app, "/console/queue").await;
    assert_eq!(a.path().await, "/console/sign-in");
    a.shot("signed-out").await;
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn the_keyboard_alone_signs_in() {
    let Some((driver, chromium)) = programs() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "keyboard";
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let driver = Driver::start(&driver, chromium).await;
    let k = driver.browser(test, 1280, 900).await;
    k.goto(&app, "/console/sign-in").await;
    // From the top of the page, as if nothing had the focus yet.
    k.js("document.activeElement.blur(); return true", vec![])
        .await;
    let mut tabs = 0;
    while k.js("return document.activeElement.id", vec![]).await != json!("token") {
        assert!(tabs < 5, "Tab never reaches the Token field");
        k.key(Key::Tab).await;
        tabs += 1;
    }
    k.shot("token-focused").await;
    k.client
        .active_element()
        .await
        .expect("focus")
        .send_keys(&ann)
        .await
        .expect("type the token");
    k.key(Key::Enter).await;
    k.wait_until(
        Duration::from_secs(5),
        "the Queue",
        "return location.pathname === '/console/queue'",
    )
    .await;
    assert!(k.text("header .who").await.contains("Signed in as ann"));
    // The skip link comes first and takes the keyboard to the content.
    k.js("document.activeElement.blur(); return true", vec![])
        .await;
    k.key(Key::Tab).await;
    assert_eq!(
        k.js("return document.activeElement.textContent", vec![])
            .await,
        json!("Skip to content")
    );
    k.shot("skip-link").await;
    k.close().await;
}

#[tokio::test]
async fn a_375_pixel_screen_needs_no_sideways_scrolling() {
    let Some((driver, chromium)) = programs() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let test = "narrow";
    let app = TestApp::start().await;
    let ann = app.token("ann-with-a-rather-long-name", "editor").await;
    let bob = app.token("bob", "editor").await;
    let driver = Driver::start(&driver, chromium).await;
    // A story with long unbroken words and a claim for the Queue to show.
    let long = "https://example.com/a/very/long/address/without/any/place/to/break/it";
    let (st, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": format!("A title with {long}"), "publisher": "Example Times",
                    "published_at": "2020-01-06", "url": long,
                    "body": format!("{BODY} See {long} for more.")}),
        )
        .await;
    assert_eq!(st, 201, "{story}");
    let story_path = format!("/console/stories/{}", story["id"].as_str().expect("id"));
    let (st, _, claim) = app
        .post_json(
            "/v1/claims",
            &ann,
            &json!({"story_id": story["id"], "subject": "us-troops-in-country",
                    "property": "count",
                    "value": {"kind": "quantity", "amount": "5200", "unit": "soldier"},
                    "quote": SENTENCE}),
        )
        .await;
    assert_eq!(st, 201, "{claim}");
    let position = claim["position"].as_i64().expect("position");
    app.get_json(&format!("/v1/claims?wait_for={position}"), &ann)
        .await;

    let n = driver.browser(test, 375, 800).await;
    n.goto(&app, "/console/sign-in").await;
    n.fits(375, "sign-in").await;
    n.sign_in(&app, &bob).await;
    n.fits(375, "queue").await;
    // Every navigation link is on the screen.
    for name in ["Queue", "Stories", "Facts", "Sign out"] {
        let inside = n
            .js(
                "const [name] = arguments; \
                 const el = [...document.querySelectorAll('header a, header button')] \
                     .find(e => e.textContent.trim() === name); \
                 if (!el) { return false; } \
                 const r = el.getBoundingClientRect(); \
                 return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth;",
                vec![json!(name)],
            )
            .await;
        assert_eq!(inside, json!(true), "{name} is not on a 375 px screen");
    }
    n.goto(&app, "/console/stories").await;
    n.fits(375, "stories").await;
    // The "New story" form's fields fit too.
    let widest = n
        .js(
            "return Math.max(...[...document.querySelectorAll('form.stacked input, \
             form.stacked textarea, form.stacked button')] \
             .map(e => e.getBoundingClientRect().right));",
            vec![],
        )
        .await;
    assert!(
        widest.as_f64().is_some_and(|w| w <= 375.0),
        "the New story form reaches {widest} px"
    );
    n.js(
        "document.querySelector('textarea[name=body]').scrollIntoView(); return true",
        vec![],
    )
    .await;
    n.shot("stories-form").await;
    n.goto(&app, &story_path).await;
    n.fits(375, "story").await;
    // The claim form, with a field for every optional part of a value.
    n.goto(&app, &format!("{story_path}/claims/new")).await;
    n.fits(375, "claim-form").await;
    let claim_path = format!("/console/claims/{}", claim["id"].as_str().expect("id"));
    n.goto(&app, &claim_path).await;
    n.fits(375, "claim").await;
    n.close().await;
}

#[tokio::test]
async fn an_erased_claim_and_story_say_so_in_the_console() {
    let Some((driver, chromium)) = programs() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let root = app.token("root", "admin").await;
    let (st, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "Troops", "publisher": "Example Times",
                    "published_at": "2020-01-06", "body": BODY}),
        )
        .await;
    assert_eq!(st, 201, "{story}");
    let (st, _, claim) = app
        .post_json(
            "/v1/claims",
            &ann,
            &json!({"story_id": story["id"], "subject": "us troops", "property": "count",
                    "value": {"kind": "quantity", "amount": "5200", "unit": "soldier"},
                    "quote": SENTENCE, "attributed_to": "a named source"}),
        )
        .await;
    assert_eq!(st, 201, "{claim}");
    let mut last = 0;
    for body in [
        json!({"claim_id": claim["id"], "fields": ["quote", "attributed_to"], "reason": "asked"}),
        json!({"story_id": story["id"], "fields": ["body"], "reason": "asked"}),
    ] {
        let (st, _, r) = app.post_json("/v1/erasures", &root, &body).await;
        assert_eq!(st, 200, "{r}");
        last = r["position"].as_i64().expect("position");
    }
    app.get_json(&format!("/v1/claims?wait_for={last}"), &ann)
        .await;

    let driver = Driver::start(&driver, chromium).await;
    let b = driver.browser("erased", 1280, 900).await;
    b.goto(&app, "/console/sign-in").await;
    b.sign_in(&app, &ann).await;
    b.goto(
        &app,
        &format!("/console/claims/{}", claim["id"].as_str().expect("id")),
    )
    .await;
    let fields = b.text("dl.fields").await;
    assert!(fields.contains("Quote\nerased"), "{fields}");
    assert!(fields.contains("Attributed to\nerased"), "{fields}");
    assert!(!fields.contains("a named source"), "{fields}");
    b.shot("claim").await;
    b.goto(
        &app,
        &format!("/console/stories/{}", story["id"].as_str().expect("id")),
    )
    .await;
    assert!(
        b.text("main")
            .await
            .contains("This story's body was erased.")
    );
    b.shot("story").await;
    b.close().await;
    // The same pages on a 375-pixel screen.
    let n = driver.browser("erased-narrow", 375, 800).await;
    n.goto(&app, "/console/sign-in").await;
    n.sign_in(&app, &ann).await;
    for (step, path) in [
        (
            "claim",
            format!("/console/claims/{}", claim["id"].as_str().expect("id")),
        ),
        (
            "story",
            format!("/console/stories/{}", story["id"].as_str().expect("id")),
        ),
    ] {
        n.goto(&app, &path).await;
        n.fits(375, step).await;
    }
    n.close().await;
}
