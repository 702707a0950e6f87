//! Cross-site request forgery: a writing request must come from the
//! console's own origin (its `Origin`, or its `Referer` when a browser sent
//! no `Origin`, equal to scheme://host:port of the request itself: another
//! port of the same host is another origin) AND carry the session's CSRF
//! token in its form. Either missing or wrong is 403, before anything is
//! read or written.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ConsoleError;
use super::session::Session;

/// The CSRF token of a session: derived from its secret, so the secret
/// itself never leaves the database.
pub fn token_for(secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"factlog console csrf\0");
    h.update(secret);
    hex::encode(h.finalize())
}

/// The form's token against the session's, in constant time.
pub fn check_token(session: &Session, given: &str) -> Result<(), ConsoleError> {
    let expected = session.csrf_token();
    if given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ConsoleError::CrossSite(
            "This form has expired or did not come from the console: nothing was saved. \
             Reload the page and send it again."
                .into(),
        ))
    }
}

/// Whether the request reached the service over https (through a proxy
/// that says so; the service itself speaks plain http).
pub fn is_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            first.split(';').any(|kv| {
                kv.trim().split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        });
    forwarded_proto || forwarded
}

/// An origin: scheme, host (lower case), port (the scheme's default when
/// none is written).
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `host[:port]` (an IPv6 host in brackets).
fn authority(scheme: &str, s: &str) -> Option<Origin> {
    if s.is_empty() || s.contains('@') {
        return None;
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("[{host}]"), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (s.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port(scheme)?,
    };
    if host.is_empty() {
        return None;
    }
    Some(Origin {
        scheme: scheme.to_owned(),
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// `scheme://host[:port]`, optionally followed by a path (a Referer).
fn parse(s: &str, with_path: bool) -> Option<Origin> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let auth = if with_path {
        rest.split(['/', '?', '#']).next()?
    } else {
        rest
    };
    authority(&scheme, auth)
}

/// The console's own origin, as this request reached it.
fn own(headers: &HeaderMap) -> Option<Origin> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = if is_https(headers) { "https" } else { "http" };
    authority(scheme, host.trim())
}

/// Refuses a request that does not come from the console's own origin.
pub fn check_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let refuse = |why: &str| {
        Err(ConsoleError::CrossSite(format!(
            "This form was not sent from the console's own pages ({why}): nothing was saved."
        )))
    };
    let Some(own) = own(headers) else {
        return refuse("the request names no host");
    };
    let sent = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
        (Some(origin), _) => origin.to_str().ok().and_then(|o| parse(o.trim(), false)),
        (None, Some(referer)) => referer.to_str().ok().and_then(|r| parse(r.trim(), true)),
        (None, None) => return refuse("the browser did not say where it came from"),
    };
    match sent {
        Some(o) if o == own => Ok(()),
        _ => refuse("it came from another origin"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn only_the_same_scheme_host_and_port_pass() {
        let host = ("host", "127.0.0.1:8080");
        for ok in [
            vec![host, ("origin", "http://127.0.0.1:8080")],
            vec![("host", "Example.org"), ("origin", "http://example.org:80")],
            vec![
                host,
                ("referer", "http://127.0.0.1:8080/console/stories?x=1"),
            ],
            vec![("host", "[::1]:8080"), ("origin", "http://[::1]:8080")],
            vec![
                ("host", "news.example"),
                ("x-forwarded-proto", "https"),
                ("origin", "https://news.example"),
            ],
        ] {
            assert!(check_origin(&headers(&ok)).is_ok(), "{ok:?}");
        }
        for bad in [
            vec![host, ("origin", "http://127.0.0.1:8081")],
            vec![host, ("origin", "https://127.0.0.1:8080")],
            vec![host, ("origin", "null")],
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("origin", "http://127.0.0.1:8080.evil.example")],
            vec![host, ("referer", "http://127.0.0.1:9999/console")],
            vec![
                host,
                ("origin", "null"),
                ("referer", "http://127.0.0.1:8080/"),
            ],
            vec![host],
            vec![("origin", "http://127.0.0.1:8080")],
        ] {
            assert!(check_origin(&headers(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_differ_by_secret() {
        assert_ne!(token_for(&[1; 32]), token_for(&[2; 32]));
        assert_eq!(token_for(&[1; 32]).len(), 64);
    }
}
