//! The HTTP server loop: the router behind connection rules that no client,
//! with or without a token, can use to stop the service answering others.
//!
//! - Every connection has a deadline from the moment it is accepted: its
//!   first request's headers within `first_request_timeout`, each later
//!   request's within `idle_timeout` of the previous response (keep-alive),
//!   and a request's headers within `header_read_timeout` of their first
//!   byte (hyper's timer). A connection with a request in flight (an event
//!   stream included) is never idle; the request timeout and the stream
//!   caps bound those.
//! - Open connections are capped in all and per client address. A new
//!   connection over either cap closes the oldest *idle* connection (of
//!   that address, or of all) rather than waiting: sockets that say nothing
//!   cannot crowd out a client that talks. Only when every connection is
//!   busy is the new one refused.
//! - The process raises its open-file limit to the hard limit at start, so
//!   the caps, not the kernel, decide.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// The client's address, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// How the server treats connections.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Time allowed for a request's headers once their first byte arrived.
    pub header_read_timeout: Duration,
    /// Time from accepting a connection to its first request's headers.
    pub first_request_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once (lowered to what the open-file limit allows).
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_connections_per_ip: usize,
    /// How long shutdown waits for open connections (SSE streams included).
    pub drain: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_ip: 1024,
            drain: Duration::from_secs(5),
        }
    }
}

/// File descriptors kept back from the connection cap: the database pool,
/// the listener, logs, the private cluster's files.
const RESERVED_FDS: u64 = 256;

/// Raises the soft open-file limit to the hard one; returns the soft limit
/// now in force (`None` when it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// One open connection, as the registry and its own task see it.
struct Conn {
    id: u64,
    ip: IpAddr,
    /// Requests whose responses have not been sent in full.
    in_flight: AtomicUsize,
    /// Requests begun on it so far.
    requests: AtomicU64,
    /// When a request last began or ended (or the connection was accepted),
    /// in microseconds since the server started.
    last_active: AtomicU64,
    /// Tells the connection's task to close it now.
    kill: Notify,
}

impl Conn {
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }
}

/// Open connections, by id, and how many each address holds.
struct Registry {
    started: Instant,
    limits: ServerLimits,
    state: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    conns: HashMap<u64, Arc<Conn>>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Open {
    /// The idle connection that has been quiet longest, among those `pick`
    /// accepts.
    fn oldest_idle(&self, pick: impl Fn(&Conn) -> bool) -> Option<u64> {
        self.conns
            .values()
            .filter(|c| c.is_idle() && pick(c))
            .min_by_key(|c| (c.last_active.load(Ordering::Relaxed), c.id))
            .map(|c| c.id)
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Conn>> {
        let conn = self.conns.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&conn.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&conn.ip);
            }
        }
        Some(conn)
    }
}

impl Registry {
    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Registers a new connection from `ip`, closing the oldest idle one
    /// over a cap; `None` when over a cap with nothing idle to close.
    fn admit(&self, ip: IpAddr) -> Option<Arc<Conn>> {
        let mut open = self.state.lock().ok()?;
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.limits.max_connections_per_ip {
            let victim = open.oldest_idle(|c| c.ip == ip)?;
            shed(open.remove(victim), "per-address");
        }
        if open.conns.len() >= self.limits.max_connections {
            let victim = open.oldest_idle(|_| true)?;
            shed(open.remove(victim), "server-wide");
        }
        open.next_id += 1;
        let conn = Arc::new(Conn {
            id: open.next_id,
            ip,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_active: AtomicU64::new(self.now_us()),
            kill: Notify::new(),
        });
        open.conns.insert(conn.id, conn.clone());
        *open.per_ip.entry(ip).or_default() += 1;
        Some(conn)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.state.lock() {
            open.remove(id);
        }
    }

    /// Whether `conn` has waited past its deadline for a request.
    fn expired(&self, conn: &Conn) -> bool {
        if !conn.is_idle() {
            return false;
        }
        let allowed = if conn.requests.load(Ordering::Relaxed) == 0 {
            self.limits.first_request_timeout
        } else {
            self.limits.idle_timeout
        };
        let quiet = self
            .now_us()
            .saturating_sub(conn.last_active.load(Ordering::Relaxed));
        quiet > allowed.as_micros() as u64
    }

    fn open(&self) -> usize {
        self.state.lock().map(|o| o.conns.len()).unwrap_or(0)
    }
}

fn shed(conn: Option<Arc<Conn>>, cap: &'static str) {
    if let Some(conn) = conn {
        metrics::counter!("factlog_http_connections_shed_total", "cap" => cap).increment(1);
        conn.kill.notify_one();
    }
}

/// Held while a request is in flight: from the service call until its
/// response body has been sent (or dropped).
struct InFlight {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn begin(conn: Arc<Conn>, registry: Arc<Registry>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.requests.fetch_add(1, Ordering::Relaxed);
        conn.last_active.store(registry.now_us(), Ordering::Relaxed);
        InFlight { conn, registry }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn
            .last_active
            .store(self.registry.now_us(), Ordering::Relaxed);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it is done.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How often a connection looks at its own deadline.
const DEADLINE_CHECK: Duration = Duration::from_millis(250);

pub async fn serve(
    listener: TcpListener,
    app: Router,
    mut limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    if let Some(files) = raise_fd_limit() {
        let allowed = files.saturating_sub(RESERVED_FDS).max(16) as usize;
        if allowed < limits.max_connections {
            tracing::warn!(
                open_file_limit = files,
                connections = allowed,
                "the open-file limit caps connections below the configured number"
            );
            limits.max_connections = allowed;
        }
    }
    let registry = Arc::new(Registry {
        started: Instant::now(),
        limits: limits.clone(),
        state: Mutex::new(Open::default()),
    });
    let (closing_tx, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically out of file descriptors: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(conn) = registry.admit(peer.ip()) else {
            // Every connection is busy: this one goes, unanswered.
            metrics::counter!("factlog_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = {
            let (app, conn, registry) = (app.clone(), conn.clone(), registry.clone());
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let in_flight = InFlight::begin(conn.clone(), registry.clone());
                req.extensions_mut().insert(PeerAddr(peer));
                let app = app.clone();
                async move {
                    let res = app.oneshot(req).await?;
                    Ok::<_, std::convert::Infallible>(res.map(|inner| Tracked {
                        inner,
                        _in_flight: in_flight,
                    }))
                }
            })
        };
        let mut closing = closing_rx.clone();
        let registry = registry.clone();
        let header_read_timeout = limits.header_read_timeout;
        let drain = limits.drain;
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(served);
            let mut check = tokio::time::interval(DEADLINE_CHECK);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = served.as_mut() => break,
                    _ = conn.kill.notified() => break,
                    _ = check.tick() => {
                        if registry.expired(&conn) {
                            break;
                        }
                    }
                    _ = closing.changed() => {
                        served.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(drain, served.as_mut()).await;
                        break;
                    }
                }
            }
            registry.remove(conn.id);
        });
    }
    let _ = closing_tx.send(true);
    // Wait for in-flight requests, but not forever (streams never end).
    let deadline = Instant::now() + limits.drain;
    while registry.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
