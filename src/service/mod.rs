//! Application services: load a stream, fold it, let the domain decide,
//! append the result with its expected version and idempotency key.
//! Knows nothing of HTTP; the API maps its errors to status codes.

pub mod checkpoints;
pub mod claim_review;
mod claims;
mod erasures;
pub mod fact_cache;
pub mod fact_changes;
pub mod proof_cache;
pub mod read_route;
pub mod reads;
pub(crate) mod stories;
pub mod view;

use serde_json::Value;
use thiserror::Error;
use uuid::Uuid;

use crate::domain::error::{DomainError, FieldError};
use crate::domain::principal::Actor;
use crate::store::{
    AppendReceipt, EventStore, Metadata, RecordedEvent, RequestFingerprint, StoreError,
    StoredResponse, idempotency, with_receipt,
};

pub use claims::NewClaim;
pub use stories::NewStory;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the resource is at version {current}; If-Match asked for another")]
    PreconditionFailed { current: u64 },
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("a story with this url is already registered: {existing}")]
    DuplicateStory { existing: Uuid },
    #[error("the write kept conflicting with concurrent writes; retry")]
    Contended,
    #[error("the projections have not reached position {position} yet")]
    NotCaughtUp { position: i64 },
    /// `wait_for` named a position no write ever returned.
    #[error("position {position} is beyond the log's head {head}")]
    BeyondHead { position: i64, head: i64 },
    #[error("a stored event could not be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DomainError> for ServiceError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Conflict(m) => ServiceError::Conflict(m),
            DomainError::Forbidden(m) => ServiceError::Forbidden(m),
            DomainError::Invalid(f) => ServiceError::Invalid(f),
        }
    }
}

/// Settings the write rules depend on.
#[derive(Debug, Clone)]
pub struct Rules {
    pub required_confirmations: u32,
}

/// Everything about a write request that is not its body.
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub actor: Actor,
    pub correlation_id: Uuid,
    /// The Idempotency-Key header, with what identifies the request; an
    /// unusable key is refused (422) at the idempotency step, after the
    /// resource and field checks, as the contract orders them.
    pub idempotency: Option<Result<RequestFingerprint, FieldError>>,
    /// What an If-Match header asked for; checked after the idempotency step.
    pub if_match: Option<IfMatch>,
}

/// An `If-Match` precondition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any existing version.
    Any,
    /// `"3"`: exactly this version.
    Version(u64),
    /// A value no version can match (412).
    Unmatchable,
}

impl WriteContext {
    fn metadata(&self) -> Metadata {
        Metadata {
            actor: self.actor.name.clone(),
            correlation_id: Some(self.correlation_id),
            causation_id: None,
            idempotency_key: self.fingerprint().map(|f| f.key.clone()),
        }
    }

    fn fingerprint(&self) -> Option<&RequestFingerprint> {
        self.idempotency.as_ref().and_then(|r| r.as_ref().ok())
    }

    /// A stored response for this very request, when it was already made.
    async fn replay(&self, store: &EventStore) -> Result<Option<StoredResponse>, ServiceError> {
        let f = match &self.idempotency {
            None => return Ok(None),
            Some(Err(e)) => return Err(ServiceError::Invalid(e.clone())),
            Some(Ok(f)) => f,
        };
        match idempotency::lookup(store.pool(), f).await {
            Ok(found) => Ok(found),
            Err(StoreError::IdempotencyKeyReused { .. }) => Err(ServiceError::IdempotencyKeyReused),
            Err(e) => Err(e.into()),
        }
    }

    fn check_if_match(&self, current: u64) -> Result<(), ServiceError> {
        match self.if_match {
            Some(IfMatch::Version(v)) if v != current => {
                Err(ServiceError::PreconditionFailed { current })
            }
            Some(IfMatch::Unmatchable) => Err(ServiceError::PreconditionFailed { current }),
            _ => Ok(()),
        }
    }

    /// The idempotency claim to store with a write (the key is valid by now:
    /// `replay` refused an unusable one).
    fn claim(
        &self,
        effect: Effect,
        response: &crate::store::ResponseBuilder,
    ) -> Option<crate::store::IdempotencyClaim> {
        self.fingerprint().map(|f| crate::store::IdempotencyClaim {
            fingerprint: f.clone(),
            status: effect.stored(),
            response: response.clone(),
        })
    }
}

/// What a write did, in the service's words; `api` says it in HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A new story or claim.
    Created,
    /// An existing claim changed.
    Done,
}

impl Effect {
    /// The status kept with an idempotency key: the stored form of the
    /// first response, which a replay returns as it was.
    fn stored(self) -> u16 {
        match self {
            Effect::Created => 201,
            Effect::Done => 200,
        }
    }

    fn from_stored(status: u16) -> Effect {
        if status == 201 {
            Effect::Created
        } else {
            Effect::Done
        }
    }
}

/// A write's result: what it did, to which resource, at which version, and
/// the body to answer with (the same body a replay returns).
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub effect: Effect,
    /// The story or claim the write created or addressed.
    pub id: Uuid,
    /// Its stream's version after the write.
    pub version: u64,
    pub body: Value,
    /// A repeat of an earlier write with the same idempotency key.
    pub replayed: bool,
}

impl WriteOutcome {
    fn appended(effect: Effect, id: Uuid, body: Value, receipt: &AppendReceipt) -> Self {
        WriteOutcome {
            effect,
            id,
            version: receipt.streams.first().map_or(0, |(_, v)| *v),
            body: with_receipt(body, receipt),
            replayed: false,
        }
    }

    /// The first response to an idempotent write, as stored with its key;
    /// its id and version are read back from the stored body (written by
    /// [`WriteOutcome::appended`]'s caller, so they are always there).
    fn replay(stored: StoredResponse) -> Result<Self, ServiceError> {
        let id = stored
            .body
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        let version = stored.body.get("version").and_then(Value::as_u64);
        let (Some(id), Some(version)) = (id, version) else {
            return Err(ServiceError::Corrupt(
                "a stored idempotent response lacks its id or version".into(),
            ));
        };
        Ok(WriteOutcome {
            effect: Effect::from_stored(stored.status),
            id,
            version,
            body: stored.body,
            replayed: true,
        })
    }
}

/// How often a write without If-Match re-reads and retries after losing a
/// race for its stream's version.
const MAX_ATTEMPTS: usize = 8;

#[derive(Clone)]
pub struct Services {
    store: EventStore,
    rules: Rules,
    /// Stories never change after registration, so they are cached; an
    /// erasure of a body is the one change, which every process follows.
    stories: std::sync::Arc<std::sync::Mutex<stories::StoryCache>>,
    /// Started with the story cache's first fill (`erasures`).
    erasure_follower: std::sync::Arc<std::sync::Once>,
    /// Current fact documents (`fact_cache`); `None` when disabled.
    facts: Option<fact_cache::FactCache>,
    /// How the chain verifier runs (for when a full pass comes next).
    verifier: crate::store::integrity::VerifierConfig,
    /// This process's checkpoint signer, when it runs one.
    signer: Option<checkpoints::SignerStatus>,
    /// Tiles and the latest checkpoint for the proof endpoints.
    proofs: proof_cache::ProofCache,
    /// Streaming standbys reads may go to (`read_route`).
    standbys: Option<crate::db::Standbys>,
    /// The standby this handle reads from: set only on the handles
    /// `Services::route` gives out for one read, never on the one writes use.
    reader: Option<crate::db::Standby>,
}

impl Services {
    /// Services without a fact document cache.
    pub fn new(store: EventStore, rules: Rules) -> Self {
        Services {
            store,
            rules,
            stories: Default::default(),
            erasure_follower: std::sync::Arc::new(std::sync::Once::new()),
            facts: None,
            verifier: Default::default(),
            signer: None,
            proofs: Default::default(),
            standbys: None,
            reader: None,
        }
    }

    /// The same, reporting this process's checkpoint signer at `/readyz`.
    pub fn with_signer(mut self, status: checkpoints::SignerStatus) -> Self {
        self.signer = Some(status);
        self
    }

    /// The proof endpoints' cache of tiles and the latest checkpoint.
    pub fn proofs(&self) -> &proof_cache::ProofCache {
        &self.proofs
    }

    /// How far checkpoints follow the tree (`/readyz`, `/metrics`).
    pub async fn signing_state(&self) -> Result<checkpoints::SigningState, ServiceError> {
        checkpoints::signing_state(self.store.pool(), self.signer.as_ref()).await
    }

    /// The same, reporting full verification passes as `config` schedules
    /// them.
    pub fn with_verifier(mut self, config: crate::store::integrity::VerifierConfig) -> Self {
        self.verifier = config;
        self
    }

    pub fn verifier(&self) -> &crate::store::integrity::VerifierConfig {
        &self.verifier
    }

    /// The same, serving current fact documents through a cache of this
    /// size (none when `limits` disable it). Needs a Tokio runtime.
    pub fn with_fact_cache(mut self, limits: fact_cache::FactCacheLimits) -> Self {
        self.facts = fact_cache::FactCache::start(&self.store, limits);
        self
    }

    /// Proof tiles kept in memory up to `bytes` (see `proof_cache`).
    pub fn with_proof_cache(mut self, bytes: usize) -> Self {
        self.proofs = proof_cache::ProofCache::with_budget(bytes);
        self
    }

    /// The fact document cache, when there is one.
    pub fn fact_cache(&self) -> Option<&fact_cache::FactCache> {
        self.facts.as_ref()
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Where this handle's reads go: its standby, else the primary. Writes,
    /// and the reads that decide them, use `store.pool()` (the primary) or
    /// the base handle, whose reader is always the primary.
    pub(crate) fn read_pool(&self) -> &sqlx::PgPool {
        self.reader
            .as_ref()
            .map_or(self.store.pool(), crate::db::Standby::pool)
    }

    /// The settings the write rules depend on (for clients that ask the
    /// domain what an actor may do, as the console does).
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Every event of a stream, in order.
    async fn read_whole_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, ServiceError> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map(|e: &RecordedEvent| e.version).unwrap_or(0);
            let page =
                crate::store::read_stream(self.read_pool(), stream, after, crate::store::MAX_PAGE)
                    .await?;
            let done = (page.len() as i64) < crate::store::MAX_PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }
}

/// An event for the log, its erasable fields sealed (`domain::erasable`):
/// every writer builds its events here, so none can leave a personal value
/// in the log's hashed bytes.
pub fn log_event(event_type: &str, data: Value) -> crate::store::NewEvent {
    crate::store::NewEvent::new(event_type, data)
        .sealing(crate::domain::erasable::sealed_paths(event_type))
}
