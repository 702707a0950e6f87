//! No client, with or without a token, can stop the service answering
//! others by holding connections: each test runs its own server instance.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{AppOptions, TestApp};

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// As many sockets as this process may open for the test, up to `want`:
/// each held socket is two descriptors here (client and server side).
fn sockets(want: usize) -> usize {
    let files = factlog::api::raise_fd_limit().unwrap_or(1024) as usize;
    want.min(files.saturating_sub(512) / 2)
}

async fn healthz_within(app: &TestApp, limit: Duration) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .timeout(limit)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| e.to_string())?;
    client
        .get(app.url("/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

async fn hold(app: &TestApp, n: usize, send: &'static [u8]) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr(app)).await.expect("connect");
        if !send.is_empty() {
            s.write_all(send).await.expect("write");
        }
        held.push(s);
    }
    held
}

#[tokio::test]
async fn two_thousand_silent_sockets_from_one_address_do_not_stop_healthz() {
    // The default rules, as `factlog serve` runs them; on a machine whose
    // open-file limit allows fewer sockets, a per-address cap they exceed.
    let n = sockets(2000);
    assert!(n >= 64, "the test needs more open files than {n} sockets");
    let defaults = factlog::api::ServerLimits::default();
    let app = TestApp::start_with(AppOptions {
        workers: false,
        server: factlog::api::ServerLimits {
            max_connections_per_ip: defaults.max_connections_per_ip.min(n / 2),
            ..defaults
        },
        ..AppOptions::default()
    })
    .await;
    for (what, bytes) in [
        ("nothing", &b""[..]),
        ("the HTTP/2 preface", &b"PRI * HTTP/2.0\r\n"[..]),
    ] {
        let held = hold(&app, n, bytes).await;
        for _ in 0..3 {
            assert_eq!(
                healthz_within(&app, Duration::from_secs(1)).await,
                Ok(200),
                "healthz while {n} sockets sent {what}"
            );
        }
        drop(held);
    }
}

#[tokio::test]
async fn a_connection_must_send_its_first_request_in_time_and_may_idle_only_so_long() {
    let app = TestApp::start_with(AppOptions {
        workers: false,
        server: factlog::api::ServerLimits {
            first_request_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_millis(1500),
            ..factlog::api::ServerLimits::default()
        },
        ..AppOptions::default()
    })
    .await;

    // Silent from the start: closed after the first-request deadline.
    let mut silent = TcpStream::connect(addr(&app)).await.expect("connect");
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0))), "closed, with nothing sent");
    assert!(started.elapsed() < Duration::from_secs(2));

    // A request, then silence: kept for the keep-alive deadline, then closed.
    let mut kept = TcpStream::connect(addr(&app)).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).await.expect("response");
    assert_eq!(&first, b"HTTP/1.1 200");
    let answered = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), kept.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(_))), "closed after idling");
    let idled = answered.elapsed();
    assert!(
        idled >= Duration::from_millis(1200) && idled < Duration::from_secs(3),
        "kept alive for the idle deadline, not less, not much more: {idled:?}"
    );
}

#[tokio::test]
async fn over_the_cap_the_oldest_idle_connection_goes_and_busy_ones_stay() {
    let app = TestApp::start_with(AppOptions {
        server: factlog::api::ServerLimits {
            max_connections_per_ip: 8,
            ..factlog::api::ServerLimits::default()
        },
        ..AppOptions::default()
    })
    .await;
    let auditor = app.token("audrey", "auditor").await;
    let editor = app.token("ann", "editor").await;

    // A live event stream: a request in flight for as long as it lasts.
    let mut stream = app
        .get("/v1/events/stream?after=0", &auditor)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);

    // Eight silent sockets fill the address's cap over and over.
    let mut held = hold(&app, 8, b"").await;
    held.extend(hold(&app, 16, b"").await);
    assert_eq!(healthz_within(&app, Duration::from_secs(1)).await, Ok(200));
    // The oldest silent ones were closed to make room.
    let mut closed = 0;
    for s in held.iter_mut().take(8) {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 8, "the first eight silent sockets were shed");

    // The stream was never idle, so it is still there and still live.
    let (s, _, _) = app
        .post_json(
            "/v1/stories",
            &editor,
            &serde_json::json!({"title": "t", "publisher": "p", "published_at": "2020-01-01"}),
        )
        .await;
    assert_eq!(s, 201);
    let chunk = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let c = stream.chunk().await.expect("chunk").expect("open");
            if String::from_utf8_lossy(&c).contains("StoryRegistered") {
                return;
            }
        }
    })
    .await;
    assert!(chunk.is_ok(), "the stream still delivers");
}
