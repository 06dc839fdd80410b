//! Password hashing, PHC parsing and policy.

use kailash_auth::password::{
    HashParams, MAX_PASSWORD_BYTES, Password, PasswordError, PasswordHash, PasswordHasher,
    PasswordPolicy, PolicyViolation,
};

fn fast() -> PasswordHasher {
    PasswordHasher::new(HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap()
}

#[test]
fn hash_verify_round_trip_and_wrong_password() {
    let h = fast();
    let pw = Password::new("Tr0ub4dor&3-horse");
    let hash = h.hash(&pw).unwrap();
    assert!(hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
    assert!(h.verify(&pw, &hash));
    assert!(!h.verify(&Password::new("Tr0ub4dor&3-horsE"), &hash));
    assert!(!h.verify(&Password::new(""), &hash));
    // Stored and reloaded.
    let reloaded = PasswordHash::parse(hash.as_str()).unwrap();
    assert!(h.verify(&pw, &reloaded));
    // Two hashes of the same password differ (random salt).
    assert_ne!(h.hash(&pw).unwrap().as_str(), hash.as_str());
}

#[test]
fn default_params_are_owasp_and_work() {
    let h = PasswordHasher::default();
    assert_eq!(
        h.params(),
        HashParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1
        }
    );
    let pw = Password::new("default params password");
    let hash = h.hash(&pw).unwrap();
    assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(h.verify(&pw, &hash));
    assert!(!h.needs_rehash(&hash));
}

#[test]
fn phc_parse_rejects_other_algorithms_and_garbage() {
    let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
    assert!(PasswordHash::parse(bcrypt).is_err());
    let argon2i =
        "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA";
    assert_eq!(
        PasswordHash::parse(argon2i),
        Err(PasswordError::UnsupportedAlgorithm)
    );
    let argon2d =
        "$argon2d$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA";
    assert_eq!(
        PasswordHash::parse(argon2d),
        Err(PasswordError::UnsupportedAlgorithm)
    );
    for garbage in [
        "",
        "garbage",
        "$argon2id$",
        "$argon2id$v=19$m=64,t=1,p=1$",
        "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ",
        "$argon2id$v=19$m=zz,t=1,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
        // Memory far beyond the accepted bound (a tampered hash).
        "$argon2id$v=19$m=4000000000,t=1,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
    ] {
        assert!(PasswordHash::parse(garbage).is_err(), "{garbage:?}");
    }
    let ok =
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA";
    assert!(PasswordHash::parse(ok).is_ok());
    // serde validates too.
    assert!(serde_json::from_str::<PasswordHash>(&format!("\"{bcrypt}\"")).is_err());
    let via_serde: PasswordHash = serde_json::from_str(&format!("\"{ok}\"")).unwrap();
    assert_eq!(
        serde_json::to_string(&via_serde).unwrap(),
        format!("\"{ok}\"")
    );
}

#[test]
fn needs_rehash_when_stored_params_are_weaker() {
    let weak = fast();
    let hash = weak.hash(&Password::new("some password")).unwrap();
    assert!(!weak.needs_rehash(&hash));
    let stronger = PasswordHasher::new(HashParams {
        memory_kib: 128,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    assert!(stronger.needs_rehash(&hash));
    let more_iterations = PasswordHasher::new(HashParams {
        memory_kib: 64,
        iterations: 2,
        parallelism: 1,
    })
    .unwrap();
    assert!(more_iterations.needs_rehash(&hash));
    // Older params still verify.
    assert!(stronger.verify(&Password::new("some password"), &hash));
}

#[test]
fn invalid_params_refused() {
    for p in [
        HashParams {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1,
        },
        HashParams {
            memory_kib: 64,
            iterations: 0,
            parallelism: 1,
        },
        HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 0,
        },
        HashParams {
            memory_kib: u32::MAX,
            iterations: 1,
            parallelism: 1,
        },
    ] {
        assert!(PasswordHasher::new(p).is_err(), "{p:?}");
    }
    let cfg: HashParams = serde_json::from_str(r#"{"memory_kib": 64}"#).unwrap();
    assert_eq!(cfg.iterations, 2);
    assert!(serde_json::from_str::<HashParams>(r#"{"memory": 64}"#).is_err());
}

#[test]
fn oversized_password_refused_before_hashing() {
    let h = fast();
    let huge = Password::new("a".repeat(MAX_PASSWORD_BYTES + 1));
    assert_eq!(
        h.hash(&huge).unwrap_err(),
        PasswordError::TooLong {
            max: MAX_PASSWORD_BYTES
        }
    );
    let hash = h
        .hash(&Password::new("a".repeat(MAX_PASSWORD_BYTES)))
        .unwrap();
    assert!(h.verify(&Password::new("a".repeat(MAX_PASSWORD_BYTES)), &hash));
    assert!(!h.verify(&huge, &hash));
    assert!(!h.verify_dummy(&huge));
}

#[test]
fn verify_dummy_returns_false() {
    let h = fast();
    assert!(!h.verify_dummy(&Password::new("anything")));
    assert!(!h.verify_dummy(&Password::new("")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_variants() {
    let h = fast();
    let pw = Password::new("async password 1!");
    let hash = h.hash_async(&pw).await.unwrap();
    assert!(h.verify_async(&pw, &hash).await.unwrap());
    assert!(!h.verify_async(&Password::new("nope"), &hash).await.unwrap());
    assert!(!h.verify_dummy_async(&pw).await.unwrap());
    let huge = Password::new("x".repeat(MAX_PASSWORD_BYTES + 1));
    assert!(h.hash_async(&huge).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiter_refuses_work_beyond_its_slots_and_frees_them() {
    use std::time::Duration;

    use kailash_auth::password::HashLimiter;

    // Real (OWASP) parameters, so the verifications overlap.
    let h = PasswordHasher::default().with_limiter(HashLimiter::new(2, Duration::ZERO));
    let pw = Password::new("async password 1!");
    let hash = h.hash_async(&pw).await.unwrap();
    // Many at once on 2 slots with no queue: some are refused, none hashed
    // beyond the bound, and every refusal says when to retry.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (h, pw, hash) = (h.clone(), pw.clone(), hash.clone());
            tokio::spawn(async move { h.verify_async(&pw, &hash).await })
        })
        .collect();
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(matched) => assert!(matched),
            Err(PasswordError::Busy { retry_after }) => {
                assert!(retry_after >= Duration::from_secs(1));
                busy += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(busy > 0, "16 verifications on 2 slots without a queue");
    // The slots are free again.
    assert!(h.verify_async(&pw, &hash).await.unwrap());
    assert!(!h.verify_dummy_async(&pw).await.unwrap());
    // A queue lets the excess wait instead.
    let queued =
        PasswordHasher::default().with_limiter(HashLimiter::new(1, Duration::from_secs(30)));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (h, pw, hash) = (queued.clone(), pw.clone(), hash.clone());
            tokio::spawn(async move { h.verify_async(&pw, &hash).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap());
    }
}

#[test]
fn debug_output_never_contains_secrets() {
    let pw = Password::new("hunter2-super-secret");
    assert_eq!(format!("{pw:?}"), "Password(***)");
    let hash = fast().hash(&pw).unwrap();
    let dbg = format!("{hash:?}");
    let salt_and_hash: Vec<&str> = hash.as_str().rsplitn(3, '$').take(2).collect();
    for part in salt_and_hash {
        assert!(!dbg.contains(part), "{dbg}");
    }
    assert!(!dbg.contains("hunter2"));
    let err = fast().hash(&Password::new("z".repeat(5000))).unwrap_err();
    assert!(!err.to_string().contains("zzz"));
}

fn violations(policy: &PasswordPolicy, pw: &str, user: &str) -> Vec<PolicyViolation> {
    match policy.validate(&Password::new(pw), user) {
        Ok(()) => Vec::new(),
        Err(e) => {
            // (Very short inputs such as "short" can occur in the rule text.)
            assert!(pw.len() < 8 || !e.to_string().contains(pw));
            e.violations
        }
    }
}

#[test]
fn policy_accepts_a_good_password() {
    let p = PasswordPolicy::default();
    assert_eq!(violations(&p, "Blue-Kettle-42x", "alice"), vec![]);
    // Three classes suffice.
    assert_eq!(violations(&p, "bluekettle42X", "alice"), vec![]);
}

#[test]
fn policy_lists_every_violation() {
    let p = PasswordPolicy::default();
    assert_eq!(
        violations(&p, "short", "bob"),
        vec![
            PolicyViolation::TooShort { min: 12 },
            PolicyViolation::TooFewCharacterClasses {
                required: 3,
                found: 1
            },
        ]
    );
    assert_eq!(
        violations(&p, " xALICEx-2024", "alice"),
        vec![
            PolicyViolation::ContainsUsername,
            PolicyViolation::SurroundingWhitespace
        ]
    );
    assert_eq!(
        violations(&p, "Password1234", "carol"),
        vec![PolicyViolation::Common]
    );
    assert_eq!(
        violations(&p, &"aB3!".repeat(33), "carol"),
        vec![PolicyViolation::TooLong { max: 128 }]
    );
    assert_eq!(
        violations(&p, "abcdefghijklmnop ", "carol"),
        vec![
            PolicyViolation::TooFewCharacterClasses {
                required: 3,
                found: 2
            },
            PolicyViolation::SurroundingWhitespace
        ]
    );
    // Oversized input is refused without further work.
    assert_eq!(
        violations(&p, &"a".repeat(MAX_PASSWORD_BYTES + 1), "carol"),
        vec![PolicyViolation::TooLong { max: 128 }]
    );
}

#[test]
fn policy_config_deserializes_strictly() {
    let p: PasswordPolicy = serde_json::from_str(
        r#"{"min_length": 8, "min_character_classes": 2, "reject_common": false}"#,
    )
    .unwrap();
    assert_eq!(p.min_length, 8);
    assert_eq!(p.max_length, 128);
    assert!(!p.reject_common);
    assert_eq!(violations(&p, "password1234", "x"), vec![]);
    let d: PasswordPolicy = serde_json::from_str("{}").unwrap();
    assert_eq!(d, PasswordPolicy::default());
    assert!(serde_json::from_str::<PasswordPolicy>(r#"{"min_len": 8}"#).is_err());
    assert!(serde_json::from_str::<PasswordPolicy>(r#"{"min_character_classes": 5}"#).is_err());
    assert!(
        serde_json::from_str::<PasswordPolicy>(r#"{"min_length": 20, "max_length": 10}"#).is_err()
    );
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(s in ".{0,200}", tail in "[a-zA-Z0-9=,$+/]{0,120}") {
        let _ = PasswordHash::parse(&s);
        let _ = PasswordHash::parse(&format!("$argon2id$v=19${tail}"));
        let _ = PasswordHash::parse(&format!("$argon2id${tail}"));
    }

    #[test]
    fn policy_never_panics(pw in ".{0,200}", user in ".{0,20}") {
        let _ = PasswordPolicy::default().validate(&Password::new(pw), &user);
    }
}
