//! Signed checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note`
//! envelopes, signed with Ed25519. The key formats are those of Go's
//! `golang.org/x/mod/sumdb/note`, so keys and notes work with the Go tools
//! (and every other implementation of the two specifications).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::hash::Hash;

/// The signed-note signature type of Ed25519.
const ALG_ED25519: u8 = 0x01;
/// Opening a note stops at this many signature lines; the specification asks
/// for at least 16.
const MAX_SIGNATURES: usize = 100;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("invalid key name {0:?}: it must be non-empty, without '+' or spaces")]
    KeyName(String),
    #[error("malformed verifier key: {0}")]
    VerifierKey(&'static str),
    #[error("malformed private key: {0}")]
    PrivateKey(&'static str),
    #[error("the key id {given:08x} does not belong to this key (its id is {actual:08x})")]
    KeyId { given: u32, actual: u32 },
    #[error("no random bytes for a new key: {0}")]
    Random(String),
    #[error("a note text must end with a newline and contain no control characters")]
    Text,
    #[error("the note does not end with a newline (is it truncated?)")]
    Truncated,
    #[error("the note contains a control character")]
    ControlCharacter,
    #[error("the note has no blank line before its signatures")]
    NoSeparator,
    #[error("the note has no signature lines")]
    NoSignatures,
    #[error("the note has more than {MAX_SIGNATURES} signature lines")]
    TooManySignatures,
    #[error("malformed signature line {0:?}")]
    SignatureLine(String),
    #[error("the note has no signature by key {name}+{key_id:08x}")]
    NotSignedByKey { name: String, key_id: u32 },
    #[error(
        "the signature by key {name}+{key_id:08x} does not verify: \
         the note text or the signature was altered"
    )]
    BadSignature { name: String, key_id: u32 },
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
}

/// A tree head as C2SP tlog-checkpoint writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: origin, size and base64 root, one per line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    /// Reads a note text written by `body`. Extension lines, which the
    /// specification allows but this log never writes, are rejected: nothing
    /// else reads them, and an auditor should not be shown unchecked text.
    pub fn parse_body(text: &str) -> Result<Self, NoteError> {
        let lines = text.strip_suffix('\n').ok_or(NoteError::Checkpoint(
            "the text does not end with a newline",
        ))?;
        let mut lines = lines.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::Checkpoint("it has fewer than three lines"));
        };
        if lines.next().is_some() {
            return Err(NoteError::Checkpoint("it has extension lines"));
        }
        if origin.is_empty() {
            return Err(NoteError::Checkpoint("the origin is empty"));
        }
        let canonical = size == "0" || (!size.starts_with('0') && !size.is_empty());
        let size = match size.parse::<u64>() {
            Ok(n) if canonical && size.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(NoteError::Checkpoint(
                    "the tree size is not a decimal number",
                ));
            }
        };
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|bytes| Hash::try_from(bytes).ok())
            .ok_or(NoteError::Checkpoint(
                "the root is not a base64 SHA-256 hash",
            ))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// Key names are non-empty, with no '+' and no Unicode spaces.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::KeyName(name.to_owned()));
    }
    if name.chars().any(char::is_control) {
        return Err(NoteError::KeyName(name.to_owned()));
    }
    Ok(())
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public.as_bytes());
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn parse_key_id(hex: &str) -> Option<u32> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// `0x01 || key`, decoded from base64.
fn parse_key_bytes(text: &str) -> Option<[u8; 32]> {
    let bytes = BASE64.decode(text).ok()?;
    match bytes.split_first() {
        Some((&ALG_ED25519, key)) => key.try_into().ok(),
        _ => None,
    }
}

/// A verifier key: a name and an Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Reads `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn from_vkey(text: &str) -> Result<Self, NoteError> {
        let mut fields = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(NoteError::VerifierKey("expected <name>+<key id>+<key>"));
        };
        check_name(name)?;
        let given =
            parse_key_id(id).ok_or(NoteError::VerifierKey("the key id is not 8 hex digits"))?;
        let bytes = parse_key_bytes(key).ok_or(NoteError::VerifierKey(
            "the key is not base64 of 0x01 and 32 bytes",
        ))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| NoteError::VerifierKey("the key is not an Ed25519 public key"))?;
        let actual = key_id(name, &key);
        if given != actual {
            return Err(NoteError::KeyId { given, actual });
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: actual,
            key,
        })
    }

    /// The verifier key text, as `from_vkey` reads it.
    pub fn vkey(&self) -> String {
        let mut bytes = vec![ALG_ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(bytes))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Checks a signed note and returns its text (the body, with its final
    /// newline). Signatures by other keys are ignored, as the specification
    /// asks; a note without a good signature by this key is rejected.
    pub fn open_text<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        if !note.ends_with('\n') {
            return Err(NoteError::Truncated);
        }
        if note.chars().any(|c| (c as u32) < 0x20 && c != '\n') {
            return Err(NoteError::ControlCharacter);
        }
        // The text ends at the last blank line; it may contain blank lines.
        let split = note.rfind("\n\n").ok_or(NoteError::NoSeparator)?;
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        if signatures.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let mut verified = false;
        for (count, line) in signatures.split_terminator('\n').enumerate() {
            if count == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            let malformed = || NoteError::SignatureLine(line.to_owned());
            let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(malformed)?;
            let (name, encoded) = rest.split_once(' ').ok_or_else(malformed)?;
            check_name(name).map_err(|_| malformed())?;
            let raw = BASE64.decode(encoded).map_err(|_| malformed())?;
            if raw.len() < 5 {
                return Err(malformed());
            }
            let (id, signature) = raw.split_at(4);
            let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
            if name != self.name || id != self.key_id {
                continue;
            }
            let bad = || NoteError::BadSignature {
                name: self.name.clone(),
                key_id: self.key_id,
            };
            let signature = Signature::from_slice(signature).map_err(|_| bad())?;
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| bad())?;
            verified = true;
        }
        if !verified {
            return Err(NoteError::NotSignedByKey {
                name: self.name.clone(),
                key_id: self.key_id,
            });
        }
        Ok(text)
    }
}

/// A signing key: a name and an Ed25519 private key.
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key, whatever prints this.
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A new random key.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NoteError::Random(e.to_string()))?;
        Ok(Self::from_seed(name, &seed))
    }

    fn from_seed(name: &str, seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        NoteSigner {
            name: name.to_owned(),
            key_id: key_id(name, &key.verifying_key()),
            key,
        }
    }

    /// Reads `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
    pub fn from_private_key(text: &str) -> Result<Self, NoteError> {
        let text = text.trim_end_matches(['\n', '\r']);
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::PrivateKey("it does not start with PRIVATE+KEY+"))?;
        let mut fields = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(seed)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(NoteError::PrivateKey(
                "expected PRIVATE+KEY+<name>+<key id>+<key>",
            ));
        };
        check_name(name)?;
        let given =
            parse_key_id(id).ok_or(NoteError::PrivateKey("the key id is not 8 hex digits"))?;
        let seed = parse_key_bytes(seed).ok_or(NoteError::PrivateKey(
            "the key is not base64 of 0x01 and 32 bytes",
        ))?;
        let signer = Self::from_seed(name, &seed);
        if given != signer.key_id {
            return Err(NoteError::KeyId {
                given,
                actual: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The private key text, as `from_private_key` reads it. Secret.
    pub fn private_key(&self) -> String {
        let mut bytes = vec![ALG_ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64.encode(bytes)
        )
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The verifier key text of this key.
    pub fn vkey(&self) -> String {
        self.verifier().vkey()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signed note: the text, a blank line, and this key's signature line.
    /// The text must end with a newline and hold no control characters but
    /// newlines, or the note could not be opened again.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') || text.chars().any(|c| (c as u32) < 0x20 && c != '\n') {
            return Err(NoteError::Text);
        }
        let mut raw = self.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.key.sign(text.as_bytes()).to_bytes());
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(raw)
        ))
    }
}

/// Opens a signed checkpoint: checks the note and its signature by
/// `verifier`'s key, then reads the checkpoint.
pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
    Checkpoint::parse_body(verifier.open_text(note)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example key and note of Go's golang.org/x/mod/sumdb/note (note.go's
    // package documentation and note_test.go), which the C2SP signed-note
    // specification was written from.
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn peter() -> NoteVerifier {
        NoteVerifier::from_vkey(PETER_VKEY).expect("vkey")
    }

    #[test]
    fn the_go_example_key_signs_the_go_example_note() {
        let signer = NoteSigner::from_private_key(PETER_SKEY).expect("skey");
        assert_eq!(signer.name(), "PeterNeumann");
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.vkey(), PETER_VKEY);
        assert_eq!(signer.private_key(), PETER_SKEY);
        assert_eq!(signer.verifier(), peter());
        assert_eq!(peter().vkey(), PETER_VKEY);
        // Ed25519 is deterministic: the same key signs the same text alike.
        assert_eq!(signer.sign(TEXT), Ok(format!("{TEXT}\n{PETER_SIG}")));
    }

    #[test]
    fn open_checks_the_go_example_notes() {
        let enoch = NoteVerifier::from_vkey(ENOCH_VKEY).expect("vkey");
        assert_eq!(enoch.key_id(), 0xaf0cfe78);
        let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        // Each key finds its own signature and ignores the other's.
        assert_eq!(peter().open_text(&both), Ok(TEXT));
        assert_eq!(enoch.open_text(&both), Ok(TEXT));
        assert_eq!(
            peter().open_text(&format!("{TEXT}\n{ENOCH_SIG}")),
            Err(NoteError::NotSignedByKey {
                name: "PeterNeumann".into(),
                key_id: 0xc74f20a3
            })
        );
        // Go's invalid signature: four characters inserted.
        let bad = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert!(matches!(
            peter().open_text(&bad),
            Err(NoteError::BadSignature { .. })
        ));
        // Go's malformed notes.
        let cases = [
            (TEXT.to_owned(), NoteError::NoSeparator),
            (format!("{TEXT}\n"), NoteError::NoSignatures),
            (
                format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
                NoteError::Truncated,
            ),
            (
                format!("\x01{TEXT}\n{PETER_SIG}"),
                NoteError::ControlCharacter,
            ),
            (
                format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
                NoteError::SignatureLine("Unexpected line.".into()),
            ),
        ];
        for (note, error) in cases {
            assert_eq!(peter().open_text(&note), Err(error), "{note:?}");
        }
        let bad_name = format!(
            "{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        assert!(matches!(
            peter().open_text(&bad_name),
            Err(NoteError::SignatureLine(_))
        ));
        let many = format!("{TEXT}\n{}", PETER_SIG.repeat(101));
        assert_eq!(peter().open_text(&many), Err(NoteError::TooManySignatures));
        let hundred = format!("{TEXT}\n{}", PETER_SIG.repeat(100));
        assert_eq!(peter().open_text(&hundred), Ok(TEXT));
    }

    #[test]
    fn mangled_keys_are_rejected() {
        assert!(NoteVerifier::from_vkey(PETER_VKEY).is_ok());
        assert!(NoteSigner::from_private_key(PETER_SKEY).is_ok());
        for key in [PETER_VKEY, PETER_SKEY] {
            let parse = |text: &str| {
                if key == PETER_VKEY {
                    NoteVerifier::from_vkey(text).map(|_| ())
                } else {
                    NoteSigner::from_private_key(text).map(|_| ())
                }
            };
            for i in 0..key.len() {
                for j in i + 1..=key.len() {
                    if (i, j) != (0, key.len()) {
                        assert!(parse(&key[i..j]).is_err(), "{:?}", &key[i..j]);
                    }
                }
            }
            for i in 0..key.len() {
                let mut bytes = key.as_bytes().to_vec();
                bytes[i] += 1;
                let text = String::from_utf8(bytes).expect("ascii");
                assert!(parse(&text).is_err(), "{text:?}");
            }
        }
        // Go's wrong-length and unknown-algorithm keys, each with a key id
        // that matches its bytes.
        assert_eq!(
            NoteVerifier::from_vkey(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            ),
            Err(NoteError::VerifierKey(
                "the key is not base64 of 0x01 and 32 bytes"
            ))
        );
        assert_eq!(
            NoteVerifier::from_vkey(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::VerifierKey(
                "the key is not base64 of 0x01 and 32 bytes"
            ))
        );
        assert_eq!(
            NoteVerifier::from_vkey(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::KeyId {
                given: 0xc74f20a4,
                actual: 0xc74f20a3
            })
        );
    }

    #[test]
    fn key_names_follow_signed_note() {
        for bad in [
            "",
            "a+b",
            "a b",
            "a\tb",
            "a\u{a0}b",
            "a\u{2003}b",
            "a\u{3000}b",
            "a\nb",
        ] {
            assert_eq!(
                NoteSigner::generate(bad).map(|s| s.name().to_owned()),
                Err(NoteError::KeyName(bad.into())),
                "{bad:?}"
            );
        }
        let signer = NoteSigner::generate("factlog/news-db").expect("key");
        assert_eq!(signer.name(), "factlog/news-db");
        let other = NoteSigner::generate("factlog/news-db").expect("key");
        assert_ne!(signer.vkey(), other.vkey(), "keys are random");
    }

    #[test]
    fn the_private_key_stays_out_of_debug_output() {
        let signer = NoteSigner::from_private_key(PETER_SKEY).expect("skey");
        let shown = format!("{signer:?}");
        assert!(shown.contains("c74f20a3"), "{shown}");
        assert!(!shown.contains("AYEKFALV"), "{shown}");
        let seed = BASE64.encode(
            &BASE64
                .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
                .expect("b64")[1..],
        );
        assert!(!shown.contains(&seed[..8]), "{shown}");
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "factlog/news".into(),
            size: 1234,
            root: crate::merkle::leaf_hash(b"root"),
        }
    }

    #[test]
    fn a_checkpoint_round_trips_through_a_signed_note() {
        let signer = NoteSigner::generate("factlog/news").expect("key");
        let verifier = NoteVerifier::from_vkey(&signer.vkey()).expect("vkey");
        let note = signer.sign(&checkpoint().body()).expect("sign");
        assert!(note.starts_with("factlog/news\n1234\n"));
        assert!(note.contains("\n\n\u{2014} factlog/news "));
        assert_eq!(open(&note, &verifier), Ok(checkpoint()));

        // A second signature by another key changes nothing.
        let witness = NoteSigner::generate("witness.example").expect("key");
        let cosigned = format!("{note}{}", {
            let other = witness.sign(&checkpoint().body()).expect("sign");
            other[other.rfind("\n\n").expect("blank") + 2..].to_owned()
        });
        assert_eq!(open(&cosigned, &verifier), Ok(checkpoint()));
        assert_eq!(open(&cosigned, &witness.verifier()), Ok(checkpoint()));
    }

    #[test]
    fn each_kind_of_forgery_says_what_failed() {
        let signer = NoteSigner::generate("factlog/news").expect("key");
        let verifier = signer.verifier();
        let note = signer.sign(&checkpoint().body()).expect("sign");

        let stranger = NoteSigner::generate("factlog/news")
            .expect("key")
            .verifier();
        let wrong_key = open(&note, &stranger).unwrap_err();
        assert!(matches!(wrong_key, NoteError::NotSignedByKey { .. }));

        let altered_body = note.replacen("1234", "1235", 1);
        let altered_body = open(&altered_body, &verifier).unwrap_err();
        assert!(matches!(altered_body, NoteError::BadSignature { .. }));

        // The signature's last characters are past the key id.
        let cut = note.len() - 6;
        let flipped = if &note[cut..cut + 1] == "A" { "B" } else { "A" };
        let altered_signature = format!("{}{flipped}{}", &note[..cut], &note[cut + 1..]);
        let altered_signature = open(&altered_signature, &verifier).unwrap_err();
        assert!(matches!(altered_signature, NoteError::BadSignature { .. }));

        let truncated = open(&note[..note.len() - 1], &verifier).unwrap_err();
        assert_eq!(truncated, NoteError::Truncated);
        let no_signature = open(&note[..note.find("\u{2014}").expect("dash")], &verifier);
        assert_eq!(no_signature, Err(NoteError::NoSignatures));
        let body_only = open(&checkpoint().body(), &verifier);
        assert_eq!(body_only, Err(NoteError::NoSeparator));

        assert_eq!(
            wrong_key.to_string(),
            format!(
                "the note has no signature by key {}",
                // name+hash, not rsplit: base64 keys may contain '+' themselves.
                stranger
                    .vkey()
                    .splitn(3, '+')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join("+")
            )
        );
        assert!(altered_body.to_string().contains("does not verify"));
        assert_eq!(
            truncated.to_string(),
            "the note does not end with a newline (is it truncated?)"
        );
    }

    #[test]
    fn sign_refuses_text_that_would_not_open() {
        let signer = NoteSigner::generate("factlog/news").expect("key");
        assert_eq!(signer.sign("no newline"), Err(NoteError::Text));
        assert_eq!(signer.sign("a\tb\n"), Err(NoteError::Text));
        assert_eq!(signer.sign(""), Err(NoteError::Text));
        // A blank line inside the text is allowed: the last one separates.
        let note = signer.sign("a\n\nb\n").expect("sign");
        assert_eq!(signer.verifier().open_text(&note), Ok("a\n\nb\n"));
    }

    #[test]
    fn checkpoint_bodies_are_read_strictly() {
        assert_eq!(
            checkpoint().body(),
            format!("factlog/news\n1234\n{}\n", BASE64.encode(checkpoint().root))
        );
        assert_eq!(
            Checkpoint::parse_body(&checkpoint().body()),
            Ok(checkpoint())
        );
        // The example of C2SP tlog-checkpoint.
        let example = Checkpoint::parse_body(
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        )
        .expect("example");
        assert_eq!(example.origin, "example.com/behind-the-sofa");
        assert_eq!(example.size, 20852163);
        assert_eq!(
            BASE64.encode(example.root),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
        );
        let empty = Checkpoint {
            origin: "o".into(),
            size: 0,
            root: crate::merkle::empty_root(),
        };
        assert_eq!(Checkpoint::parse_body(&empty.body()), Ok(empty));

        let root = BASE64.encode(checkpoint().root);
        for bad in [
            format!("factlog/news\n1234\n{root}"),
            "factlog/news\n1234\n".to_string(),
            format!("factlog/news\n1234\n{root}\nextension\n"),
            format!("\n1234\n{root}\n"),
            format!("factlog/news\n01234\n{root}\n"),
            format!("factlog/news\n+1234\n{root}\n"),
            format!("factlog/news\n-1\n{root}\n"),
            format!("factlog/news\n\n{root}\n"),
            format!("factlog/news\n18446744073709551616\n{root}\n"),
            "factlog/news\n1234\nAAAA\n".to_owned(),
            "factlog/news\n1234\nnot base64!\n".to_owned(),
        ] {
            assert!(
                matches!(Checkpoint::parse_body(&bad), Err(NoteError::Checkpoint(_))),
                "{bad:?}"
            );
        }
    }
}
