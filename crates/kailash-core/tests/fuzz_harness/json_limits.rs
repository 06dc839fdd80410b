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
        // Member names are kept to 256 bytes in a pointer.
        Err(e) if body.len() < 256 => assert!(
            value.pointer(&e.pointer).is_some(),
            "{e}: no such value in {value}"
        ),
        Err(_) => {}
    }
    true
}
