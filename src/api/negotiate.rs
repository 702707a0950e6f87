//! Content negotiation: which of a resource's media types the `Accept`
//! header allows (RFC 9110 section 12.5.1), and 406 when it allows none.
//!
//! Resources with several representations (a fact as JSON or ClaimReview,
//! a listing as JSON or CSV) choose with [`Accept::choose`]. Every other
//! API route has one type, and [`enforce`] checks it for them: a write is
//! refused before it runs, a read's answer is checked on its way out (a
//! read changes nothing, so answering 406 afterwards is safe). Errors are
//! problem+json whatever was asked for, as RFC 9110 allows.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

pub const JSON: &str = "application/json";
pub const JSON_LD: &str = "application/ld+json";
pub const CSV: &str = "text/csv";

/// One media range of an `Accept` header with its weight.
#[derive(Debug, Clone, PartialEq)]
struct Range {
    kind: String,
    subtype: String,
    /// Thousandths, as the header's `q` has at most three decimals.
    q: u16,
}

impl Range {
    /// How closely this range names `media` (0 for no match): the more
    /// specific range decides a type's weight.
    fn specificity(&self, media: &str) -> u8 {
        let (kind, subtype) = media.split_once('/').unwrap_or((media, ""));
        match (self.kind.as_str(), self.subtype.as_str()) {
            ("*", "*") => 1,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 2,
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => 3,
            _ => 0,
        }
    }
}

/// What a request's `Accept` header allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Accept {
    /// Empty when the header is absent: then anything is acceptable.
    ranges: Vec<Range>,
}

impl Accept {
    pub fn of(headers: &HeaderMap) -> Accept {
        let mut ranges = Vec::new();
        for value in headers.get_all(header::ACCEPT) {
            // A header that is not text allows what no header allows.
            let Ok(text) = value.to_str() else {
                return Accept { ranges: Vec::new() };
            };
            ranges.extend(text.split(',').filter_map(parse_range));
        }
        Accept { ranges }
    }

    /// The weight the header gives `media`: that of the most specific
    /// range naming it, 0 when none does.
    fn weight(&self, media: &str) -> u16 {
        if self.ranges.is_empty() {
            return 1000;
        }
        self.ranges
            .iter()
            .map(|r| (r.specificity(media), r.q))
            .filter(|(s, _)| *s > 0)
            .max_by_key(|(s, _)| *s)
            .map_or(0, |(_, q)| q)
    }

    pub fn allows(&self, media: &str) -> bool {
        self.weight(media) > 0
    }

    /// The offered type with the highest weight; on a tie, the one offered
    /// first (so a bare `*/*` gets the resource's usual type).
    pub fn choose(&self, offered: &[&'static str]) -> Result<&'static str, ApiError> {
        offered
            .iter()
            .enumerate()
            .map(|(i, m)| (self.weight(m), std::cmp::Reverse(i), *m))
            .filter(|(w, _, _)| *w > 0)
            .max()
            .map(|(_, _, m)| m)
            .ok_or_else(|| not_acceptable(offered))
    }
}

pub fn not_acceptable(offered: &[&str]) -> ApiError {
    ApiError::NotAcceptable(format!(
        "this resource is available as {}; the Accept header allows none of them",
        offered.join(", ")
    ))
}

/// Parses `type/subtype;q=0.5;other=params`; `None` for anything else, so a
/// malformed range is ignored rather than failing the request.
fn parse_range(text: &str) -> Option<Range> {
    let mut parts = text.split(';');
    let media = parts.next()?.trim();
    let (kind, subtype) = media.split_once('/')?;
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if !token(kind) || !token(subtype) || (kind == "*" && subtype != "*") {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("q")
        {
            q = parse_q(value.trim())?;
        }
    }
    Some(Range {
        kind: kind.to_owned(),
        subtype: subtype.to_owned(),
        q,
    })
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
fn parse_q(text: &str) -> Option<u16> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Holds every API route to its `Accept` header (see the module's note).
pub async fn enforce(req: Request, next: Next) -> Response {
    // `*/*` (what most clients send) allows every response, and a write
    // answers JSON: neither needs the header parsed, which allocates.
    let mut values = req.headers().get_all(header::ACCEPT).iter();
    if let (Some(only), None) = (values.next(), values.next()) {
        let writes = !matches!(*req.method(), Method::GET | Method::HEAD);
        if only.as_bytes() == b"*/*" || (writes && only.as_bytes() == JSON.as_bytes()) {
            return next.run(req).await;
        }
    }
    let accept = Accept::of(req.headers());
    if accept.ranges.is_empty() {
        return next.run(req).await;
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        // Every write answers JSON: refuse before anything is written.
        if !accept.allows(JSON) {
            return not_acceptable(&[JSON]).into_response();
        }
        return next.run(req).await;
    }
    let response = next.run(req).await;
    if !response.status().is_success() {
        return response;
    }
    let media = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
    match media {
        Some(m) if !accept.allows(&m) => not_acceptable(&[m.as_str()]).into_response(),
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(v: &str) -> Accept {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        Accept::of(&h)
    }

    #[test]
    fn no_header_and_wildcards_take_the_first_offered() {
        let offered = [JSON, CSV];
        assert_eq!(
            Accept::of(&HeaderMap::new()).choose(&offered).ok(),
            Some(JSON)
        );
        assert_eq!(accept("*/*").choose(&offered).ok(), Some(JSON));
        assert_eq!(accept("text/*").choose(&offered).ok(), Some(CSV));
    }

    #[test]
    fn weights_and_specificity_decide() {
        let offered = [JSON, CSV];
        assert_eq!(accept("text/csv").choose(&offered).ok(), Some(CSV));
        assert_eq!(
            accept("application/json;q=0.5, text/csv")
                .choose(&offered)
                .ok(),
            Some(CSV)
        );
        // The specific range's q=0 excludes CSV although */* allows it.
        assert_eq!(
            accept("*/*, text/csv;q=0").choose(&[CSV, JSON]).ok(),
            Some(JSON)
        );
        assert_eq!(
            accept("TEXT/CSV; charset=utf-8").choose(&offered).ok(),
            Some(CSV)
        );
    }

    #[test]
    fn nothing_acceptable_is_406_naming_what_is_offered() {
        let e = accept("image/png").choose(&[JSON, CSV]).err();
        assert!(
            matches!(&e, Some(ApiError::NotAcceptable(m)) if m.contains("application/json, text/csv")),
            "{e:?}"
        );
        assert!(accept("application/json;q=0").choose(&[JSON]).is_err());
    }

    #[test]
    fn malformed_ranges_are_ignored() {
        assert!(accept("garbage, text/csv;q=2").ranges.is_empty());
        assert_eq!(parse_q("0.123"), Some(123));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_range("*/json"), None);
    }
}
