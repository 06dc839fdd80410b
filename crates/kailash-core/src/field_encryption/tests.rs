use std::sync::Mutex;

use super::*;
use crate::clock::ManualClock;
use crate::envelope::Keyring;
use crate::state::StateKey;

const DAY: Duration = Duration::from_secs(86_400);

fn ring(lines: &[(&str, u8)]) -> Arc<Keyring> {
    let text: String = lines
        .iter()
        .map(|(id, b)| format!("{id} {}\n", data_encoding::BASE64.encode(&[*b; 32])))
        .collect();
    Arc::new(Keyring::parse(&text).unwrap())
}

fn setup() -> (Arc<ManualClock>, SharedState) {
    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    (clock, state)
}

fn opts() -> FieldKeysOptions {
    FieldKeysOptions::default()
        .rotation(Some(90 * DAY))
        .retire_after(Duration::from_secs(900))
}

#[tokio::test]
async fn seal_open_and_every_bad_input_is_a_typed_error() {
    let (_, state) = setup();
    let keys = FieldKeys::load(state, ring(&[("k1", 1)]), opts())
        .await
        .unwrap();
    let sealed = keys.seal(b"203.0.113.9", b"session:s1").await.unwrap();
    assert!(sealed.starts_with(SEALED_PREFIX));
    assert!(is_sealed(&sealed));
    assert!(keys.is_current(&sealed));
    assert_eq!(
        keys.open(&sealed, b"session:s1").await.unwrap(),
        b"203.0.113.9"
    );
    assert_eq!(
        keys.open(&sealed, b"session:s2").await,
        Err(FieldError::Tampered)
    );
    // Every single-character change is refused, never garbage.
    for i in 0..sealed.len() {
        let mut bad = sealed.clone().into_bytes();
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        let Ok(bad) = String::from_utf8(bad) else {
            continue;
        };
        let got = keys.open(&bad, b"session:s1").await;
        assert!(
            matches!(
                got,
                Err(FieldError::Malformed | FieldError::Tampered | FieldError::UnknownKey(_))
            ),
            "position {i}: {got:?}"
        );
    }
    for bad in [
        "",
        "kf1.",
        "kf1.0123456789abcdef",
        "kf1.0123456789abcdef.",
        "kf1.xyz.AAAA",
        "kf2.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "203.0.113.9",
    ] {
        assert_eq!(
            keys.open(bad, b"").await,
            Err(FieldError::Malformed),
            "{bad:?}"
        );
    }
    let huge = format!("{SEALED_PREFIX}{}", "A".repeat(MAX_SEALED_CHARS));
    assert_eq!(keys.open(&huge, b"").await, Err(FieldError::Malformed));
    let unknown = format!(
        "{SEALED_PREFIX}00000000000000ff.{}",
        sealed.rsplit('.').next().unwrap()
    );
    assert_eq!(
        keys.open(&unknown, b"session:s1").await,
        Err(FieldError::UnknownKey("00000000000000ff".into()))
    );
}

#[tokio::test]
async fn instances_share_the_set_and_see_each_others_rotation() {
    let (clock, state) = setup();
    let kek = ring(&[("k1", 1)]);
    let a = FieldKeys::load(state.clone(), kek.clone(), opts())
        .await
        .unwrap();
    let b = FieldKeys::load(state.clone(), kek.clone(), opts())
        .await
        .unwrap();
    assert_eq!(a.keys(), b.keys());
    let old = a.seal(b"v", b"c").await.unwrap();
    assert_eq!(b.open(&old, b"c").await.unwrap(), b"v");

    // Not due yet.
    clock.advance(89 * DAY);
    assert!(!a.rotate_if_due().await.unwrap());
    clock.advance(DAY);
    // Both due at once: exactly one rotation.
    let (ra, rb) = tokio::join!(a.rotate_if_due(), b.rotate_if_due());
    assert_eq!(u8::from(ra.unwrap()) + u8::from(rb.unwrap()), 1);
    a.reload().await.unwrap();
    b.reload().await.unwrap();
    assert_eq!(a.keys().len(), 2);
    assert_eq!(a.keys(), b.keys());
    assert!(a.keys()[0].superseded.is_some());

    // A value sealed after the rotation on one instance opens on another
    // that has not reloaded yet (unknown id → one reload).
    let c = FieldKeys::load(state.clone(), kek.clone(), opts())
        .await
        .unwrap();
    clock.advance(2 * Duration::from_secs(1));
    c.rotate().await.unwrap();
    let newest = c.seal(b"w", b"c").await.unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(a.open(&newest, b"c").await.unwrap(), b"w");
    assert!(!a.is_current(&old));
    assert_eq!(
        a.reseal(&old, b"c")
            .await
            .unwrap()
            .map(|s| a.is_current(&s)),
        Some(true)
    );
    assert_eq!(a.reseal(&newest, b"c").await.unwrap(), None);
}

#[tokio::test]
async fn a_wrong_or_missing_kek_refuses_to_start_and_kek_rotation_rewraps() {
    let (_, state) = setup();
    let keys = FieldKeys::load(state.clone(), ring(&[("k1", 1)]), opts())
        .await
        .unwrap();
    let sealed = keys.seal(b"secret", b"ctx").await.unwrap();

    let err = FieldKeys::load(state.clone(), ring(&[("k1", 9)]), opts())
        .await
        .unwrap_err();
    assert_eq!(err, FieldError::Envelope(EnvelopeError::Tampered));
    let err = FieldKeys::load(state.clone(), ring(&[("k2", 2)]), opts())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        FieldError::Envelope(EnvelopeError::UnknownKey("k1".into()))
    );

    // KEK rotation: k2 appended; the data keys move, values do not.
    let rotated = FieldKeys::load(state.clone(), ring(&[("k1", 1), ("k2", 2)]), opts())
        .await
        .unwrap();
    assert_eq!(rotated.rewrap().await.unwrap(), 1);
    assert_eq!(rotated.rewrap().await.unwrap(), 0);
    assert!(rotated.keys().iter().all(|k| k.kek_id == "k2"));
    let only_new = FieldKeys::load(state, ring(&[("k2", 2)]), opts())
        .await
        .unwrap();
    assert_eq!(only_new.open(&sealed, b"ctx").await.unwrap(), b"secret");
}

#[tokio::test]
async fn corrupt_key_set_records_are_refused() {
    let (_, state) = setup();
    let record = StateKey::global(NS, "default");
    for bad in [
        &b"not json"[..],
        br#"{"keys":[]}"#,
        br#"{"keys":[{"id":"a"}]}"#,
    ] {
        state
            .kv
            .set(&record, Bytes::copy_from_slice(bad), None)
            .await
            .unwrap();
        let err = FieldKeys::load(state.clone(), ring(&[("k1", 1)]), opts())
            .await
            .unwrap_err();
        assert!(matches!(err, FieldError::KeySet(_)), "{err:?}");
    }
    let err = FieldKeys::load(state, ring(&[("k1", 1)]), opts().name("Bad Name"))
        .await
        .unwrap_err();
    assert!(matches!(err, FieldError::KeySet(_)));
}

/// Records in a map: a target the maintenance can re-encrypt.
struct Records {
    values: Mutex<Vec<String>>,
    fail_once: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Reencrypt for Records {
    fn name(&self) -> &'static str {
        "records"
    }

    async fn reencrypt(&self, keys: &FieldKeys) -> Result<ReencryptStats, FieldError> {
        let mut stats = ReencryptStats::default();
        let values = self.values.lock().unwrap().clone();
        let mut out = Vec::new();
        for v in values {
            stats.scanned += 1;
            if self
                .fail_once
                .swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                stats.failed += 1;
                out.push(v);
                continue;
            }
            match keys.reseal(&v, b"rec").await? {
                Some(new) => {
                    stats.resealed += 1;
                    out.push(new);
                }
                None => out.push(v),
            }
        }
        *self.values.lock().unwrap() = out;
        Ok(stats)
    }
}

#[tokio::test]
async fn maintenance_rotates_reencrypts_and_retires_only_after_a_complete_pass() {
    let (clock, state) = setup();
    let keys = FieldKeys::load(state, ring(&[("k1", 1)]), opts())
        .await
        .unwrap();
    let mut values = Vec::new();
    for i in 0..5 {
        values.push(keys.seal(format!("v{i}").as_bytes(), b"rec").await.unwrap());
    }
    let records = Arc::new(Records {
        values: Mutex::new(values),
        fail_once: std::sync::atomic::AtomicBool::new(false),
    });
    let targets: Vec<Arc<dyn Reencrypt>> = vec![records.clone()];
    let first = keys.keys()[0].id.clone();

    // Nothing due: nothing happens.
    let report = keys.maintain(&targets).await.unwrap();
    assert!(!report.changed());

    clock.advance(91 * DAY);
    records
        .fail_once
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let report = keys.maintain(&targets).await.unwrap();
    assert!(report.rotated);
    assert_eq!(report.targets[0].1.resealed, 4);
    assert_eq!(report.targets[0].1.failed, 1);
    assert_eq!(report.retired, 0, "an incomplete pass retires nothing");

    // Complete pass, but inside the grace: the old key stays.
    let report = keys.maintain(&targets).await.unwrap();
    assert_eq!(report.targets[0].1.resealed, 1);
    assert_eq!(report.retired, 0);
    assert!(keys.keys().iter().any(|k| k.id == first));

    clock.advance(Duration::from_secs(901));
    let report = keys.maintain(&targets).await.unwrap();
    assert_eq!(report.retired, 1);
    assert_eq!(keys.keys().len(), 1);
    let values = records.values.lock().unwrap().clone();
    for (i, v) in values.iter().enumerate() {
        assert!(keys.is_current(v));
        assert_eq!(
            keys.open(v, b"rec").await.unwrap(),
            format!("v{i}").as_bytes()
        );
    }
}

#[tokio::test]
async fn encrypted_fields_serialize_as_sealed_text_and_check_their_shape() {
    let (_, state) = setup();
    let keys = FieldKeys::load(state, ring(&[("k1", 1)]), opts())
        .await
        .unwrap();
    #[derive(Serialize, Deserialize)]
    struct Row {
        name: Encrypted<String>,
        ip: Option<Encrypted<std::net::IpAddr>>,
    }
    let ip: std::net::IpAddr = "2001:db8::1".parse().unwrap();
    let row = Row {
        name: Encrypted::seal(&keys, &"Ada".to_owned(), b"row:1:name")
            .await
            .unwrap(),
        ip: Some(Encrypted::seal(&keys, &ip, b"row:1:ip").await.unwrap()),
    };
    let json = serde_json::to_string(&row).unwrap();
    assert!(!json.contains("Ada") && !json.contains("2001"));
    assert!(!format!("{:?}", row.name).contains("Ada"));
    let back: Row = serde_json::from_str(&json).unwrap();
    assert_eq!(back.name.open(&keys, b"row:1:name").await.unwrap(), "Ada");
    assert_eq!(back.ip.unwrap().open(&keys, b"row:1:ip").await.unwrap(), ip);
    // A sealed string opened as another type is a typed error.
    let as_ip: Encrypted<std::net::IpAddr> =
        Encrypted::from_sealed(back.name.as_str().into()).unwrap();
    assert_eq!(
        as_ip.open(&keys, b"row:1:name").await,
        Err(FieldError::Type)
    );
    assert!(serde_json::from_str::<Row>(r#"{"name":"Ada","ip":null}"#).is_err());
}

#[tokio::test]
async fn a_stale_copy_rereads_before_sealing_and_a_replaced_set_is_refused() {
    let (clock, state) = setup();
    let kek = ring(&[("k1", 1)]);
    let idle = FieldKeys::load(state.clone(), kek.clone(), opts())
        .await
        .unwrap();
    let busy = FieldKeys::load(state.clone(), kek.clone(), opts())
        .await
        .unwrap();
    busy.rotate().await.unwrap();
    let active = busy.keys().last().unwrap().id.clone();
    // Within a quarter of the grace the idle instance may still seal with
    // its copy; past it, it re-reads first and seals with the new key.
    clock.advance(Duration::from_secs(224));
    let early = idle.seal(b"v", b"c").await.unwrap();
    assert_ne!(key_id_of(&early), Some(active.as_str()));
    clock.advance(Duration::from_secs(1));
    let late = idle.seal(b"v", b"c").await.unwrap();
    assert_eq!(key_id_of(&late), Some(active.as_str()));

    // The record deleted and created afresh (an eviction, a restore): the
    // running instances refuse the foreign set and keep their keys.
    state
        .kv
        .delete(&StateKey::global(NS, "default"))
        .await
        .unwrap();
    let fresh = FieldKeys::load(state.clone(), kek.clone(), opts())
        .await
        .unwrap();
    assert_ne!(fresh.keys().last().unwrap().id, active);
    assert!(matches!(busy.reload().await, Err(FieldError::KeySet(_))));
    assert_eq!(busy.open(&late, b"c").await.unwrap(), b"v");
    // A grace below the minimum is refused.
    let err = FieldKeys::load(state, kek, opts().retire_after(Duration::from_secs(60)))
        .await
        .unwrap_err();
    assert!(matches!(err, FieldError::KeySet(_)));
}

#[tokio::test]
async fn a_full_set_does_not_stop_the_pass_and_the_first_round_sweeps() {
    let (clock, state) = setup();
    let keys = FieldKeys::load(state, ring(&[("k1", 1)]), opts().rotation(Some(DAY)))
        .await
        .unwrap();
    let records = Arc::new(Records {
        values: Mutex::new(vec![keys.seal(b"v", b"rec").await.unwrap()]),
        fail_once: std::sync::atomic::AtomicBool::new(false),
    });
    let targets: Vec<Arc<dyn Reencrypt>> = vec![records.clone()];
    // The first round of a process runs a pass even with one key.
    let report = keys.maintain(&targets).await.unwrap();
    assert_eq!(report.targets.len(), 1);
    assert!(keys.maintain(&targets).await.unwrap().targets.is_empty());
    for _ in 1..MAX_DATA_KEYS {
        keys.rotate().await.unwrap();
    }
    assert_eq!(keys.keys().len(), MAX_DATA_KEYS);
    assert!(keys.rotate().await.is_err());
    clock.advance(2 * DAY);
    // Rotation fails (full), the pass still runs, and after the grace the
    // retirement empties the set down to the active key.
    let report = keys.maintain(&targets).await.unwrap();
    assert!(!report.rotated);
    assert_eq!(report.targets[0].1.failed, 0);
    assert_eq!(report.retired, MAX_DATA_KEYS - 1);
    assert_eq!(keys.keys().len(), 1);
}
