//! Where an audit reads the log from: a running server through its public
//! API (what an outside auditor has), or the database directly (the
//! operator's own check). Either way `audit` checks every hash it is given.

use serde::Deserialize;
use thiserror::Error;

use crate::merkle::Hash;
use crate::service::ServiceError;
use crate::service::checkpoints;
use crate::store::{EventStore, RecordedEvent};

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("could not reach the server for {what}: {reason}")]
    Unreachable { what: String, reason: String },
    #[error("the server answered {status} to {what}: {detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("the server's answer to {what} is malformed: {reason}")]
    Malformed { what: String, reason: String },
    #[error("reading {what} from the database: {reason}")]
    Database { what: String, reason: ServiceError },
}

pub enum Source {
    Http(Server),
    Database(EventStore),
}

/// A factlog server's public API.
pub struct Server {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

#[derive(Deserialize)]
struct InclusionBody {
    leaf_hash: String,
    path: Vec<String>,
}

#[derive(Deserialize)]
struct ConsistencyBody {
    path: Vec<String>,
}

#[derive(Deserialize)]
struct EventsBody {
    events: Vec<RecordedEvent>,
}

fn hash(what: &str, text: &str) -> Result<Hash, SourceError> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| <Hash>::try_from(bytes).ok())
        .ok_or_else(|| SourceError::Malformed {
            what: what.to_owned(),
            reason: format!("{text:?} is not a hex SHA-256 hash"),
        })
}

fn hashes(what: &str, texts: &[String]) -> Result<Vec<Hash>, SourceError> {
    texts.iter().map(|t| hash(what, t)).collect()
}

impl Server {
    async fn get(&self, path: &str) -> Result<reqwest::Response, SourceError> {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| SourceError::Unreachable {
            what: path.to_owned(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
            .unwrap_or(body);
        Err(SourceError::Status {
            what: path.to_owned(),
            status: status.as_u16(),
            detail,
        })
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, SourceError> {
        self.get(path)
            .await?
            .json()
            .await
            .map_err(|e| SourceError::Malformed {
                what: path.to_owned(),
                reason: e.to_string(),
            })
    }
}

impl Source {
    /// A server at `base` (`http://host:port`), with a bearer token of any
    /// role (an auditor's for `--events`).
    pub fn http(base: &str, token: Option<String>) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| SourceError::Unreachable {
                what: "a client".into(),
                reason: e.to_string(),
            })?;
        Ok(Source::Http(Server {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }))
    }

    fn database_error(what: &str) -> impl FnOnce(ServiceError) -> SourceError + '_ {
        move |reason| SourceError::Database {
            what: what.to_owned(),
            reason,
        }
    }

    /// The latest signed note.
    pub async fn latest_checkpoint(&self) -> Result<String, SourceError> {
        match self {
            Source::Http(server) => {
                let path = "/v1/checkpoint";
                server
                    .get(path)
                    .await?
                    .text()
                    .await
                    .map_err(|e| SourceError::Malformed {
                        what: path.into(),
                        reason: e.to_string(),
                    })
            }
            Source::Database(store) => Ok(checkpoints::latest(store.pool(), &Default::default())
                .await
                .map_err(Self::database_error("the latest checkpoint"))?
                .note),
        }
    }

    /// The leaf hash of the event at `position` and its audit path in the
    /// tree of `size` leaves.
    pub async fn inclusion(
        &self,
        position: u64,
        size: u64,
    ) -> Result<(Hash, Vec<Hash>), SourceError> {
        let what = format!("/v1/proofs/inclusion?position={position}&tree_size={size}");
        let (leaf, path) = match self {
            Source::Http(server) => {
                let body: InclusionBody = server.get_json(&what).await?;
                (body.leaf_hash, body.path)
            }
            Source::Database(store) => {
                let proof =
                    checkpoints::inclusion(store.pool(), &Default::default(), position, Some(size))
                        .await
                        .map_err(Self::database_error(&what))?;
                (proof.leaf_hash, proof.path)
            }
        };
        Ok((hash(&what, &leaf)?, hashes(&what, &path)?))
    }

    /// The consistency proof from the tree of `from` leaves to that of `to`.
    pub async fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, SourceError> {
        let what = format!("/v1/proofs/consistency?from={from}&to={to}");
        let path = match self {
            Source::Http(server) => server.get_json::<ConsistencyBody>(&what).await?.path,
            Source::Database(store) => {
                checkpoints::consistency(store.pool(), &Default::default(), from, Some(to))
                    .await
                    .map_err(Self::database_error(&what))?
                    .path
            }
        };
        hashes(&what, &path)
    }

    /// Up to `limit` events after `after`, as `/v1/events` shows them.
    pub async fn events(&self, after: u64, limit: u64) -> Result<Vec<RecordedEvent>, SourceError> {
        self.events_undecoded(after, limit).await?.decode()
    }

    /// [`Source::events`] as received: decoding, much of an audit's own
    /// work, can then run on another thread while the next page is fetched.
    pub async fn events_undecoded(&self, after: u64, limit: u64) -> Result<Page, SourceError> {
        let what = format!("/v1/events?after={after}&limit={limit}");
        match self {
            Source::Http(server) => {
                let body = server.get(&what).await?.bytes().await.map_err(|e| {
                    SourceError::Unreachable {
                        what: what.clone(),
                        reason: e.to_string(),
                    }
                })?;
                Ok(Page::Json { what, body })
            }
            Source::Database(store) => Ok(Page::Events(
                store
                    .read_all(after as i64, limit as i64)
                    .await
                    .map_err(|e| SourceError::Database {
                        what,
                        reason: e.into(),
                    })?,
            )),
        }
    }
}

/// A page of events as [`Source::events_undecoded`] fetched it.
pub enum Page {
    /// A `/v1/events` body, and the request it answers.
    Json {
        what: String,
        body: bytes::Bytes,
    },
    Events(Vec<RecordedEvent>),
}

impl Page {
    pub fn decode(self) -> Result<Vec<RecordedEvent>, SourceError> {
        match self {
            Page::Json { what, body } => serde_json::from_slice::<EventsBody>(&body)
                .map(|page| page.events)
                .map_err(|e| SourceError::Malformed {
                    what,
                    reason: e.to_string(),
                }),
            Page::Events(events) => Ok(events),
        }
    }
}
