//! schema.org ClaimReview (JSON-LD) of facts and claims, for search engines
//! and fact-check aggregators.
//!
//! Built from the views the API serves (a claim's, a fact's document), so a
//! review says nothing the JSON does not, and a field the JSON shows as null
//! (an erased quote or attribution) is simply left out. Only schema.org
//! terms are used; `tests/it/claim_review.rs` expands every document with a
//! JSON-LD processor and checks each type and property against the
//! vocabulary. README lists the rating each status maps to.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{ServiceError, Services};
use crate::domain::claim::Status;
use crate::domain::fact::FactStatus;
use crate::domain::story::Story;
use crate::projections::read as pread;

pub const CONTEXT: &str = "https://schema.org";

/// Who publishes the reviews and where its pages live.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// Absolute, without a trailing slash (`FACTLOG_PUBLIC_URL`).
    pub base_url: String,
    /// The organisation named as every review's author (`FACTLOG_PUBLISHER`).
    pub publisher: String,
}

impl Publication {
    pub fn new(base_url: &str, publisher: &str) -> Publication {
        Publication {
            base_url: base_url.trim_end_matches('/').to_owned(),
            publisher: publisher.to_owned(),
        }
    }

    fn page(&self, kind: &str, id: impl std::fmt::Display) -> String {
        format!("{}/console/{kind}/{id}", self.base_url)
    }

    fn author(&self) -> Value {
        json!({"@type": "Organization", "name": self.publisher, "url": self.base_url})
    }
}

/// The textual rating of a claim in each state.
pub fn claim_rating(status: Status) -> &'static str {
    match status {
        Status::Pending => "Unverified",
        Status::Verified => "Verified",
        Status::Disputed => "Disputed",
        Status::Retracted => "Retracted",
        Status::Superseded => "Corrected",
    }
}

/// The textual rating of a fact in each status.
pub fn fact_rating(status: FactStatus) -> &'static str {
    match status {
        FactStatus::Verified => "Verified",
        FactStatus::Contested => "Contested",
        FactStatus::Unverified => "Unverified",
    }
}

/// A value in words: a quantity's amount and unit, a date, a label…
pub fn value_text(v: &Value) -> String {
    let s = |name: &str| v[name].as_str().unwrap_or_default().to_owned();
    match v["kind"].as_str() {
        Some("quantity") => {
            let mut out = String::new();
            if v["approximate"].as_bool() == Some(true) {
                out.push_str("about ");
            }
            out.push_str(&s("amount"));
            if let Some(unit) = v["unit"].as_str().filter(|u| !u.is_empty()) {
                out.push(' ');
                out.push_str(unit);
            }
            out
        }
        Some("date") => s("date"),
        Some("outcome") => match (v["for"].as_i64(), v["against"].as_i64()) {
            (Some(f), Some(a)) => format!("{} ({f} for, {a} against)", s("outcome")),
            _ => s("outcome"),
        },
        Some("entity") => s("label"),
        Some("boolean") => match v["value"].as_bool() {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => String::new(),
        },
        Some("text") => s("text"),
        _ => String::new(),
    }
}

fn rating(alternate_name: &str) -> Value {
    json!({"@type": "Rating", "alternateName": alternate_name})
}

/// Where a claim appeared: the story, at its own url when it has one.
fn appearance(publication: &Publication, story: &Story) -> Value {
    let r = &story.registered;
    let url = r
        .url
        .clone()
        .unwrap_or_else(|| publication.page("stories", r.story_id));
    json!({
        "@type": "CreativeWork",
        "url": url,
        "headline": r.title,
        "datePublished": r.published_at,
        "publisher": {"@type": "Organization", "name": r.publisher},
    })
}

/// One claim's review, from its view (as `GET /v1/claims/{id}` shows it)
/// and its story.
pub fn of_claim(publication: &Publication, claim: &Value, story: &Story) -> Value {
    let text = |name: &str| claim[name].as_str().unwrap_or_default();
    let status = Status::parse(text("status")).unwrap_or(Status::Pending);
    let mut item = Map::new();
    item.insert("@type".into(), json!("Claim"));
    item.insert("appearance".into(), appearance(publication, story));
    item.insert("datePublished".into(), json!(story.registered.published_at));
    // Left out when there is none, or once it is erased (null).
    if let Some(who) = claim["attributed_to"].as_str() {
        item.insert("author".into(), json!({"@type": "Person", "name": who}));
    }
    if let Some(quote) = claim["quote"].as_str().filter(|q| !q.is_empty()) {
        item.insert("text".into(), json!(quote));
    }
    json!({
        "@type": "ClaimReview",
        "url": publication.page("claims", text("id")),
        "claimReviewed": format!(
            "{} — {}: {}",
            text("subject"),
            text("property"),
            value_text(&claim["value"])
        ),
        "reviewRating": rating(claim_rating(status)),
        "author": publication.author(),
        "datePublished": claim["asserted_at"],
        "dateModified": claim["updated_at"],
        "itemReviewed": Value::Object(item),
    })
}

/// A fact's review, from its document (as `GET /v1/facts/{id}` shows it)
/// and the stories its claims come from (each appearance once).
pub fn of_fact(publication: &Publication, fact: &Value, stories: &HashMap<Uuid, Story>) -> Value {
    let text = |name: &str| fact[name].as_str().unwrap_or_default();
    let status = FactStatus::parse(text("status")).unwrap_or(FactStatus::Unverified);
    let claims = fact["claims"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut seen = Vec::new();
    let appearances: Vec<Value> = claims
        .iter()
        .filter_map(|c| c["story_id"].as_str()?.parse::<Uuid>().ok())
        .filter(|id| {
            let new = !seen.contains(id);
            seen.push(*id);
            new
        })
        .filter_map(|id| stories.get(&id))
        .map(|s| appearance(publication, s))
        .collect();
    let first_asserted: Option<DateTime<Utc>> = claims
        .iter()
        .filter_map(|c| c["asserted_at"].as_str()?.parse().ok())
        .min();
    let reviewed = match fact.get("value").filter(|v| !v.is_null()) {
        Some(v) => format!(
            "{} — {}: {}",
            text("subject"),
            text("property"),
            value_text(v)
        ),
        None => format!("{} — {}", text("subject"), text("property")),
    };
    let mut review = json!({
        "@type": "ClaimReview",
        "url": publication.page("facts", text("id")),
        "claimReviewed": reviewed,
        "reviewRating": rating(fact_rating(status)),
        "author": publication.author(),
        "itemReviewed": {"@type": "Claim", "appearance": appearances},
    });
    if let Some(at) = first_asserted {
        review["datePublished"] = json!(at);
    }
    review
}

/// A top-level document: the review (or list, or feed) with its context.
pub fn document(mut body: Value) -> Value {
    if let Value::Object(map) = &mut body {
        map.insert("@context".into(), json!(CONTEXT));
    }
    body
}

/// A story's claims' reviews as one list.
pub fn list(reviews: Vec<Value>) -> Value {
    document(json!({"@type": "ItemList", "itemListElement": reviews}))
}

/// A page of the feed of reviews changed since a time.
pub fn feed(publication: &Publication, reviews: Vec<Value>, now: DateTime<Utc>) -> Value {
    document(json!({
        "@type": "DataFeed",
        "name": format!("{}: fact checks", publication.publisher),
        "dateModified": now,
        "dataFeedElement": reviews,
    }))
}

/// Where the feed of reviews goes on from: the last review's record time
/// and claim. Opaque to clients: `<microseconds>.<claim id>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedCursor {
    pub at: DateTime<Utc>,
    pub claim: Uuid,
}

impl FeedCursor {
    /// The first page of reviews changed at or after `since`: no claim
    /// has the nil id, so `(since, nil)` is before every row at `since`.
    pub fn since(since: DateTime<Utc>) -> FeedCursor {
        FeedCursor {
            at: since,
            claim: Uuid::nil(),
        }
    }

    pub fn parse(text: &str) -> Option<FeedCursor> {
        let (micros, claim) = text.split_once('.')?;
        Some(FeedCursor {
            at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            claim: claim.parse().ok()?,
        })
    }
}

impl std::fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.at.timestamp_micros(), self.claim)
    }
}

impl Services {
    /// `GET /v1/facts/{id}` as ClaimReview: the current document's review.
    pub async fn fact_review(
        &self,
        publication: &Publication,
        id: Uuid,
    ) -> Result<Option<Value>, ServiceError> {
        let Some(body) = self.fact_document(id).await? else {
            return Ok(None);
        };
        let fact: Value = serde_json::from_slice(&body)
            .map_err(|e| ServiceError::Corrupt(format!("fact document {id}: {e}")))?;
        let ids: Vec<Uuid> = fact["claims"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["story_id"].as_str()?.parse::<Uuid>().ok())
            .collect();
        let stories = self.load_stories(&ids).await?;
        Ok(Some(document(of_fact(publication, &fact, &stories))))
    }

    /// `GET /v1/stories/{id}/claimreview`: a review of each of its claims.
    pub async fn story_reviews(
        &self,
        publication: &Publication,
        story_id: Uuid,
    ) -> Result<Option<Value>, ServiceError> {
        let Some(story) = self.load_story(story_id).await? else {
            return Ok(None);
        };
        let claims = self.story_claims(story_id).await?;
        Ok(Some(list(
            claims
                .iter()
                .map(|c| of_claim(publication, c, &story))
                .collect(),
        )))
    }

    /// `GET /v1/claimreview`: the reviews of claims whose state changed
    /// after `after`, oldest change first, and the next page's cursor.
    pub async fn review_feed(
        &self,
        publication: &Publication,
        after: FeedCursor,
        limit: i64,
    ) -> Result<(Value, Option<FeedCursor>), ServiceError> {
        let mut rows =
            pread::claims_changed_after(self.read_pool(), after.at, after.claim, limit + 1).await?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|(claim, at, _)| FeedCursor {
                at: *at,
                claim: *claim,
            })
        } else {
            None
        };
        let mut claims = Vec::with_capacity(rows.len());
        for (id, _, state) in &rows {
            let claim = super::reads::render_claim(*id, state)?;
            let story_id = claim["story_id"]
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok())
                .ok_or_else(|| ServiceError::Corrupt(format!("claim {id} names no story")))?;
            claims.push((*id, story_id, claim));
        }
        let ids: Vec<Uuid> = claims.iter().map(|(_, story, _)| *story).collect();
        let stories = self.load_stories(&ids).await?;
        let mut reviews = Vec::with_capacity(claims.len());
        for (id, story_id, claim) in &claims {
            let story = stories.get(story_id).ok_or_else(|| {
                ServiceError::Corrupt(format!("claim {id}'s story {story_id} is not in the log"))
            })?;
            reviews.push(of_claim(publication, claim, story));
        }
        Ok((feed(publication, reviews, Utc::now()), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::story::StoryRegistered;

    fn story(url: Option<&str>) -> Story {
        Story {
            registered: StoryRegistered::new(
                Uuid::nil(),
                "Vote".into(),
                "Wire".into(),
                "2020-01-05T00:00:00Z".parse().expect("time"),
                url.map(str::to_owned),
                None,
            ),
            registered_by: "ann".into(),
            registered_at: "2020-01-05T01:00:00Z".parse().expect("time"),
            version: 1,
            erased: None,
        }
    }

    #[test]
    fn a_claim_review_names_its_rating_story_and_attribution() {
        let publication = Publication::new("https://facts.example/", "The Daily");
        let claim = json!({
            "id": "0190", "subject": "US troops in Iraq", "property": "count",
            "value": {"kind": "quantity", "amount": "5200", "unit": "soldier", "approximate": true},
            "status": "verified", "attributed_to": "a spokesman", "quote": "some 5,200",
            "asserted_at": "2020-01-06T00:00:00Z", "updated_at": "2020-01-07T00:00:00Z",
        });
        let r = of_claim(&publication, &claim, &story(Some("https://wire.example/a")));
        assert_eq!(r["url"], "https://facts.example/console/claims/0190");
        assert_eq!(
            r["claimReviewed"],
            "US troops in Iraq — count: about 5200 soldier"
        );
        assert_eq!(r["reviewRating"]["alternateName"], "Verified");
        assert_eq!(r["author"]["name"], "The Daily");
        assert_eq!(
            r["itemReviewed"]["appearance"]["url"],
            "https://wire.example/a"
        );
        assert_eq!(r["itemReviewed"]["author"]["name"], "a spokesman");

        // No attribution (or an erased one): no author; no url: the story's page.
        let claim =
            json!({"id": "0191", "status": "superseded", "attributed_to": null, "quote": null});
        let r = of_claim(&publication, &claim, &story(None));
        assert!(r["itemReviewed"].get("author").is_none());
        assert!(r["itemReviewed"].get("text").is_none());
        assert_eq!(r["reviewRating"]["alternateName"], "Corrected");
        assert_eq!(
            r["itemReviewed"]["appearance"]["url"],
            format!("https://facts.example/console/stories/{}", Uuid::nil())
        );
    }

    #[test]
    fn a_feed_cursor_reads_back_what_it_wrote_and_nothing_else() {
        let c = FeedCursor {
            at: "2020-01-05T01:02:03.456789Z".parse().expect("time"),
            claim: Uuid::now_v7(),
        };
        assert_eq!(FeedCursor::parse(&c.to_string()), Some(c));
        for bad in [
            "",
            "12",
            "x.y",
            "12.not-a-uuid",
            &format!("{}.{}", i64::MAX, c.claim),
        ] {
            assert_eq!(FeedCursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_status_has_a_rating() {
        for s in ["pending", "verified", "disputed", "retracted", "superseded"] {
            assert!(!claim_rating(Status::parse(s).expect(s)).is_empty());
        }
        for s in ["verified", "contested", "unverified"] {
            assert!(!fact_rating(FactStatus::parse(s).expect(s)).is_empty());
        }
    }
}
