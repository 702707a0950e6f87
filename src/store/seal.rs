//! Sealing: an event's erasable values leave the log and a salted commitment
//! takes their place (migrations/0018). The log, its chain and its Merkle
//! leaf cover only the commitment, so deleting a value and its salt later
//! (erasure) changes no hash; readers put the values back on the way out.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::StoreError;

/// Bytes of random salt per sealed value: as many as the hash, so a short
/// value cannot be found by trying every candidate against its commitment.
pub const SALT_LEN: usize = 32;

/// `SHA-256(salt || value)`, the value as its UTF-8 bytes.
pub fn commitment(salt: &[u8], value: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(value.as_bytes());
    h.finalize().into()
}

/// The value at a dotted path (`changes.quote`) of a JSON object, if any.
fn at_path_mut<'a>(data: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.')
        .try_fold(data, |node, key| node.as_object_mut()?.get_mut(key))
}

/// Replaces each string at one of `paths` in `data` with its commitment and
/// returns the secrets to keep beside the log (`None` when nothing was
/// sealed). Null or absent fields stay as they are: there is nothing to
/// erase in them.
pub fn seal(data: &mut Value, paths: &[&str]) -> Result<Option<Value>, StoreError> {
    let mut secrets = Map::new();
    for path in paths {
        let Some(slot) = at_path_mut(data, path) else {
            continue;
        };
        let Value::String(value) = slot else {
            continue;
        };
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt)
            .map_err(|e| StoreError::InvalidAppend(format!("no random salt: {e}")))?;
        let value = std::mem::take(value);
        *slot = Value::String(hex::encode(commitment(&salt, &value)));
        let mut entry = Map::new();
        entry.insert("salt".into(), Value::String(hex::encode(salt)));
        entry.insert("value".into(), Value::String(value));
        secrets.insert((*path).to_owned(), Value::Object(entry));
    }
    Ok((!secrets.is_empty()).then_some(Value::Object(secrets)))
}

/// Seals `data` again with the salts it was sealed with (what
/// `/v1/events` shows beside the values): each value at a salted path back
/// to its commitment, so the data is exactly as stored. Returns the secrets
/// to keep beside the log, as [`seal`] would have (`None` when no path is
/// salted), or why the salts do not fit the data.
pub fn reseal(
    data: &mut Value,
    salts: &std::collections::BTreeMap<String, String>,
) -> Result<Option<Value>, String> {
    let mut secrets = Map::new();
    for (path, salt_hex) in salts {
        let salt = hex::decode(salt_hex).map_err(|_| format!("the salt of {path} is not hex"))?;
        let slot = at_path_mut(data, path)
            .ok_or_else(|| format!("it has a salt for {path} but no such field"))?;
        let Value::String(value) = slot else {
            return Err(format!("its sealed field {path} is not a string"));
        };
        let value = std::mem::take(value);
        *slot = Value::String(hex::encode(commitment(&salt, &value)));
        let mut entry = Map::new();
        entry.insert("salt".into(), Value::String(salt_hex.clone()));
        entry.insert("value".into(), Value::String(value));
        secrets.insert(path.clone(), Value::Object(entry));
    }
    Ok((!secrets.is_empty()).then_some(Value::Object(secrets)))
}

/// Puts the kept values back into a sealed event's data. A path whose
/// secret is gone keeps its commitment until erasure marks it (a later
/// issue's reads show it as null).
pub fn open(data: &mut Value, secrets: &Value) {
    let Some(map) = secrets.as_object() else {
        return;
    };
    for (path, entry) in map {
        if let (Some(slot), Some(value)) = (at_path_mut(data, path), entry.get("value")) {
            *slot = value.clone();
        }
    }
}

/// [`open`] on the data's JSON text, for readers that decode text.
pub fn open_text(data: &str, secrets: Option<&str>) -> Result<String, String> {
    let Some(secrets) = secrets else {
        return Ok(data.to_owned());
    };
    let mut value: Value = serde_json::from_str(data).map_err(|e| format!("event data: {e}"))?;
    let secrets: Value =
        serde_json::from_str(secrets).map_err(|e| format!("event secrets: {e}"))?;
    open(&mut value, &secrets);
    Ok(value.to_string())
}

/// Each sealed path's salt (hex), as `/v1/events` shows them.
pub fn salts(secrets: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    secrets
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(path, entry)| {
                    Some((path.clone(), entry.get("salt")?.as_str()?.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealing_then_opening_gives_back_the_data() {
        let original = json!({"quote": "5,200 troops", "changes": {"quote": "q2", "value": 1},
                              "attributed_to": null, "subject": "Iraq"});
        let mut data = original.clone();
        let secrets = seal(
            &mut data,
            &["quote", "changes.quote", "attributed_to", "absent.x"],
        )
        .unwrap()
        .unwrap();
        assert_ne!(data, original);
        assert_eq!(data["subject"], "Iraq");
        assert_eq!(data["attributed_to"], Value::Null, "null is not sealed");
        let salt = hex::decode(secrets["quote"]["salt"].as_str().unwrap()).unwrap();
        assert_eq!(salt.len(), SALT_LEN);
        assert_eq!(
            data["quote"],
            Value::String(hex::encode(commitment(&salt, "5,200 troops")))
        );
        assert_eq!(salts(Some(&secrets)).len(), 2);
        open(&mut data, &secrets);
        assert_eq!(data, original);
    }

    #[test]
    fn each_sealing_draws_a_fresh_salt() {
        let mut a = json!({"quote": "same"});
        let mut b = json!({"quote": "same"});
        seal(&mut a, &["quote"]).unwrap();
        seal(&mut b, &["quote"]).unwrap();
        assert_ne!(a["quote"], b["quote"]);
    }

    #[test]
    fn resealing_with_the_salts_gives_back_the_stored_data_and_secrets() {
        let original = json!({"quote": "5,200 troops", "changes": {"quote": "q2"}, "n": 1});
        let mut stored = original.clone();
        let secrets = seal(&mut stored, &["quote", "changes.quote"])
            .unwrap()
            .unwrap();
        let mut shown = stored.clone();
        open(&mut shown, &secrets);
        assert_eq!(shown, original);
        let again = reseal(&mut shown, &salts(Some(&secrets))).unwrap();
        assert_eq!(shown, stored);
        assert_eq!(again, Some(secrets));
        let mut bad = json!({"quote": 3});
        let one = [("quote".to_owned(), "00".to_owned())]
            .into_iter()
            .collect();
        assert!(reseal(&mut bad, &one).unwrap_err().contains("not a string"));
        let mut bad = json!({});
        assert!(
            reseal(&mut bad, &one)
                .unwrap_err()
                .contains("no such field")
        );
    }

    #[test]
    fn nothing_to_seal_gives_no_secrets() {
        let mut data = json!({"value": 3, "note": null});
        assert!(seal(&mut data, &["note", "quote"]).unwrap().is_none());
        assert_eq!(data, json!({"value": 3, "note": null}));
    }
}
