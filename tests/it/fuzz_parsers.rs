//! The parsers under many generated inputs (proptest; FACTLOG_FUZZ_CASES sets
//! the count, default 2,000 each): they never panic, what they accept
//! survives its round trips, and the hash-chain encoding is stable.

use factlog::domain::text::{
    MAX_KEY_BYTES, MAX_URL_BYTES, check_key_bytes, check_url_bytes, fold_whitespace, normalize_key,
    quote_occurs,
};
use factlog::domain::valid_time::ValidTime;
use factlog::domain::value::{
    ClaimValue, Decimal, MAX_DECIMAL_LEN, MAX_EXPONENT, MAX_SIGNIFICANT_DIGITS,
};
use factlog::store::chain::{canonical_json, canonical_json_text, canonical_number};
use proptest::prelude::*;
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("FACTLOG_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000)
}

fn near_value() -> impl Strategy<Value = String> {
    let kinds = prop_oneof![
        prop::sample::select(vec![
            "quantity", "date", "outcome", "entity", "boolean", "text"
        ])
        .prop_map(str::to_owned),
        "[a-z]{0,8}",
    ];
    let scalar = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        "-?[0-9]{0,30}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{0,5})?".prop_map(Value::from),
        "[0-9]{1,4}(-[0-9]{1,2}(-[0-9]{1,2})?)?".prop_map(Value::from),
    ];
    let fields = prop::collection::btree_map(
        prop_oneof![
            Just("amount".to_string()),
            Just("unit".to_string()),
            Just("approximate".to_string()),
            Just("lower".to_string()),
            Just("upper".to_string()),
            Just("date".to_string()),
            Just("outcome".to_string()),
            Just("for".to_string()),
            Just("against".to_string()),
            Just("label".to_string()),
            Just("id".to_string()),
            Just("value".to_string()),
            Just("text".to_string()),
            "[a-z]{1,6}",
        ],
        scalar,
        0..6,
    );
    (kinds, fields).prop_map(|(kind, fields)| {
        let mut m: serde_json::Map<String, Value> = fields.into_iter().collect();
        m.insert("kind".into(), json!(kind));
        Value::Object(m).to_string()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn value_parsing_never_panics_and_accepted_values_round_trip(raw in prop_oneof![near_value(), "\\PC{0,40}"]) {
        if let Ok(v) = ClaimValue::parse(&raw) {
            let stored = serde_json::to_value(&v).expect("serialize");
            let back: ClaimValue = serde_json::from_value(stored.clone()).expect("stored values read back");
            prop_assert_eq!(&back, &v);
            prop_assert!(v.same_as(&back));
            // What is stored parses again as a request would.
            let again = ClaimValue::parse(&stored.to_string()).expect("stored form is a valid request form");
            prop_assert!(again.same_as(&v));
        }
    }

    #[test]
    fn decimals_never_panic_and_compare_by_value(s in "-?[0-9]{0,45}(\\.[0-9]{0,45})?([eE][+-]?[0-9]{0,6})?|\\PC{0,20}") {
        if let Ok(d) = Decimal::parse("amount", &s) {
            prop_assert_eq!(d.cmp_value(&d), std::cmp::Ordering::Equal);
            // The value layer and the hash chain agree on what a number is.
            prop_assert_eq!(canonical_number(d.as_str()), canonical_number(&d.canonical()));
        }
    }

    #[test]
    fn valid_times_never_panic_and_display_round_trips(s in "[0-9]{0,5}(-[0-9]{0,3}(-[0-9]{0,3}([Tt ][0-9:.]{0,15}([Zz]|[+-][0-9:]{0,6})?)?)?)?|\\PC{0,30}") {
        if let Ok(t) = ValidTime::parse(&s) {
            let again = ValidTime::parse(&t.to_string()).expect("display parses");
            prop_assert_eq!(again, t);
        }
    }

    #[test]
    fn quote_matching_never_panics_and_finds_any_folded_slice(body in "\\PC{0,80}", a in 0usize..80, len in 1usize..40) {
        let chars: Vec<char> = body.chars().collect();
        let start = a.min(chars.len());
        let end = (start + len).min(chars.len());
        let slice: String = chars[start..end].iter().collect();
        let _ = quote_occurs(&body, &slice);
        if !fold_whitespace(&slice).is_empty() {
            prop_assert!(quote_occurs(&fold_whitespace(&body), &fold_whitespace(&slice)));
        }
        let k = normalize_key(&body);
        prop_assert_eq!(normalize_key(&k), k);
    }

    #[test]
    fn the_chain_encoding_depends_on_the_value_only(v in json_tree()) {
        let text = canonical_json(&v);
        let reparsed: Value = serde_json::from_str(&text).expect("canonical JSON is JSON");
        prop_assert_eq!(canonical_json(&reparsed), text);
    }
}

/// Text near a byte limit: characters of 1 to 4 bytes (and some that
/// normalization changes), about as many as make `bytes`.
fn near_bytes(bytes: usize) -> impl Strategy<Value = String> {
    let ch = prop::sample::select(vec![
        'a', 'Z', ' ', 'é', 'Ä', 'ж', '€', '語', '\u{fb01}', '\u{fdfa}', 'İ', '😀', '\u{1d2c}',
    ]);
    (bytes / 4..=bytes + 8)
        .prop_flat_map(move |n| prop::collection::vec(ch.clone(), n..=n))
        .prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// The byte limits refuse exactly what is over them, by what is indexed:
    /// the normalized key for subjects and properties, the text for urls.
    #[test]
    fn byte_limits_hold_exactly_at_their_boundary(
        key in near_bytes(MAX_KEY_BYTES),
        url in near_bytes(MAX_URL_BYTES),
    ) {
        let indexed = normalize_key(&key).len();
        prop_assert_eq!(check_key_bytes("subject", &key).is_ok(), indexed <= MAX_KEY_BYTES);
        if let Err(e) = check_key_bytes("property", &key) {
            prop_assert_eq!(e.field, "property");
        }
        prop_assert_eq!(check_url_bytes("url", &url).is_ok(), url.len() <= MAX_URL_BYTES);
    }

    /// Decimals near each of their limits, as JSON numbers and as strings:
    /// accepted within them, 422 naming `value.amount` beyond, the same
    /// verdict either way.
    #[test]
    fn decimals_near_their_limits_get_one_verdict_as_numbers_or_strings(
        digits in 1usize..=MAX_SIGNIFICANT_DIGITS + 2,
        exponent in -(MAX_EXPONENT + 3)..=MAX_EXPONENT + 3,
        pad in 0usize..=MAX_DECIMAL_LEN,
    ) {
        let mantissa: String = "7".repeat(digits);
        let zeros = "0".repeat(pad.saturating_sub(digits + 8));
        let text = format!("{mantissa}.{zeros}1e{exponent}");
        let number = format!(r#"{{"kind":"quantity","amount":{text},"unit":"m"}}"#);
        let string = format!(r#"{{"kind":"quantity","amount":"{text}","unit":"m"}}"#);
        let (a, b) = (ClaimValue::parse(&number), ClaimValue::parse(&string));
        prop_assert_eq!(a.is_ok(), b.is_ok(), "{}", text);
        if let Err(e) = a {
            prop_assert_eq!(e.field, "value.amount");
        }
    }

    /// Bodies that `serde_json::Value` holds canonicalize from their text to
    /// what they did from the value (so keys stored before compare alike),
    /// and text with numbers beyond a double's range has a form too.
    #[test]
    fn canonical_text_agrees_with_the_value_and_takes_any_number(
        v in json_tree(),
        big in "-?[1-9][0-9]{0,3}(\\.[0-9]{1,3})?[eE][+-]?[4-9][0-9]{2,4}",
        junk in "\\PC{0,40}",
    ) {
        prop_assert_eq!(canonical_json_text(&v.to_string()), Some(canonical_json(&v)));
        let pretty = serde_json::to_string_pretty(&v).expect("json");
        prop_assert_eq!(canonical_json_text(&pretty), Some(canonical_json(&v)));
        let text = format!(r#"{{"b": [{big}, {}], "a": {big}}}"#, v);
        let canonical = canonical_json_text(&text).expect("JSON with a big number");
        prop_assert_eq!(canonical_json_text(&canonical), Some(canonical.clone()));
        let _ = canonical_json_text(&junk);
    }
}

fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 30, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,5}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
