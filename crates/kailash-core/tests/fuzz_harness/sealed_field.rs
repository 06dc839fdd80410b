// The check shared by the fuzz target (`fuzz/fuzz_targets/sealed_field.rs`)
// and the corpus replay on stable (`tests/properties.rs`), included by both.
//
// Sealed field values are read back from the shared state: whatever text
// is there, parsing and opening never panic, and nothing but the values
// these keys actually sealed opens (no forgery, no garbage).

/// Keys over a memory state, the runtime that drives them, and the values
/// they sealed, built once.
fn sealed_field_keys() -> &'static (
    tokio::runtime::Runtime,
    kailash_core::field_encryption::FieldKeys,
    Vec<String>,
) {
    use std::sync::{Arc, OnceLock};
    static KEYS: OnceLock<(
        tokio::runtime::Runtime,
        kailash_core::field_encryption::FieldKeys,
        Vec<String>,
    )> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let state = kailash_core::state::SharedState::memory(Arc::new(
            kailash_core::clock::ManualClock::starting_now(),
        ));
        let ring = kailash_core::envelope::Keyring::parse(
            "k1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
        )
        .unwrap();
        let keys = rt
            .block_on(kailash_core::field_encryption::FieldKeys::load(
                state,
                Arc::new(ring),
                kailash_core::field_encryption::FieldKeysOptions::default(),
            ))
            .unwrap();
        let sealed = ["", "alice@example.com", "203.0.113.9"]
            .iter()
            .map(|v| rt.block_on(keys.seal(v.as_bytes(), b"ctx")).unwrap())
            .collect();
        (rt, keys, sealed)
    })
}

/// Returns whether the text opened (only ever one of the sealed values).
fn sealed_field_harness(bytes: &[u8]) -> bool {
    use kailash_core::field_encryption::{Encrypted, is_sealed, key_id_of};
    let (rt, keys, sealed) = sealed_field_keys();
    let text = String::from_utf8_lossy(bytes);
    let looks_sealed = is_sealed(&text);
    if looks_sealed {
        assert!(key_id_of(&text).is_some());
    }
    // Deserialising as a field checks the same shape.
    let as_json = serde_json::to_string(&*text).unwrap();
    let field = serde_json::from_str::<Encrypted<String>>(&as_json);
    assert_eq!(field.is_ok(), looks_sealed);
    let opened = rt.block_on(keys.open(&text, b"ctx"));
    if opened.is_ok() {
        assert!(sealed.iter().any(|s| *s == *text), "a value these keys never sealed opened");
    }
    opened.is_ok()
}
