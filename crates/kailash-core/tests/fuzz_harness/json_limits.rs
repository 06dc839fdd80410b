// The check shared by the fuzz target (`fuzz/fuzz_targets/json_limits.rs`) and
// the corpus replay on stable (`tests/properties.rs`), included by both.
//
// The first byte picks small limits, so the fuzzer reaches each of them;
// the rest is the body. Nothing may panic, and the walk must agree with a
// real parser: a body it lets through parses into a value within the
// limits, and a refusal's pointer names a value of the parsed body.

/// The limits a first byte picks.
fn json_limits_for(head: u8) -> kailash_core::json_limits::JsonLimits {
    kailash_core::json_limits::JsonLimits {
        max_depth: usize::from(head & 0x7) + 1,
        max_string_bytes: usize::from((head >> 3) & 0x7) * 4 + 1,
        max_array_items: usize::from(head >> 6) * 3 + 1,
        max_object_members: usize::from(head >> 6) * 2 + 1,
        max_number_chars: 8,
    }
}

/// Whether some object of the (valid JSON) `body` names a member twice.
/// serde_json keeps the last of them, so a refusal's pointer into the
/// first may name nothing in the parsed value: the walk reads the text.
fn json_has_duplicate_keys(body: &[u8]) -> bool {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(UniqueVisitor)
        }
    }
    struct UniqueVisitor;
    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key) {
                    return Err(serde::de::Error::custom("duplicate member name"));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
    }
    serde_json::from_slice::<Unique>(body).is_err()
}

/// Returns whether the body was JSON.
fn json_limits_harness(bytes: &[u8]) -> bool {
    use kailash_core::json_limits::JsonLimits;
    use serde_json::Value;

    fn within(v: &Value, l: &JsonLimits, depth: usize) -> bool {
        match v {
            Value::Array(a) => {
                depth <= l.max_depth
                    && a.len() <= l.max_array_items
                    && a.iter().all(|x| within(x, l, depth + 1))
            }
            Value::Object(o) => {
                depth <= l.max_depth
                    && o.len() <= l.max_object_members
                    && o.iter()
                        .all(|(k, x)| k.len() <= l.max_string_bytes && within(x, l, depth + 1))
            }
            // Decoded text is never longer than its escaped form.
            Value::String(s) => s.len() <= l.max_string_bytes,
            _ => true,
        }
    }

    let Some((&head, body)) = bytes.split_first() else {
        return false;
    };
    let limits = json_limits_for(head);
    let verdict = limits.check(body);
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match verdict {
        Ok(()) => assert!(within(&value, &limits, 1), "let through: {value}"),
        // Member names are kept to 256 bytes in a pointer; a pointer into
        // a member named twice may name nothing serde_json kept.
        Err(e) if body.len() < 256 && !json_has_duplicate_keys(body) => assert!(
            value.pointer(&e.pointer).is_some(),
            "{e}: no such value in {value}"
        ),
        Err(_) => {}
    }
    true
}
