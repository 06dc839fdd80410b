//! Property tests of the parsers and the rate-limit algorithm: no input
//! makes them panic, and what they accept or decide obeys their contract.

use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use kailash_core::TenantId;
use kailash_core::context::TrustedProxies;
use kailash_core::state::RateQuota;
use proptest::prelude::*;

proptest! {
    #[test]
    fn tenant_ids_are_accepted_only_in_their_alphabet(s in "\\PC{0,70}") {
        if let Ok(t) = TenantId::new(&s) {
            prop_assert_eq!(t.as_str(), s.as_str());
            prop_assert!(!s.is_empty() && s.len() <= 63);
            prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'));
            prop_assert!(!s.starts_with(['-', '_']));
        }
    }

    #[test]
    fn client_ip_is_the_peer_or_a_forwarded_hop(
        peer in any::<[u8; 4]>(),
        trusted_bits in 0u8..=32,
        hops in prop::collection::vec(prop_oneof![
            any::<[u8; 4]>().prop_map(|o| IpAddr::from(o).to_string()),
            "[ -~]{0,20}",
        ], 0..40),
    ) {
        let peer = IpAddr::from(peer);
        let net = ipnet::IpNet::new(peer, trusted_bits).unwrap().trunc();
        let proxies = TrustedProxies::new([net]);
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&hops.join(",")) {
            headers.insert("x-forwarded-for", v);
        }
        let client = proxies.client_ip(peer, &headers);
        let candidates: Vec<IpAddr> = hops.iter().filter_map(|h| h.trim().parse().ok()).collect();
        prop_assert!(client == peer || candidates.contains(&client));
        // Nobody trusted: always the peer.
        prop_assert_eq!(TrustedProxies::none().client_ip(peer, &headers), peer);
    }

    /// Over any schedule, GCRA admits at most `burst + elapsed / interval` requests.
    #[test]
    fn gcra_never_admits_more_than_burst_plus_rate(
        rate in 1u32..1000,
        burst in 1u32..50,
        steps in prop::collection::vec((0u64..2_000_000, 1u32..4), 1..200),
    ) {
        let quota = RateQuota::new(rate, Duration::from_secs(1), burst).unwrap();
        let interval = quota.emission_interval_micros();
        let start = 1_700_000_000_000_000i64;
        let (mut now, mut tat, mut admitted) = (start, None, 0u64);
        for (advance, cost) in steps {
            now += advance as i64;
            let (decision, new_tat) = quota.decide(now, tat, cost);
            prop_assert_eq!(decision.allowed, new_tat.is_some());
            if decision.allowed {
                prop_assert_eq!(decision.retry_after, Duration::ZERO);
                admitted += u64::from(cost);
                tat = new_tat;
            } else {
                prop_assert!(decision.retry_after > Duration::ZERO);
            }
            let elapsed = u64::try_from(now - start).unwrap();
            prop_assert!(admitted <= u64::from(burst) + elapsed / interval,
                "admitted {} > burst {} + {} intervals", admitted, burst, elapsed / interval);
        }
    }
}

include!("fuzz_harness/json_limits.rs");

/// Replays the fuzz corpus (`fuzz/corpus/json_limits/`) through the fuzz
/// target's harness on stable: `seed_*` are JSON within the limits their
/// first byte picks, `bad_syntax_*` are not JSON, the other `bad_*` are
/// JSON over a limit.
#[test]
fn json_limits_replay_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/json_limits");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let json = json_limits_harness(&bytes);
        assert_eq!(json, !name.starts_with("bad_syntax_"), "{name}");
        let (&head, body) = bytes.split_first().unwrap();
        let within = json_limits_for(head).check(body).is_ok();
        if name.starts_with("seed_") {
            assert!(within, "{name}");
        } else if !name.starts_with("bad_syntax_") {
            assert!(!within, "{name}");
        }
        files += 1;
    }
    assert!(files >= 10, "corpus has {files} files");
    // A member named twice (serde_json keeps the last) refused inside the
    // first: the refusal stands, its pointer names the text's value.
    assert!(json_has_duplicate_keys(br#"{"c":[1],"c":null}"#));
    assert!(!json_has_duplicate_keys(br#"{"c":[{"c":1}],"d":{"c":2}}"#));
}

include!("fuzz_harness/sealed_field.rs");

/// Replays the fuzz corpus (`fuzz/corpus/sealed_field/`) through the fuzz
/// target's harness on stable: `shape_*` have a sealed value's shape (but
/// open under no key here), `bad_*` do not; none opens.
#[test]
fn sealed_field_replay_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sealed_field");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!sealed_field_harness(&bytes), "{name} opened");
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(
            kailash_core::field_encryption::is_sealed(&text),
            name.starts_with("shape_"),
            "{name}"
        );
        files += 1;
    }
    assert!(files >= 10, "corpus has {files} files");
    // The values the keys sealed do open through the same harness.
    let (_, _, sealed) = sealed_field_keys();
    for value in sealed {
        assert!(sealed_field_harness(value.as_bytes()));
    }
}

include!("fuzz_harness/webhook_signature.rs");

/// Replays the fuzz corpus (`fuzz/corpus/webhook_signature/`) through the
/// fuzz target's harness on stable: `valid_*` hold their signature at the
/// harness's time under its secret, every other file is refused.
#[test]
fn webhook_signature_replay_corpus() {
    use kailash_core::webhook::verify_signature;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/webhook_signature");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        webhook_signature_harness(&bytes);
        let (header, body) = match bytes.iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (&bytes[..], &b""[..]),
        };
        let verdict = verify_signature(
            b"fuzz-secret-0123456789abcdef0123",
            &String::from_utf8_lossy(header),
            body,
            1_764_806_400,
            std::time::Duration::from_secs(300),
        );
        assert_eq!(
            verdict.is_ok(),
            name.starts_with("valid_"),
            "{name}: {verdict:?}"
        );
        files += 1;
    }
    assert!(files >= 10, "corpus has {files} files");
}
