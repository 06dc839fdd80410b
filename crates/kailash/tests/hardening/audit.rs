//! The audit trail under load (issue 12): a request whose audit entry is
//! refused fails closed with 503, every answered request has its entry
//! written, and the files stay under their cap.

use std::path::{Path, PathBuf};

use kailash::GatewayBuilder;
use kailash::audit::verify_dir;
use kailash::config::GatewayConfig;

use crate::support::demo::*;
use crate::support::{Resp, Running, get, request, start_gateway};

/// The demo gateway on `data_dir`, rate limits lifted, with `overrides`.
async fn gateway_on(data_dir: &Path, overrides: &[(&str, &str)]) -> Running {
    let mut vars: Vec<(String, String)> = vec![
        ("KAILASH_RATE_LIMIT__PER_IP__RATE".into(), "1000000".into()),
        ("KAILASH_RATE_LIMIT__PER_IP__BURST".into(), "1000000".into()),
        // Readiness follows the audit storage within a round or two.
        ("KAILASH_HEALTH__CHECK_INTERVAL".into(), "50ms".into()),
        ("KAILASH_HEALTH__TIMEOUT".into(), "50ms".into()),
        ("KAILASH_HEALTH__FAILURE_THRESHOLD".into(), "1".into()),
    ];
    vars.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let config = GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", vars)
        .expect("config");
    let gateway = GatewayBuilder::from_config_with_backends(&config, data_dir)
        .await
        .expect("backends")
        .build()
        .expect("gateway");
    start_gateway(gateway).await
}

/// `/health/ready` once it answers 503 (the background checks run every
/// 50 ms here), or its last answer after 200 rounds.
async fn ready_once_failing(gw: &Running) -> Resp {
    let mut ready = get(gw.addr, "/health/ready").await;
    for _ in 0..200 {
        if ready.status == 503 {
            break;
        }
        // Waits for the next background round, not for an expiry.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        ready = get(gw.addr, "/health/ready").await;
    }
    ready
}

/// A request with a bad bearer token: refused (401) and audited as `auth.token`.
async fn bad_token(gw: &Running) -> Resp {
    request(
        gw.addr,
        "GET /api/tenant/usage HTTP/1.1\nHost: x\nAuthorization: Bearer not-a-token",
        b"",
    )
    .await
}

/// Sends bad-token requests until one is refused with 503 (the hard cap);
/// returns how many were answered (401) before.
async fn fill(gw: &Running) -> usize {
    let mut answered = 0;
    for _ in 0..400 {
        let r = bad_token(gw).await;
        match r.status {
            401 => answered += 1,
            503 => {
                r.assert_problem(503);
                return answered;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    panic!("the hard cap was never reached");
}

/// Entries of `action` in the verified chain of `dir`.
fn entries(dir: &Path, action: &str) -> usize {
    // Closed files are compressed by a background thread: let it finish.
    let settled = || {
        std::fs::read_dir(dir).unwrap().all(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            !name.starts_with("audit-") || name.ends_with(".gz")
        })
    };
    for _ in 0..500 {
        if settled() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let report = verify_dir(&dir.join("audit.jsonl")).expect("the chain verifies");
    assert!(report.from_genesis);
    let needle = format!("\"a\":\"{action}\"");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("audit") {
            continue;
        }
        let mut text = String::new();
        let file = std::fs::File::open(&path).unwrap();
        if name.ends_with(".gz") {
            use std::io::Read;
            flate2::read::MultiGzDecoder::new(file)
                .read_to_string(&mut text)
                .unwrap();
        } else {
            use std::io::Read;
            std::io::BufReader::new(file)
                .read_to_string(&mut text)
                .unwrap();
        }
        n += text.lines().filter(|l| l.contains(&needle)).count();
    }
    n
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn past_the_hard_cap_audited_requests_fail_closed_with_503() {
    let dir = temp_dir();
    let gw = gateway_on(
        &dir,
        &[
            ("KAILASH_AUDIT__ROTATE_BYTES", "2048"),
            ("KAILASH_AUDIT__MAX_TOTAL_BYTES", "4096"),
            ("KAILASH_AUDIT__HARD_TOTAL_BYTES", "8192"),
        ],
    )
    .await;
    // A token from before the cap, for an access decision after it.
    let (bob, _) = tokens(&login(&gw, "bob", "Bob-Demo-Passw0rd!").await);
    let mut answered = 0;
    // Compressing closed files can make room again (the cap counts bytes
    // on disk), so each check follows a fresh fill, and is retried.
    let mut checked = [false; 3];
    for _ in 0..10 {
        answered += fill(&gw).await;
        if !checked[0] {
            // Readiness reports the audit storage (from the background checks).
            let ready = ready_once_failing(&gw).await;
            checked[0] = ready.status == 503 && ready.text().contains("audit");
        }
        if !checked[1] {
            // An access decision (bob may not disable accounts: 403
            // normally) is refused: nothing is decided unaudited.
            let r = post(
                &gw,
                "/auth/users/dave/disable",
                serde_json::json!({}),
                Some(&bob),
            )
            .await;
            match r.status {
                403 => answered += 0,
                _ => checked[1] = r.assert_problem(503)["status"] == 503,
            }
        }
        if !checked[2] {
            let r = login(&gw, "bob", "Bob-Demo-Passw0rd!").await;
            checked[2] = r.status == 503;
            if checked[2] {
                r.assert_problem(503);
            }
        }
        if checked.iter().all(|c| *c) {
            break;
        }
    }
    assert_eq!(
        checked, [true; 3],
        "readiness, an access decision, a login refused"
    );
    gw.stop().await;
    // Every answered request has its entry; no refused one has.
    assert_eq!(entries(&dir, "auth.token"), answered);
    assert!(dir_bytes(&dir) <= 8192 + 2048, "{} bytes", dir_bytes(&dir));
    std::fs::remove_dir_all(dir).ok();
}

/// A full disk (a 64 KiB tmpfs as the data directory): 503 once the write
/// fails with ENOSPC, never an answer whose entry is not written. Needs
/// root to mount; skipped (and said) otherwise.
#[tokio::test]
async fn a_full_disk_fails_audited_requests_closed_with_503() {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        // Under CI the full-disk case must run, never pass by skipping.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: cannot mount a tmpfs for the full-disk test (needs root)"
        );
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        std::fs::remove_dir_all(dir).ok();
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            std::fs::remove_dir_all(&self.0).ok();
        }
    }
    let _unmount = Unmount(dir.clone());
    let gw = gateway_on(&dir, &[("KAILASH_AUDIT__MIN_FREE_BYTES", "16384")]).await;
    let mut answered = 0;
    let mut refused = false;
    for _ in 0..2000 {
        let r = bad_token(&gw).await;
        match r.status {
            401 => answered += 1,
            503 => {
                r.assert_problem(503);
                refused = true;
                break;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(refused, "the disk never filled");
    let ready = ready_once_failing(&gw).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    gw.stop().await;
    assert_eq!(entries(&dir, "auth.token"), answered);
}

/// Soak (`KAILASH_TEST_SLOW=1`, well under a minute): concurrent clients
/// against small files and a cap. The directory stays under the hard cap
/// plus one file, every answered request is in the chain exactly once, and
/// every request is either answered or refused with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_rotation_and_cap_account_for_every_event() {
    if std::env::var_os("KAILASH_TEST_SLOW").is_none() {
        eprintln!("skipped: set KAILASH_TEST_SLOW=1 for the audit soak");
        return;
    }
    let dir = temp_dir();
    let gw = gateway_on(
        &dir,
        &[
            ("KAILASH_AUDIT__ROTATE_BYTES", "32768"),
            ("KAILASH_AUDIT__MAX_TOTAL_BYTES", "131072"),
            ("KAILASH_AUDIT__HARD_TOTAL_BYTES", "196608"),
        ],
    )
    .await;
    let gw = std::sync::Arc::new(gw);
    let started = std::time::Instant::now();
    let mut clients = Vec::new();
    for _ in 0..16 {
        let gw = gw.clone();
        clients.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0usize, 0usize);
            while started.elapsed() < std::time::Duration::from_secs(20) {
                match bad_token(&gw).await.status {
                    401 => ok += 1,
                    503 => refused += 1,
                    other => panic!("unexpected {other}"),
                }
            }
            (ok, refused)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for c in clients {
        let (o, r) = c.await.unwrap();
        ok += o;
        refused += r;
    }
    let gw = std::sync::Arc::try_unwrap(gw).unwrap_or_else(|_| panic!("clients done"));
    gw.stop().await;
    eprintln!("soak: {ok} answered, {refused} refused with 503");
    assert!(ok > 1000, "too few requests to mean anything: {ok}");
    assert_eq!(
        entries(&dir, "auth.token"),
        ok,
        "events written == decisions answered"
    );
    let bytes = dir_bytes(&dir);
    assert!(bytes <= 196_608 + 32_768, "{bytes} bytes on disk");
    std::fs::remove_dir_all(dir).ok();
}
