//! Tidy checks: the layers stay what ARCHITECTURE.md says they are.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Lines of `layer` that name one of `crates` as a path (`sqlx::`, `use
/// axum`), comments aside.
fn uses(layer: &str, crates: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(layer);
    let mut found = Vec::new();
    for file in rust_files(&root) {
        let text = std::fs::read_to_string(&file).expect("read");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for krate in crates {
                if code.contains(&format!("{krate}::")) || code.contains(&format!("use {krate}")) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn api_speaks_http_and_never_sql() {
    let found = uses("api", &["sqlx"]);
    assert!(found.is_empty(), "SQL in src/api/:\n{}", found.join("\n"));
}

#[test]
fn the_domain_does_no_io() {
    let found = uses(
        "domain",
        &[
            "sqlx", "axum", "hyper", "tokio", "reqwest", "std::fs", "std::net",
        ],
    );
    assert!(
        found.is_empty(),
        "I/O in src/domain/:\n{}",
        found.join("\n")
    );
}

/// The Merkle code is what an auditor reruns anywhere: hashes, proofs and
/// notes from their arguments alone.
#[test]
fn the_merkle_tree_does_no_io() {
    let found = uses(
        "merkle",
        &[
            "sqlx",
            "axum",
            "hyper",
            "tokio",
            "reqwest",
            "std::fs",
            "std::net",
            "crate::store",
        ],
    );
    assert!(
        found.is_empty(),
        "I/O in src/merkle/:\n{}",
        found.join("\n")
    );
}

#[test]
fn services_know_nothing_of_http() {
    let found = uses("service", &["axum", "hyper", "http"]);
    assert!(
        found.is_empty(),
        "HTTP in src/service/:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_log_knows_nothing_of_http() {
    let found = uses("store", &["axum", "hyper"]);
    assert!(
        found.is_empty(),
        "HTTP in src/store/:\n{}",
        found.join("\n")
    );
}

/// Every test the docs name (`module::test_name`, a file of this suite)
/// exists: a renamed or deleted test cannot leave a doc pointing at nothing.
#[test]
fn the_tests_the_docs_name_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = root.join("tests").join("it");
    let mut missing = Vec::new();
    let mut named = 0;
    for doc in ["ARCHITECTURE.md", "RELIABILITY.md", "README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).expect("doc");
        for quoted in text.split('`').skip(1).step_by(2) {
            let Some((module, test)) = quoted.split_once("::") else {
                continue;
            };
            let file = suite.join(format!("{module}.rs"));
            if test.is_empty()
                || test == "*"
                || !file.is_file()
                || !test
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                continue;
            }
            named += 1;
            let source = std::fs::read_to_string(&file).expect("test file");
            if !source.contains(&format!("fn {test}(")) {
                missing.push(format!("{doc}: {module}::{test}"));
            }
        }
    }
    assert!(named > 20, "the docs name only {named} tests");
    assert!(
        missing.is_empty(),
        "named but missing:\n{}",
        missing.join("\n")
    );
}
