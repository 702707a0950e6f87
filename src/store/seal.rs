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
pub fn at_path<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(data, |node, key| node.as_object()?.get(key))
}

/// [`at_path`], to change it.
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
    if let Some(mark) = unerase(data)? {
        secrets.insert(ERASED_KEY.into(), mark);
    }
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

/// The key of an event's secrets under which an erasure leaves its mark
/// (no sealed path starts with `$`).
pub const ERASED_KEY: &str = "$erased";

/// What an erasure leaves in an event's secrets in place of the values and
/// salts it deleted: which erasure fields and sealed paths, and the position
/// of the `Erased` event that removed them (the latest, if several did).
pub fn erased_mark(fields: &[&str], paths: &[&str], position: i64) -> Value {
    serde_json::json!({"fields": fields, "paths": paths, "position": position})
}

/// Deletes the values and salts at `paths` from an event's `secrets` and
/// marks them erased by the `Erased` event at `position`, merging with an
/// earlier mark. Returns whether any value was deleted.
pub fn erase(secrets: &mut Value, paths: &[&str], position: i64) -> bool {
    let Some(map) = secrets.as_object_mut() else {
        return false;
    };
    let gone: Vec<String> = paths
        .iter()
        .filter(|path| map.remove(**path).is_some())
        .map(|path| (*path).to_owned())
        .collect();
    if gone.is_empty() {
        return false;
    }
    let mut all_paths = erased_paths(secrets);
    all_paths.extend(gone);
    all_paths.sort();
    all_paths.dedup();
    let mut fields: Vec<&str> = all_paths
        .iter()
        .filter_map(|p| crate::domain::erasable::field_of(p))
        .collect();
    fields.sort_unstable();
    fields.dedup();
    let paths: Vec<&str> = all_paths.iter().map(String::as_str).collect();
    if let Some(map) = secrets.as_object_mut() {
        map.insert(ERASED_KEY.into(), erased_mark(&fields, &paths, position));
    }
    true
}

/// The sealed paths an erasure removed from an event, if any.
pub fn erased_paths(secrets: &Value) -> Vec<String> {
    secrets
        .get(ERASED_KEY)
        .and_then(|m| m.get("paths"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Puts the kept values back into a sealed event's data. An erased path is
/// shown as `null`, and the data gains `"erased": {"fields", "position",
/// "commitments"}`: the erasure's mark, with the commitment each erased
/// path held in the stored data (what its leaf still covers, so that the
/// leaf can be recomputed from what readers see).
pub fn open(data: &mut Value, secrets: &Value) {
    let Some(map) = secrets.as_object() else {
        return;
    };
    for (path, entry) in map {
        if path == ERASED_KEY {
            continue;
        }
        if let (Some(slot), Some(value)) = (at_path_mut(data, path), entry.get("value")) {
            *slot = value.clone();
        }
    }
    if let Some(mark) = map.get(ERASED_KEY) {
        let mut commitments = Map::new();
        for path in erased_paths(secrets) {
            if let Some(slot) = at_path_mut(data, &path) {
                commitments.insert(path, std::mem::take(slot));
            }
        }
        if let Some(object) = data.as_object_mut() {
            object.insert(
                "erased".into(),
                serde_json::json!({
                    "fields": mark.get("fields").cloned().unwrap_or(Value::Array(Vec::new())),
                    "position": mark.get("position").cloned().unwrap_or(Value::Null),
                    "commitments": commitments,
                }),
            );
        }
    }
}

/// Undoes what [`open`] did to an erased event's data: the `erased` member
/// taken out and each erased path's commitment put back. Returns the mark
/// to keep in the event's secrets, if the data was erased.
pub fn unerase(data: &mut Value) -> Result<Option<Value>, String> {
    let Some(mark) = data.as_object_mut().and_then(|o| o.remove("erased")) else {
        return Ok(None);
    };
    let commitments = mark
        .get("commitments")
        .and_then(Value::as_object)
        .ok_or("its erased mark has no commitments")?;
    let mut paths = Vec::with_capacity(commitments.len());
    for (path, commitment) in commitments {
        let slot = at_path_mut(data, path)
            .ok_or_else(|| format!("it has an erased {path} but no such field"))?;
        if !slot.is_null() {
            return Err(format!("its erased field {path} is not null"));
        }
        *slot = commitment.clone();
        paths.push(path.as_str());
    }
    let fields: Vec<&str> = mark
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let position = mark
        .get("position")
        .and_then(Value::as_i64)
        .ok_or("its erased mark has no position")?;
    Ok(Some(erased_mark(&fields, &paths, position)))
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
    use std::collections::BTreeMap;

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

    #[test]
    fn an_erased_value_reads_as_null_with_its_mark_and_reseals_to_the_stored_data() {
        let original =
            json!({"quote": "Ann Source said so", "attributed_to": "Ann Source", "n": 1});
        let mut stored = original.clone();
        let mut secrets = seal(&mut stored, &["quote", "attributed_to"])
            .unwrap()
            .unwrap();
        assert!(erase(&mut secrets, &["attributed_to"], 40));
        assert!(
            !erase(&mut secrets, &["attributed_to"], 41),
            "nothing left to erase"
        );
        assert!(erase(&mut secrets, &["quote"], 42));
        assert!(!secrets.to_string().contains("Ann Source"));
        assert!(
            salts(Some(&secrets)).is_empty(),
            "an erased field has no salt"
        );

        let mut shown = stored.clone();
        open(&mut shown, &secrets);
        assert_eq!(shown["quote"], Value::Null);
        assert_eq!(shown["attributed_to"], Value::Null);
        assert_eq!(shown["n"], 1);
        assert_eq!(shown["erased"]["fields"], json!(["attributed_to", "quote"]));
        assert_eq!(shown["erased"]["position"], 42);
        assert_eq!(shown["erased"]["commitments"]["quote"], stored["quote"]);

        let mut back = shown.clone();
        let kept = reseal(&mut back, &salts(Some(&secrets))).unwrap().unwrap();
        assert_eq!(back, stored, "what the leaf covers comes back");
        assert_eq!(kept[ERASED_KEY], secrets[ERASED_KEY]);

        let mut forged = shown.clone();
        forged["quote"] = json!("put back");
        assert!(
            reseal(&mut forged, &BTreeMap::new())
                .unwrap_err()
                .contains("not null")
        );
    }
}
