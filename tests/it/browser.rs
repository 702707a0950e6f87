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
//! Steps that wait for the claim page slice (the claim form, "Confirm", the
//! fact page) are marked `CLAIM PAGE SLICE:` below; until it lands, the
//! claim is asserted through the API and the test stops at the claim form's
//! URL.

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

    /// The text of the first element `css` finds.
    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.test))
            .text()
            .await
            .expect("text")
    }

    /// The form field whose visible label starts with `label`.
    async fn field(&self, label: &str) -> fantoccini::elements::Element {
        let xpath = format!(
            "//label[starts-with(normalize-space(.), '{label}')]\
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

    /// Presses the button that says `words`.
    async fn press(&self, words: &str) {
        let xpath = format!("//button[normalize-space(.) = '{words}']");
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {words:?}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("press {words:?}: {e}"));
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
            if self.js(script, vec![]).await == json!(true) {
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
    // CLAIM PAGE SLICE: fill "Subject", "Property", "Value kind", "Value",
    // "Unit" here, check "Quote" holds SENTENCE, press the form's button,
    // and take the claim's id from the claim page it lands on; then A's
    // claim page has no "Confirm" button, and a forged confirm POST shows
    // the 403 in words. Until then the claim is asserted through the API,
    // below, once B is watching.

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

    // A asserts a claim quoting the sentence; it appears in B's Queue
    // within 2 s, without a reload.
    let (status, _, claim) = app
        .post_json(
            "/v1/claims",
            &ann,
            &json!({"story_id": story_id, "subject": "us-troops-in-country",
                    "property": "count",
                    "value": {"kind": "quantity", "amount": "5200", "unit": "soldier"},
                    "valid_at": "2020-01", "quote": SENTENCE}),
        )
        .await;
    assert_eq!(status, 201, "{claim}");
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
    // CLAIM PAGE SLICE: B opens the claim from the Queue and presses
    // "Confirm"; the claim says "verified"; the fact page ("Facts", search
    // by subject and property) shows "verified" and the "Timeline"; a
    // confirmation from a page opened before another change says "changed
    // since you opened it".

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
    // CLAIM PAGE SLICE: the reader's claim page shows no write buttons.
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
    n.close().await;
}
