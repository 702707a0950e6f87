//! The OpenAPI 3.1 description of the HTTP contract, generated with utoipa.
//!
//! Handlers parse their bodies by hand (every refusal names its field), so
//! nothing here is used to parse or render a request: these types exist only
//! to describe the wire shapes. The operations are declared on stub functions
//! in [`operations`] rather than on the handlers, so the description can
//! cover the whole contract, including endpoints whose handlers live
//! elsewhere or are still being written.

use chrono::{DateTime, Utc};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    KnownFormat, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};
use uuid::Uuid;

/// The OpenAPI document served at `/openapi.json`.
pub fn spec() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::described_routes());
    NotNull.modify(&mut doc);
    doc
}

// Patterns (ECMA-262) mirror the checks in `api::input`, so that generated
// clients and fuzzers produce what the server accepts: text fields are
// `^[^\x00]*[^\s\x00][^\x00]*$` (not blank, no U+0000), URLs are absolute
// http(s) with a host and no white space. The derive needs them as literals.

/// The JSON number grammar, as text.
const DECIMAL: &str = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$";
/// `YYYY` or `YYYY-MM`, year 0001-9999 (full dates use `format: date`).
const YEAR_OR_MONTH: &str =
    r"^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})(-(0[1-9]|1[0-2]))?$";

fn string(format: Option<KnownFormat>, pattern: Option<&str>, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(format.map(SchemaFormat::KnownFormat))
        .pattern(pattern)
        .description(Some(description))
        .build()
}

/// An exact decimal: a decimal string, or a JSON number read from its text
/// (never through binary floating point). Responses always use the string.
pub struct Decimal;

impl PartialSchema for Decimal {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(DECIMAL))
                    .max_length(Some(100)),
            )
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .description(Some(
                "An exact decimal: a string such as \"5200\", \"-0.25\" or \"5.2e3\", or a JSON \
                 number. Returned as a string, exactly as sent.",
            ))
            .examples(["5200"])
            .into()
    }
}

impl ToSchema for Decimal {}

/// A point in valid time: `YYYY`, `YYYY-MM`, `YYYY-MM-DD` or an RFC 3339
/// timestamp; precision follows the form.
pub struct ValidTime;

impl PartialSchema for ValidTime {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(string(None, Some(YEAR_OR_MONTH), "a year or a month"))
            .item(string(Some(KnownFormat::Date), None, "a day"))
            .item(string(
                Some(KnownFormat::DateTime),
                None,
                "an RFC 3339 timestamp",
            ))
            .description(Some(
                "When a claim holds in the world: YYYY, YYYY-MM, YYYY-MM-DD or an RFC 3339 \
                 timestamp. Precision follows the form.",
            ))
            .examples(["2020-01-06"])
            .into()
    }
}

impl ToSchema for ValidTime {}

/// A calendar date at the precision written: `YYYY`, `YYYY-MM` or
/// `YYYY-MM-DD`; two dates agree only in the same form.
pub struct CalendarDate;

impl PartialSchema for CalendarDate {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(string(None, Some(YEAR_OR_MONTH), "a year or a month"))
            .item(string(Some(KnownFormat::Date), None, "a day"))
            .examples(["2020-01-06"])
            .into()
    }
}

impl ToSchema for CalendarDate {}

/// A publication time: an RFC 3339 timestamp, or a date (midnight UTC).
pub struct PublishedAt;

impl PartialSchema for PublishedAt {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(string(
                Some(KnownFormat::DateTime),
                None,
                "an RFC 3339 timestamp",
            ))
            .item(string(
                Some(KnownFormat::Date),
                None,
                "a date, taken as midnight UTC",
            ))
            .examples(["2020-01-06T09:30:00Z"])
            .into()
    }
}

impl ToSchema for PublishedAt {}

// --- Values ---

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuantityKind {
    Quantity,
}
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DateKind {
    Date,
}
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Outcome,
}
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Entity,
}
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BooleanKind {
    Boolean,
}
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextKind {
    Text,
}

/// A number of something. Only `amount` (numerically) and `unit` decide
/// whether two quantities agree.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "quantity", "amount": "5200", "unit": "soldier", "approximate": true}))]
pub struct QuantityValue {
    #[schema(inline)]
    pub kind: QuantityKind,
    pub amount: Decimal,
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 1000)]
    pub unit: String,
    /// Default false.
    pub approximate: Option<bool>,
    /// Lower bound; at most `amount`.
    pub lower: Option<Decimal>,
    /// Upper bound; at least `amount`.
    pub upper: Option<Decimal>,
}

/// A calendar date, at the precision written.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "date", "date": "2020-01-06"}))]
pub struct DateValue {
    #[schema(inline)]
    pub kind: DateKind,
    pub date: CalendarDate,
}

/// The result of a vote or decision; only `outcome` decides agreement.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "outcome", "outcome": "passed", "for": 170, "against": 0}))]
pub struct OutcomeValue {
    #[schema(inline)]
    pub kind: OutcomeKind,
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 1000)]
    pub outcome: String,
    #[serde(rename = "for")]
    #[schema(minimum = 0)]
    pub votes_for: Option<u64>,
    #[serde(rename = "against")]
    #[schema(minimum = 0)]
    pub votes_against: Option<u64>,
}

/// A person, organisation or thing. Agreement uses `id` when both sides
/// have one, else `label`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "entity", "label": "Brig. Gen. William Seely", "id": null}))]
pub struct EntityValue {
    #[schema(inline)]
    pub kind: EntityKind,
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 1000)]
    pub label: String,
    /// An external identifier, e.g. a Wikidata id.
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 1000)]
    pub id: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "boolean", "value": true}))]
pub struct BooleanValue {
    #[schema(inline)]
    pub kind: BooleanKind,
    pub value: bool,
}

/// Free text; compared trimmed and case-folded.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "text", "text": "The bill passed."}))]
pub struct TextValue {
    #[schema(inline)]
    pub kind: TextKind,
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 10000)]
    pub text: String,
}

/// A claim's typed value, discriminated by `kind`.
#[derive(ToSchema)]
#[serde(untagged)]
#[schema(as = Value, discriminator(property_name = "kind", mapping(
    ("quantity" = "#/components/schemas/QuantityValue"),
    ("date" = "#/components/schemas/DateValue"),
    ("outcome" = "#/components/schemas/OutcomeValue"),
    ("entity" = "#/components/schemas/EntityValue"),
    ("boolean" = "#/components/schemas/BooleanValue"),
    ("text" = "#/components/schemas/TextValue"),
)))]
pub enum ClaimValue {
    Quantity(QuantityValue),
    Date(DateValue),
    Outcome(OutcomeValue),
    Entity(EntityValue),
    Boolean(BooleanValue),
    Text(TextValue),
}

// --- Request bodies ---

/// Registers a published piece that claims come from.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Troops to stay in Iraq",
    "publisher": "Example Times",
    "published_at": "2020-01-06T09:30:00Z",
    "url": "https://example.com/2020/01/06/troops",
    "body": "Some 5,200 U.S. troops remain in Iraq, officials said."
}))]
pub struct NewStory {
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 1000)]
    pub title: String,
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 500)]
    pub publisher: String,
    pub published_at: PublishedAt,
    /// Unique among stories: registering it again is 409. At most 2,048
    /// characters and 2,600 bytes of UTF-8 (it is indexed; a url in other
    /// scripts than Latin may reach the bytes first): 422 beyond either.
    #[schema(
        pattern = r"^[hH][tT][tT][pP][sS]?://[^/?#\s\x00]+[^\s\x00]*$",
        max_length = 2048
    )]
    pub url: Option<String>,
    /// The full text; a claim's quote must occur in it when it is given.
    #[schema(pattern = r"^[^\x00]*$")]
    pub body: Option<String>,
}

/// Records one assertion found in a story.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "story_id": "0190a6a4-2a1b-7c3d-8e4f-5a6b7c8d9e0f",
    "subject": "U.S. troops in Iraq",
    "property": "troop_count",
    "value": {"kind": "quantity", "amount": "5200", "unit": "soldier", "approximate": true},
    "quote": "Some 5,200 U.S. troops remain in Iraq",
    "valid_at": "2020-01-06"
}))]
pub struct NewClaim {
    /// An existing story (422 otherwise).
    pub story_id: Uuid,
    /// What the claim is about. At most 500 characters, and at most 1,200
    /// bytes of UTF-8 once normalized for matching (NFKC, lower case, white
    /// space folded), as that form is indexed: 422 beyond either.
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 500)]
    pub subject: String,
    /// Which property of the subject. The same limits as `subject`.
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 500)]
    pub property: String,
    pub value: ClaimValue,
    /// The exact words the claim rests on; must occur in the story's body
    /// when it has one (white space folded).
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 10000)]
    pub quote: String,
    /// When it holds; the story's `published_at` when absent.
    pub valid_at: Option<ValidTime>,
    /// Who in the story said it.
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 500)]
    pub attributed_to: Option<String>,
    /// An existing claim this one corrects; it is superseded once this one
    /// is verified.
    pub corrects: Option<Uuid>,
}

/// An empty body counts as `{}`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmationRequest {
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 5000)]
    pub note: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputeRequest {
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 5000)]
    pub reason: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetractionRequest {
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 5000)]
    pub reason: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRequest {
    /// At most 2,048 characters and 2,600 bytes of UTF-8, as a story's.
    #[schema(
        pattern = r"^[hH][tT][tT][pP][sS]?://[^/?#\s\x00]+[^\s\x00]*$",
        max_length = 2048
    )]
    pub url: String,
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 5000)]
    pub note: Option<String>,
}

/// Any of the four fields; `null` clears `valid_at` or `attributed_to`.
/// Clears the claim's confirmations.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct AmendmentRequest {
    #[schema(required = false)]
    pub value: ClaimValue,
    #[schema(
        required = false,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$",
        max_length = 10000
    )]
    pub quote: String,
    pub valid_at: Option<ValidTime>,
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 500)]
    pub attributed_to: Option<String>,
}

// --- Claims and stories ---

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    Pending,
    Verified,
    Disputed,
    Retracted,
    Superseded,
}

#[derive(ToSchema)]
pub struct ConfirmationRecord {
    pub by: String,
    pub at: DateTime<Utc>,
    #[schema(required = false)]
    pub note: String,
}

#[derive(ToSchema)]
pub struct DisputeRecord {
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

#[derive(ToSchema)]
pub struct EvidenceRecord {
    pub by: String,
    pub at: DateTime<Utc>,
    pub url: String,
    #[schema(required = false)]
    pub note: String,
}

#[derive(ToSchema)]
pub struct RetractionRecord {
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// A claim as folded from its own stream.
#[derive(ToSchema)]
pub struct Claim {
    pub id: Uuid,
    pub story_id: Uuid,
    pub subject: String,
    pub property: String,
    /// Deterministic from the normalized subject and property.
    pub fact_id: Uuid,
    pub value: ClaimValue,
    pub quote: String,
    pub valid_at: Option<ValidTime>,
    pub attributed_to: Option<String>,
    pub corrects: Option<Uuid>,
    pub status: ClaimStatus,
    /// The name of the token that asserted it.
    pub asserted_by: String,
    pub asserted_at: DateTime<Utc>,
    /// Who confirmed it in the current verification round.
    pub confirmed_by: Vec<String>,
    pub confirmations: Vec<ConfirmationRecord>,
    pub disputes: Vec<DisputeRecord>,
    pub evidence: Vec<EvidenceRecord>,
    pub retraction: Option<RetractionRecord>,
    pub superseded_by: Option<Uuid>,
    /// The claim stream's version; also its `ETag`.
    #[schema(minimum = 1)]
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

/// What every write adds to the resource it answers with.
#[derive(ToSchema)]
pub struct Receipt {
    /// Global position of the write's last event.
    pub position: i64,
    /// The addressed stream's version after the write.
    #[schema(minimum = 1)]
    pub version: u64,
    /// Chain hash (hex SHA-256) of the write's last event: the client's receipt.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
}

/// A claim as a write leaves it, with the write's receipt.
#[derive(ToSchema)]
pub struct ClaimReceipt {
    #[serde(flatten)]
    pub claim: Claim,
    #[serde(flatten)]
    pub receipt: Receipt,
}

#[derive(ToSchema)]
pub struct StoryClaim {
    pub id: Uuid,
    pub fact_id: Uuid,
    pub status: ClaimStatus,
    pub subject: String,
    pub property: String,
}

#[derive(ToSchema)]
pub struct Story {
    pub id: Uuid,
    pub title: String,
    pub publisher: String,
    pub published_at: DateTime<Utc>,
    pub url: Option<String>,
    pub body: Option<String>,
    pub registered_by: String,
    pub registered_at: DateTime<Utc>,
    #[schema(minimum = 1)]
    pub version: u64,
    /// From projections: see `wait_for`.
    pub claims: Vec<StoryClaim>,
}

#[derive(ToSchema)]
pub struct StoryReceipt {
    #[serde(flatten)]
    pub story: Story,
    #[serde(flatten)]
    pub receipt: Receipt,
}

#[derive(ToSchema)]
pub struct ClaimPage {
    pub items: Vec<Claim>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

// --- Facts ---

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FactStatus {
    Verified,
    Contested,
    Unverified,
}

#[derive(ToSchema)]
pub struct FactClaim {
    pub id: Uuid,
    /// When the claim was recorded; a fact's claims are in this order.
    pub asserted_at: DateTime<Utc>,
    pub value: ClaimValue,
    pub valid_at: Option<ValidTime>,
    pub status: ClaimStatus,
    pub story_id: Uuid,
    pub asserted_by: String,
    pub confirmed_by: Vec<String>,
}

/// One valid time of a fact.
#[derive(ToSchema)]
pub struct TimelineEntry {
    pub valid_at: ValidTime,
    pub status: FactStatus,
    /// Null when contested or unverified.
    pub value: Option<ClaimValue>,
    /// The distinct verified values.
    pub values: Vec<ClaimValue>,
    pub claim_ids: Vec<Uuid>,
}

/// Everything claimed about one (subject, property) pair, along valid time.
#[derive(ToSchema)]
pub struct Fact {
    pub id: Uuid,
    pub subject: String,
    pub property: String,
    /// That of the latest valid time with a verified claim; `unverified`
    /// when there is none.
    pub status: FactStatus,
    /// Null when unverified or contested.
    pub value: Option<ClaimValue>,
    pub valid_at: Option<ValidTime>,
    pub claims: Vec<FactClaim>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(ToSchema)]
pub struct FactPage {
    pub items: Vec<Fact>,
    pub next_cursor: Option<String>,
}

/// One event of one of the fact's claims.
#[derive(ToSchema)]
pub struct HistoryItem {
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    /// The event type, e.g. `ClaimAsserted`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub claim_id: Uuid,
    /// The payload as recorded.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryItem>,
    pub next_cursor: Option<String>,
}

// --- The log ---

/// An immutable, hash-chained record.
#[derive(ToSchema)]
pub struct Event {
    /// Global, strictly increasing; no reader ever skips one.
    pub position: i64,
    /// `story-<uuid>`, `claim-<uuid>` or `principals`.
    pub stream: String,
    #[schema(minimum = 1)]
    pub version: u64,
    /// E.g. `StoryRegistered`, `ClaimAsserted`, `ClaimConfirmed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Database clock; never decreases as position grows.
    pub recorded_at: DateTime<Utc>,
    /// The name of the token that wrote it (`cli` for the command line).
    pub actor: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Who asked and why: `correlation_id`, `idempotency_key`, ... as recorded.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub event_id: Uuid,
    /// Hex SHA-256 chaining this event to the one before it.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
}

#[derive(ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// The last position returned, or `after` on an empty page.
    pub next_after: i64,
}

#[derive(ToSchema)]
pub struct AuditPage {
    pub items: Vec<Event>,
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct ChainHead {
    pub position: i64,
    pub hash: String,
}

#[derive(ToSchema)]
pub struct Integrity {
    /// No link checked failed and no pass of the verifier found a break.
    pub ok: bool,
    /// Events whose links are known to hold: the verified prefix and what
    /// this request re-hashed past it.
    pub checked: i64,
    pub first_bad_position: Option<i64>,
    /// The log's recorded head. Keep it: a later check against it detects a
    /// rewritten or truncated log.
    pub head: ChainHead,
    /// Events past the last one this answer covers (the verifier is behind
    /// by more than a request re-hashes, or the chain is broken).
    pub unverified: i64,
    pub verified: VerifiedPrefix,
    pub full_check: FullCheck,
}

/// What the background verifier has re-hashed, up to where.
#[derive(ToSchema)]
pub struct VerifiedPrefix {
    pub position: i64,
    pub hash: String,
    /// When the prefix last grew.
    pub at: Option<String>,
}

/// The last full pass over the whole log, and the next.
#[derive(ToSchema)]
pub struct FullCheck {
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub checked: Option<i64>,
    pub ok: Option<bool>,
    /// When an auditor last asked for a pass, and who.
    pub requested_at: Option<String>,
    pub requested_by: Option<String>,
    /// A pass was asked for and has not started.
    pub pending: bool,
    /// The earliest start of the next pass.
    pub next_at: Option<String>,
}

#[derive(ToSchema)]
pub struct FullCheckRequested {
    pub full_check: FullCheck,
}

// --- Service ---

#[derive(ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    Ready,
    /// A projection is stuck on an event; writes and the log still work.
    Degraded,
}

#[derive(ToSchema)]
pub struct ProjectionProgress {
    /// The last log position it applied.
    pub position: i64,
    /// How many events it is behind the head.
    pub lag_events: i64,
    /// The event it is stuck on, if any.
    pub failed_position: Option<i64>,
    pub error: Option<String>,
}

#[derive(ToSchema)]
pub struct Ready {
    pub status: Readiness,
    /// The latest log position this process knows of.
    pub head: i64,
    /// Each projection by name (`facts`).
    pub projections: std::collections::BTreeMap<String, ProjectionProgress>,
}

// --- Problems (RFC 9457) ---

/// `application/problem+json`.
#[derive(ToSchema)]
pub struct Problem {
    /// `/problems/<slug>`, stable per kind of problem.
    #[schema(format = "uri-reference", example = "/problems/not-found")]
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

#[derive(ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// 422: the first invalid field (e.g. `value.amount`, or `Idempotency-Key`).
#[derive(ToSchema)]
pub struct ValidationProblem {
    #[serde(flatten)]
    pub problem: Problem,
    pub field: String,
    pub errors: Vec<FieldProblem>,
}

/// 409: the claim's state forbids the transition, or the story's url is
/// already registered (then `existing_story_id` names it).
#[derive(ToSchema)]
pub struct ConflictProblem {
    #[serde(flatten)]
    pub problem: Problem,
    #[schema(required = false)]
    pub existing_story_id: Uuid,
}

/// 412: `If-Match` named another version.
#[derive(ToSchema)]
pub struct PreconditionProblem {
    #[serde(flatten)]
    pub problem: Problem,
    pub current_version: u64,
}

// Response sets many operations share, so each is described once.

/// Every operation that takes a token.
#[derive(IntoResponses)]
pub enum TokenProblems {
    #[response(
        status = 400,
        description = "Malformed: the Authorization header appears more than once, or a body or query string does not parse",
        content_type = "application/problem+json"
    )]
    Malformed(Problem),
    #[response(
        status = 401,
        description = "No token, or an unknown or revoked one",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 429,
        description = "This token has spent its request budget, or this address has presented too many unknown tokens; retry after `Retry-After` seconds",
        content_type = "application/problem+json",
        headers(("Retry-After" = String, description = "Seconds to wait before retrying"))
    )]
    TooManyRequests(Problem),
}

/// Every operation with query parameters.
#[derive(IntoResponses)]
pub enum QueryProblems {
    #[response(
        status = 400,
        description = "The query string is malformed",
        content_type = "application/problem+json"
    )]
    Malformed(Problem),
    #[response(
        status = 422,
        description = "A query parameter is invalid",
        content_type = "application/problem+json"
    )]
    Invalid(ValidationProblem),
}

/// Every operation that reads a JSON body. (Its 422 differs per operation.)
#[derive(IntoResponses)]
pub enum BodyProblems {
    #[response(
        status = 400,
        description = "The body is not valid JSON",
        content_type = "application/problem+json"
    )]
    Malformed(Problem),
    #[response(
        status = 413,
        description = "The body exceeds the limit (default 1 MiB)",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    #[response(
        status = 415,
        description = "The body is not sent as JSON",
        content_type = "application/problem+json"
    )]
    NotJson(Problem),
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `factlog token create --name NAME --role ROLE`. Roles: \
                         reader (reads), editor (reads and writes), auditor (reads, audit, \
                         events, integrity), admin (everything).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Optional parameters and bodies come out of the derive as nullable (they
/// are `Option`s), but a header or query value is never JSON `null`, and an
/// omitted body is not a `null` body: a client generated from a nullable
/// schema would send what the server refuses.
struct NotNull;

impl Modify for NotNull {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                for param in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(param) = param
                        && let Some(schema) = &mut param.schema
                    {
                        strip_null(schema);
                    }
                }
                if let Some(RefOr::T(body)) = &mut op.request_body {
                    for content in body.content.values_mut() {
                        if let RefOr::T(content) = content
                            && let Some(schema) = &mut content.schema
                        {
                            strip_null(schema);
                        }
                    }
                }
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}

fn strip_null(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Object(o)) => {
            if let SchemaType::Array(types) = &o.schema_type {
                let mut rest: Vec<Type> = types
                    .iter()
                    .filter(|t| **t != Type::Null)
                    .cloned()
                    .collect();
                o.schema_type = match rest.len() {
                    1 => SchemaType::Type(rest.remove(0)),
                    _ => SchemaType::Array(rest),
                };
            }
        }
        RefOr::T(Schema::OneOf(one)) => {
            one.items.retain(|item| !is_null(item));
            if one.items.len() == 1 {
                let only = one.items.remove(0);
                *schema = only;
            }
        }
        _ => {}
    }
}

const DESCRIPTION: &str = "An event-sourced fact log for newsrooms: stories, the claims found in \
them, and facts laid out along valid time, over an append-only, hash-chained event log.

Errors are `application/problem+json` (RFC 9457). Checks run in this order and the first that \
fails answers: authentication (401), role (403), body media type, size and syntax (415, 413, 400), \
the resource in the path (404; a malformed id is 404 too), fields (422), idempotency replay, \
`If-Match` (412), then the life-cycle rules (409, else 403).

Every response carries `X-Content-Type-Options: nosniff`, and every response under `/v1` \
`Cache-Control: no-store`. The Authorization header may appear once (400 otherwise). Unknown \
tokens are limited per client address (429 with `Retry-After` beyond about 100 at once, then 10 \
a second); valid tokens from that address are still served. Text that is indexed has a limit in \
UTF-8 bytes beside its limit in characters (`maxLength`): a story's `url` 2,600 bytes, a claim's \
`subject` and `property` 1,200 bytes each once normalized for matching (422 beyond). A JSON \
number beyond a double's range is read exactly where a decimal is expected (`amount`, \
`lower`, `upper`) and is 422 naming the field elsewhere.

Reads from projections accept `wait_for=<position>`: the answer waits until the projections it \
reads have applied that position (up to 5 s, then 503 with `Retry-After`).";

#[derive(OpenApi)]
#[openapi(
    info(title = "factlog", description = DESCRIPTION),
    components(schemas(Problem, ValidationProblem, ConflictProblem, PreconditionProblem)),
    modifiers(&Security),
    tags(
        (name = "stories", description = "Published pieces that claims come from"),
        (name = "claims", description = "Assertions found in stories, and their life cycle"),
        (name = "facts", description = "Everything claimed about one subject and property, along valid time"),
        (name = "audit", description = "The event log itself (auditor or admin)"),
        (name = "service", description = "Health, metrics and this description; no token"),
    )
)]
struct ApiDoc;
