//! Text rules shared by the write and read sides: how subjects and
//! properties are keyed into facts, and how quotes are found in story bodies.

use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

/// Re-exported: the general text checks live with [`FieldError`], but
/// callers validating subjects, quotes and titles look for them here.
///
/// [`FieldError`]: super::error::FieldError
pub use super::error::check_text;

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
