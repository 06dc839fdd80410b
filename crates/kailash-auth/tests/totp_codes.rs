//! TOTP codes (RFC 6238), secrets, URIs and recovery codes.

use jiff::Timestamp;
use kailash_auth::totp::{RecoveryCodes, TotpAlgorithm, TotpConfig, TotpSecret};
use proptest::prelude::*;

fn rfc_secret() -> TotpSecret {
    TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

#[test]
fn rfc6238_appendix_b_sha1_vectors() {
    let cfg = TotpConfig::new(8, 30, 1, TotpAlgorithm::Sha1).unwrap();
    let secret = rfc_secret();
    for (t, code) in [
        (59u64, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(cfg.code_at(&secret, t), code, "T={t}");
        let now = ts(i64::try_from(t).unwrap());
        assert_eq!(cfg.verify(&secret, code, now), Some(t / 30), "T={t}");
    }
}

#[test]
fn rfc6238_sha256_and_sha512_vectors() {
    let s256 = TotpSecret::from_bytes(b"12345678901234567890123456789012".to_vec()).unwrap();
    let s512 = TotpSecret::from_bytes(
        b"1234567890123456789012345678901234567890123456789012345678901234".to_vec(),
    )
    .unwrap();
    let c256 = TotpConfig::new(8, 30, 1, TotpAlgorithm::Sha256).unwrap();
    let c512 = TotpConfig::new(8, 30, 1, TotpAlgorithm::Sha512).unwrap();
    assert_eq!(c256.code_at(&s256, 59), "46119246");
    assert_eq!(c512.code_at(&s512, 59), "90693936");
    assert_eq!(c256.code_at(&s256, 20_000_000_000), "77737706");
    assert_eq!(c512.code_at(&s512, 20_000_000_000), "47863826");
}

#[test]
fn six_digit_default_is_the_last_six_digits() {
    let cfg = TotpConfig::default();
    assert_eq!(cfg.code_at(&rfc_secret(), 59), "287082");
    assert_eq!(cfg.code_at(&rfc_secret(), 1_111_111_109), "081804");
}

#[test]
fn skew_window_boundaries() {
    let cfg = TotpConfig::default(); // 30 s, ±1 step
    let secret = rfc_secret();
    let step = 1_700_000_010u64 / 30;
    let code = cfg.code_at_step(&secret, step);
    let start = i64::try_from(step * 30).unwrap();
    // Within the step itself.
    assert_eq!(cfg.verify(&secret, &code, ts(start)), Some(step));
    assert_eq!(cfg.verify(&secret, &code, ts(start + 29)), Some(step));
    // One step early or late is accepted…
    assert_eq!(cfg.verify(&secret, &code, ts(start - 30)), Some(step));
    assert_eq!(cfg.verify(&secret, &code, ts(start + 59)), Some(step));
    // …two steps are not.
    assert_eq!(cfg.verify(&secret, &code, ts(start - 31)), None);
    assert_eq!(cfg.verify(&secret, &code, ts(start + 60)), None);
    // Without skew only the step itself.
    let strict = TotpConfig::new(6, 30, 0, TotpAlgorithm::Sha1).unwrap();
    assert_eq!(strict.verify(&secret, &code, ts(start - 1)), None);
    assert_eq!(strict.verify(&secret, &code, ts(start + 30)), None);
    assert_eq!(strict.verify(&secret, &code, ts(start + 15)), Some(step));
    // Before the epoch: nothing matches, nothing panics.
    assert_eq!(cfg.verify(&secret, &code, ts(-100)), None);
}

#[test]
fn malformed_codes_refused() {
    let cfg = TotpConfig::default();
    let secret = rfc_secret();
    let now = ts(59);
    let good = cfg.code_at(&secret, 59);
    assert_eq!(cfg.verify(&secret, &good, now), Some(1));
    for bad in [
        "".to_owned(),
        good[..5].to_owned(),
        format!("{good}0"),
        format!(" {good}"),
        format!("{good} "),
        format!("+{}", &good[1..]),
        "28708a".to_owned(),
        "２８７０８２".to_owned(), // full-width digits
        "-28708".to_owned(),
        "287 82".to_owned(),
    ] {
        assert_eq!(cfg.verify(&secret, &bad, now), None, "{bad:?}");
    }
    // A wrong 6-digit code.
    let wrong = if good == "000000" { "000001" } else { "000000" };
    assert_eq!(cfg.verify(&secret, wrong, now), None);
}

#[test]
fn config_validation_and_serde() {
    assert!(TotpConfig::new(5, 30, 1, TotpAlgorithm::Sha1).is_err());
    assert!(TotpConfig::new(9, 30, 1, TotpAlgorithm::Sha1).is_err());
    assert!(TotpConfig::new(6, 0, 1, TotpAlgorithm::Sha1).is_err());
    assert!(TotpConfig::new(6, 30, 11, TotpAlgorithm::Sha1).is_err());
    let d: TotpConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(d, TotpConfig::default());
    assert_eq!((d.digits(), d.period_secs(), d.skew_steps()), (6, 30, 1));
    assert_eq!(d.algorithm(), TotpAlgorithm::Sha1);
    let c: TotpConfig =
        serde_json::from_str(r#"{"digits": 8, "algorithm": "SHA256", "skew_steps": 2}"#).unwrap();
    assert_eq!(c.digits(), 8);
    assert_eq!(c.algorithm(), TotpAlgorithm::Sha256);
    assert!(serde_json::from_str::<TotpConfig>(r#"{"digit": 8}"#).is_err());
    assert!(serde_json::from_str::<TotpConfig>(r#"{"digits": 10}"#).is_err());
    assert!(serde_json::from_str::<TotpConfig>(r#"{"algorithm": "MD5"}"#).is_err());
}

#[test]
fn base32_round_trip_and_invalid_refused() {
    let s = TotpSecret::generate().unwrap();
    assert_eq!(s.as_bytes().len(), 20);
    let b32 = s.to_base32();
    assert_eq!(b32.len(), 32);
    assert!(!b32.contains('='));
    assert_eq!(TotpSecret::from_base32(&b32).unwrap(), s);
    assert_eq!(TotpSecret::from_base32(&b32.to_lowercase()).unwrap(), s);
    assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(
        TotpSecret::from_base32("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ").unwrap(),
        rfc_secret()
    );
    assert_ne!(TotpSecret::generate().unwrap(), s);
    for bad in [
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1", // '1' is not in the alphabet
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ!",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQG", // not a whole number of bytes
        "GEZDGNBV",                          // too short (5 bytes)
        "",
    ] {
        assert!(TotpSecret::from_base32(bad).is_err(), "{bad:?}");
    }
    assert!(TotpSecret::from_bytes(vec![0u8; 9]).is_err());
    // The demo's 80-bit example secret is importable.
    assert_eq!(
        TotpSecret::from_base32("JBSWY3DPEHPK3PXP")
            .unwrap()
            .as_bytes()
            .len(),
        10
    );
    assert!(TotpSecret::from_bytes(vec![0u8; 65]).is_err());
    assert!(TotpSecret::from_base32(&"A".repeat(100_000)).is_err());
}

#[test]
fn debug_output_is_redacted() {
    let s = rfc_secret();
    let dbg = format!("{s:?}");
    assert_eq!(dbg, "TotpSecret(***)");
    assert!(!dbg.contains(&s.to_base32()));
    let (stored, codes) = RecoveryCodes::generate(3).unwrap();
    let dbg = format!("{stored:?} {codes:?}");
    for c in &codes {
        assert!(!dbg.contains(c.expose()));
        assert!(!dbg.contains(&c.expose().replace('-', "")));
    }
    for h in &stored.hashes {
        assert!(!dbg.contains(h.as_str()));
    }
}

#[test]
fn otpauth_uri_escapes_issuer_and_account() {
    let cfg = TotpConfig::default();
    let s = rfc_secret();
    let uri = cfg.provisioning_uri(&s, "ACME Corp: Cloud", "alice smith@example.com");
    assert_eq!(
        uri,
        "otpauth://totp/ACME%20Corp%3A%20Cloud:alice%20smith%40example.com\
         ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Corp%3A%20Cloud\
         &algorithm=SHA1&digits=6&period=30"
    );
    let uri = cfg.provisioning_uri(&s, "a&b=c?d/é~", "x+y#z");
    assert!(uri.starts_with("otpauth://totp/a%26b%3Dc%3Fd%2F%C3%A9~:x%2By%23z?"));
}

#[test]
fn recovery_codes_work_once_and_ignore_case_and_dashes() {
    let (mut stored, codes) = RecoveryCodes::generate_default().unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(stored.remaining(), 10);
    for c in &codes {
        let text = c.expose();
        assert_eq!(text.len(), 19);
        let parts: Vec<&str> = text.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().all(|p| {
            p.len() == 4
                && p.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        }));
        // The stored hashes never contain the code.
        let raw = text.replace('-', "");
        for h in &stored.hashes {
            assert_eq!(h.len(), 64);
            assert!(!h.to_uppercase().contains(&raw));
            assert!(!h.contains(text));
        }
    }
    let json = serde_json::to_string(&stored).unwrap();
    for c in &codes {
        assert!(!json.contains(&c.expose().replace('-', "")));
    }
    // Wrong codes are refused and change nothing.
    assert!(!stored.consume("AAAA-AAAA-AAAA-AAAA"));
    assert!(!stored.consume(""));
    assert!(!stored.consume("not a code"));
    assert_eq!(stored.remaining(), 10);

    // Exact form.
    assert!(stored.consume(codes[0].expose()));
    assert!(!stored.consume(codes[0].expose()));
    // Lower case without dashes.
    let lower = codes[1].expose().replace('-', "").to_lowercase();
    assert!(stored.consume(&lower));
    assert!(!stored.consume(&lower));
    // Spaces instead of dashes, mixed case.
    let spaced = format!(" {} ", codes[2].expose().replace('-', " ").to_lowercase());
    assert!(stored.consume(&spaced));
    assert_eq!(stored.remaining(), 7);
    // The remaining codes still work, from the serialised form too.
    let mut reloaded: RecoveryCodes = serde_json::from_str(&json).unwrap();
    assert_eq!(reloaded.remaining(), 10);
    for c in &codes[3..] {
        assert!(stored.consume(c.expose()));
        assert!(reloaded.consume(c.expose()));
    }
    assert_eq!(stored.remaining(), 0);
    assert!(!stored.consume(codes[9].expose()));
    assert!(RecoveryCodes::generate(101).is_err());
    assert_eq!(RecoveryCodes::generate(0).unwrap().0.remaining(), 0);
}

proptest! {
    #[test]
    fn verify_never_panics(
        secret in proptest::collection::vec(any::<u8>(), 0..80),
        code in ".{0,12}",
        digits_code in "[0-9]{6,8}",
        now in any::<i64>(),
        digits in 6u32..=8,
        skew in 0u32..=10,
    ) {
        let cfg = TotpConfig::new(digits, 30, skew, TotpAlgorithm::Sha1).unwrap();
        if let Ok(secret) = TotpSecret::from_bytes(secret) {
            let now = Timestamp::from_second(now.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second())).unwrap();
            let _ = cfg.verify(&secret, &code, now);
            let _ = cfg.verify(&secret, &digits_code, now);
        }
        let _ = TotpSecret::from_base32(&code);
        let mut rc = RecoveryCodes::default();
        prop_assert!(!rc.consume(&code));
    }
}
