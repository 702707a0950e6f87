//! Text rules shared by the write and read sides: how subjects and
//! properties are keyed into facts, and how quotes are found in story bodies.

use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use super::error::FieldError;

/// Re-exported: the general text checks live with [`FieldError`], but
/// callers validating subjects, quotes and titles look for them here.
///
/// [`FieldError`]: super::error::FieldError
pub use super::error::check_text;

/// The largest btree index entry PostgreSQL accepts on its default 8 kB
/// pages: a third of a page less the page's bookkeeping and room for a heap
/// pointer (`BTMaxItemSize`, btree version 4), the entry's 8-byte header
/// included. A larger entry fails the INSERT ("index row size exceeds btree
/// version 4 maximum 2704"). Values above about 500 bytes are compressed
/// first when they compress, but text need not, so the limits below assume
/// it does not.
///
/// Every text column in a btree index that a request can reach, and what
/// bounds it:
/// - a story's `url` (`events_story_url`, unique on `data ->> 'url'`):
///   [`MAX_URL_BYTES`];
/// - a fact's subject and property keys (`facts_view_keys` on
///   `(subject_key, property_key, fact_id)`, `facts_view_property`): the
///   normalized keys, which NFKC can make much longer than what was sent
///   (U+FDFA is 18 characters, 33 bytes), [`MAX_KEY_BYTES`] each;
/// - actors (`events_actor_recorded_at`, `claim_versions_open_asserted_by`,
///   `tokens` primary key, the `scope` of `idempotency_keys`): token names,
///   at most 64 ASCII characters (`principal::valid_token_name`);
/// - idempotency keys (`idempotency_keys` primary key): at most 255 visible
///   ASCII characters (`api::write`);
/// - streams, event types and statuses: made by the code, never sent.
pub const BTREE_MAX_ENTRY_BYTES: usize = 2_704;

/// A story's `url`, in UTF-8 bytes. It is the only column of its index
/// entry: 8 (header) + 4 (length) + the url, rounded up to 8 bytes, must
/// fit in [`BTREE_MAX_ENTRY_BYTES`], so the url may have 2,692 bytes; 2,600
/// leaves 92 bytes of margin. An ASCII url reaches the 2,048-character limit
/// first; one in other scripts may reach this one first.
pub const MAX_URL_BYTES: usize = 2_600;

/// A subject's or property's normalized key ([`normalize_key`]), in UTF-8
/// bytes. Both keys share one entry of `facts_view_keys`: 8 (header) + 4 +
/// the subject key + up to 3 (alignment) + 4 + the property key + 16 (fact
/// id), rounded up to 8 bytes, so the two keys may have 2,669 bytes
/// together. 1,200 each leaves 229 bytes of margin. (Too long a key would
/// not fail the write but the projection that indexes it, stopping the
/// read side at that event.)
pub const MAX_KEY_BYTES: usize = 1_200;

/// Refuses a subject or property whose normalized key is too long to index
/// (see [`MAX_KEY_BYTES`]).
pub fn check_key_bytes(field: &str, s: &str) -> Result<(), FieldError> {
    let bytes = normalize_key(s).len();
    if bytes > MAX_KEY_BYTES {
        return Err(FieldError::new(
            field,
            format!(
                "must be at most {MAX_KEY_BYTES} bytes of UTF-8 once normalized for matching \
                 (NFKC, lower case, white space folded), as it is indexed; this one is {bytes} bytes"
            ),
        ));
    }
    Ok(())
}

/// Refuses a url too long to index (see [`MAX_URL_BYTES`]).
pub fn check_url_bytes(field: &str, s: &str) -> Result<(), FieldError> {
    if s.len() > MAX_URL_BYTES {
        return Err(FieldError::new(
            field,
            format!(
                "must be at most {MAX_URL_BYTES} bytes of UTF-8, as it is indexed; this one is {} bytes",
                s.len()
            ),
        ));
    }
    Ok(())
}

/// Namespace for [`fact_id`]. Fixed forever: changing it would give every
/// existing fact a new id.
pub const FACT_NAMESPACE: Uuid = Uuid::from_u128(0xcb7b_b280_7e28_4fe2_be5e_98c0_839a_5aa9);

/// Separates subject from property in the [`fact_id`] input. Unambiguous
/// because [`normalize_key`] folds it (with the other information
/// separators U+001C..U+001F) into a space, so no normalized key contains it.
const KEY_SEPARATOR: char = '\u{1f}';

/// Folds a subject or property into the form that decides identity:
/// Unicode NFKC (so "ﬁ" is "fi" and full-width letters are ASCII), lower
/// case, every run of white space (any Unicode `White_Space`, which includes
/// no-break spaces, plus the information separators U+001C..U+001F, which
/// several languages' `isspace` count as space) made one U+0020, trimmed.
///
/// Lower-casing can produce text that NFKC would change again (and NFKC can
/// produce capitals, e.g. U+1D2C → "A"), so the steps repeat until nothing
/// changes; that makes the function idempotent, which ids depend on.
pub fn normalize_key(s: &str) -> String {
    let mut current = fold_once(s);
    // Real text settles in one more round; the cap only guards against a
    // pathological input never settling on a request path.
    for _ in 0..4 {
        let next = fold_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn fold_once(s: &str) -> String {
    let lowered: String = s.nfkc().collect::<String>().to_lowercase();
    fold_runs(&lowered, is_key_space)
}

fn is_key_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Every run of Unicode white space becomes one U+0020; leading and
/// trailing white space is dropped. Nothing else changes.
pub fn fold_whitespace(s: &str) -> String {
    fold_runs(s, char::is_whitespace)
}

fn fold_runs(s: &str, is_space: fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(is_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Where `quote` occurs in `body`, as byte ranges of `body`, matched as
/// [`quote_occurs`] matches (white space folded in both, nothing else):
/// every occurrence, left to right, none overlapping. A range starts at the
/// first character of the match and ends after its last, so white space
/// that the folding merged is inside it only between two matched words.
pub fn quote_spans(body: &str, quote: &str) -> Vec<std::ops::Range<usize>> {
    let quote = fold_whitespace(quote);
    if quote.is_empty() {
        return Vec::new();
    }
    // The folded body, and for each of its bytes the original range of
    // the character (or white-space run) it came from.
    let mut folded = String::with_capacity(body.len());
    let mut origin: Vec<std::ops::Range<usize>> = Vec::with_capacity(body.len());
    let mut space: Option<std::ops::Range<usize>> = None;
    for (i, c) in body.char_indices() {
        let end = i + c.len_utf8();
        if c.is_whitespace() {
            space = Some(space.map_or(i..end, |r| r.start..end));
            continue;
        }
        if let Some(run) = space.take()
            && !folded.is_empty()
        {
            folded.push(' ');
            origin.push(run);
        }
        folded.push(c);
        origin.extend(std::iter::repeat_n(i..end, c.len_utf8()));
    }
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = folded.get(from..).and_then(|rest| rest.find(&quote)) {
        let start = from + found;
        let last = start + quote.len() - 1;
        if let (Some(a), Some(b)) = (origin.get(start), origin.get(last)) {
            spans.push(a.start..b.end);
        }
        from = start + quote.len();
    }
    spans
}

/// The id of the fact about `property` of `subject`: a UUID v5, so every
/// writer derives the same id for the same normalized pair without a lookup.
pub fn fact_id(subject: &str, property: &str) -> Uuid {
    let mut name = normalize_key(subject);
    name.push(KEY_SEPARATOR);
    name.push_str(&normalize_key(property));
    Uuid::new_v5(&FACT_NAMESPACE, name.as_bytes())
}

/// Whether `quote` occurs in `body` once white space is folded in both
/// (line breaks and no-break spaces in a story do not defeat a quote typed
/// on one line). Matching is otherwise exact: case, punctuation (curly vs
/// straight quotes) and Unicode forms must agree, because a quote is
/// evidence and must be the story's own words. An empty quote occurs
/// nowhere: it would prove nothing.
pub fn quote_occurs(body: &str, quote: &str) -> bool {
    let quote = fold_whitespace(quote);
    !quote.is_empty() && fold_whitespace(body).contains(&quote)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalize_key_examples() {
        assert_eq!(
            normalize_key("  Brig.\u{a0}Gen.\n\tSeely  "),
            "brig. gen. seely"
        );
        assert_eq!(normalize_key("ﬁnance"), "finance");
        assert_eq!(normalize_key("ＡＢＣ"), "abc");
        assert_eq!(normalize_key("a\u{202f}b\u{2007}c"), "a b c");
        assert_eq!(normalize_key("e\u{301}"), "é");
        assert_eq!(normalize_key("\u{1d2c}"), "a");
        assert_eq!(normalize_key("a\u{1f}b"), "a b");
        assert_eq!(normalize_key(" \n "), "");
    }

    #[test]
    fn fact_id_ignores_case_space_and_compatibility_forms() {
        let id = fact_id("Ofﬁce of the Mayor", "Budget");
        assert_eq!(id, fact_id("office  of\u{a0}the mayor ", " BUDGET"));
        assert_eq!(id, fact_id("ＯＦＦＩＣＥ of the\nmayor", "budget"));
        assert_eq!(id.get_version_num(), 5);
        assert_ne!(id, fact_id("Office of the Mayor", "Budgets"));
        // Moving text across the subject/property boundary is a different fact.
        assert_ne!(fact_id("a b", "c"), fact_id("a", "b c"));
        assert_ne!(fact_id("a\u{1f}b", "c"), fact_id("a", "b\u{1f}c"));
    }

    #[test]
    fn fact_id_is_stable() {
        // Pinned: a change here re-keys every stored fact.
        assert_eq!(
            fact_id("City Council", "Vote on budget").to_string(),
            Uuid::new_v5(
                &FACT_NAMESPACE,
                "city council\u{1f}vote on budget".as_bytes()
            )
            .to_string()
        );
        assert_eq!(
            FACT_NAMESPACE.to_string(),
            "cb7bb280-7e28-4fe2-be5e-98c0839a5aa9"
        );
    }

    #[test]
    fn quote_spans_are_the_occurrences_in_the_original_text() {
        let body = "He said: “We\n will pass it.” We will pass it.";
        let spans = quote_spans(body, "We will  pass it.");
        let found: Vec<&str> = spans.iter().map(|r| &body[r.clone()]).collect();
        assert_eq!(found, ["We\n will pass it.", "We will pass it."]);
        assert!(quote_spans(body, " ").is_empty());
        assert!(quote_spans(body, "nowhere").is_empty());
        let e = "é é";
        assert_eq!(quote_spans(e, "é"), vec![0..2, 3..5]);
    }

    #[test]
    fn quotes_fold_white_space_but_nothing_else() {
        let body = "The mayor said:\n“We will  pass\u{a0}it.”\r\n\tThen left.";
        assert!(quote_occurs(body, "“We will pass it.”"));
        assert!(quote_occurs(body, "  said: “We\nwill pass "));
        assert!(quote_occurs(body, "it.” Then"));
        assert!(
            !quote_occurs(body, "\"We will pass it.\""),
            "straight ≠ curly"
        );
        assert!(!quote_occurs(body, "we will pass"), "case matters");
        assert!(!quote_occurs(body, "Wewill"), "white space is not removed");
        assert!(!quote_occurs(body, " \n "), "empty quote proves nothing");
        assert!(!quote_occurs("ﬁne", "fine"), "no NFKC");
    }

    #[test]
    fn key_and_url_byte_limits() {
        let at = "é".repeat(MAX_KEY_BYTES / 2);
        assert!(check_key_bytes("subject", &at).is_ok());
        let over = format!("{at}a");
        assert_eq!(
            check_key_bytes("subject", &over).unwrap_err().field,
            "subject"
        );
        // Normalization can multiply the length: 100 characters, 3,300 bytes.
        let expands = "\u{fdfa}".repeat(100);
        assert!(normalize_key(&expands).len() > MAX_KEY_BYTES);
        assert!(check_key_bytes("property", &expands).is_err());
        // Upper case that lower-cases shorter still counts what is indexed.
        assert!(check_key_bytes("subject", &"Ä".repeat(MAX_KEY_BYTES / 2)).is_ok());

        let url = format!("https://e.org/{}", "€".repeat((MAX_URL_BYTES - 14) / 3));
        assert_eq!(url.len(), MAX_URL_BYTES);
        assert!(check_url_bytes("url", &url).is_ok());
        let e = check_url_bytes("url", &format!("{url}x")).unwrap_err();
        assert_eq!(e.field, "url");
        assert!(e.message.contains("2600 bytes"), "{}", e.message);
        const {
            // 8-byte header, 4-byte length, padded to 8: the url fits.
            assert!((8 + 4 + MAX_URL_BYTES).div_ceil(8) * 8 <= BTREE_MAX_ENTRY_BYTES);
            assert!(
                (8 + 4 + MAX_KEY_BYTES + 3 + 4 + MAX_KEY_BYTES + 16).div_ceil(8) * 8
                    <= BTREE_MAX_ENTRY_BYTES
            );
        }
    }

    #[test]
    fn fold_whitespace_examples() {
        assert_eq!(fold_whitespace("  a \n\n b\u{3000}c "), "a b c");
        assert_eq!(fold_whitespace(""), "");
        assert_eq!(fold_whitespace("a\u{1f}b"), "a\u{1f}b");
    }

    proptest! {
        #[test]
        fn normalize_key_is_idempotent(s in "\\PC{0,40}|[\\s\\u{1c}-\\u{1f}a-zA-Zﬁﬀ\u{1d2c}İΣσς\u{301}]{0,20}") {
            let once = normalize_key(&s);
            prop_assert_eq!(normalize_key(&once), once.clone());
        }

        #[test]
        fn fact_id_ignores_variants(
            words in prop::collection::vec("[a-zA-Z0-9]{1,8}", 1..5),
            seps in prop::collection::vec(prop::sample::select(vec![" ", "  ", "\u{a0}", "\u{202f}", "\n", "\t "]), 5),
        ) {
            let plain = words.join(" ");
            let mut messy = String::from(" ");
            for (i, w) in words.iter().enumerate() {
                messy.push_str(&w.to_uppercase().replace("fi", "ﬁ"));
                messy.push_str(seps[i % seps.len()]);
            }
            prop_assert_eq!(fact_id(&plain, "P"), fact_id(&messy, " p"));
        }

        #[test]
        fn quote_from_body_always_occurs(body in "\\PC{0,60}", start in 0usize..60, len in 1usize..20) {
            let chars: Vec<char> = body.chars().collect();
            let start = start.min(chars.len());
            let end = (start + len).min(chars.len());
            let quote: String = chars[start..end].iter().collect();
            // A slice may begin or end mid-run of white space; folding trims it.
            if !fold_whitespace(&quote).is_empty() {
                prop_assert!(quote_occurs(&body, &quote));
            }
        }
    }
}
