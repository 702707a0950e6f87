//! The closed-loop load generator's HTTP client: one HTTP/1.1 keep-alive
//! connection per simulated client, one request at a time, on hyper's
//! connection API.
//!
//! The load generator shares the machine with the server and PostgreSQL, so
//! every microsecond it spends per request is taken from what is measured,
//! while pgbench's own client is a few microseconds of C. reqwest (pool,
//! redirect and decompression layers, a task per request) cost about 100 µs
//! of CPU per request here; this client does only what a keep-alive
//! connection needs.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub type Body = Full<Bytes>;

/// A request to `authority` (host:port), authenticated with a bearer token.
pub fn request(
    authority: &str,
    method: Method,
    path: &str,
    token: &str,
    json: Option<Bytes>,
) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, authority)
        .header(AUTHORIZATION, format!("Bearer {token}"));
    let built = match json {
        Some(v) => builder
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(v)),
        None => builder.body(Full::new(Bytes::new())),
    };
    built.expect("a well-formed request")
}

/// What came back: the status (0 for no answer in time), headers and body.
pub struct Answer {
    pub status: u16,
    #[allow(dead_code, reason = "only the console bench reads an answer's headers")]
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One keep-alive connection, opened on first use and again after any
/// failure.
pub struct Conn {
    authority: String,
    timeout: Duration,
    link: Option<Link>,
}

/// The request half of a connection and the future that does its I/O.
///
/// The connection future is polled by the task that sends, alongside each
/// exchange, rather than spawned: a spawned connection task costs two
/// cross-task wake-ups per request (request in, response out), which was a
/// third of this client's CPU.
struct Link {
    sender: SendRequest<Body>,
    io: Pin<Box<Connection<TokioIo<TcpStream>, Body>>>,
}

impl Conn {
    pub fn new(authority: &str, timeout: Duration) -> Conn {
        Conn {
            authority: authority.to_owned(),
            timeout,
            link: None,
        }
    }

    /// The status (0 when no HTTP answer came in time) and the body.
    pub async fn send(&mut self, req: Request<Body>) -> (u16, Bytes) {
        let answer = self.send_full(req).await;
        (answer.status, answer.body)
    }

    /// [`Conn::send`] with the answer's headers too.
    pub async fn send_full(&mut self, req: Request<Body>) -> Answer {
        match tokio::time::timeout(self.timeout, self.exchange(req)).await {
            Ok(Some(answer)) => answer,
            // The connection's state is unknown: the next request opens another.
            Ok(None) | Err(_) => {
                self.link = None;
                Answer {
                    status: 0,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                }
            }
        }
    }

    async fn exchange(&mut self, req: Request<Body>) -> Option<Answer> {
        if self.link.as_ref().is_none_or(|l| l.sender.is_closed()) {
            self.link = Some(connect(&self.authority).await?);
        }
        let Link { sender, io } = self.link.as_mut()?;
        let exchange = async {
            sender.ready().await.ok()?;
            let (parts, body) = sender.send_request(req).await.ok()?.into_parts();
            let body = body.collect().await.ok()?.to_bytes();
            Some(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::select! {
            answer = exchange => answer,
            // The connection ended (closed or failed) before the answer did.
            _ = io.as_mut() => None,
        }
    }
}

async fn connect(authority: &str) -> Option<Link> {
    let stream = TcpStream::connect(authority).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, io) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    Some(Link {
        sender,
        io: Box::pin(io),
    })
}
