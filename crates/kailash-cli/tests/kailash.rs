//! The `kailash` binary, run as an operator runs it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use kailash::auth::jwt::{Algorithm, SigningKey};

const AUTH: &str = "[auth]\nissuer = \"i\"\naudience = \"a\"\n";

/// A fresh directory under the system's temp dir.
fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kailash-cli-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn demo_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config/enterprise.toml")
}

/// Runs `kailash args...` with `stdin`, without the caller's KAILASH_*
/// overrides (so the test sees only the file and `env`).
fn kailash(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kailash"));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("KAILASH_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    // A command that refuses its arguments may exit before reading.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// `kailash config check <config> --data-dir <data>` with `env`.
fn config_check(config: &std::path::Path, data: &std::path::Path, env: &[(&str, &str)]) -> Output {
    kailash(
        &[
            "config",
            "check",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        "",
        env,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn passwd_hashes_with_the_default_policy() {
    let ok = kailash(&["passwd", "dave"], "Correct-Horse-Battery-9\n", &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    let hash = text(&ok.stdout);
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert_eq!(hash.lines().count(), 1);

    // Too short for the default policy (12 characters); --allow-weak hashes it anyway.
    let weak = kailash(&["passwd"], "Sh0rt!\n", &[]);
    assert_eq!(weak.status.code(), Some(1));
    assert!(
        text(&weak.stderr).contains("--allow-weak"),
        "{}",
        text(&weak.stderr)
    );
    assert!(weak.stdout.is_empty());
    let forced = kailash(&["passwd", "--allow-weak"], "Sh0rt!\n", &[]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));

    // The username rule uses the argument.
    let named = kailash(&["passwd", "dave"], "dave-Horse-Battery-9", &[]);
    assert_eq!(named.status.code(), Some(1), "{}", text(&named.stdout));

    // Unknown options are usage errors, as before.
    let bad = kailash(&["passwd", "--verbose"], "", &[]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn passwd_with_a_config_uses_that_deployments_policy() {
    let dir = temp_dir();
    let strict = dir.join("strict.toml");
    std::fs::write(
        &strict,
        format!("{AUTH}[auth.password_policy]\nmin_length = 30\n"),
    )
    .unwrap();
    let lax = dir.join("lax.toml");
    std::fs::write(
        &lax,
        format!("{AUTH}[auth.password_policy]\nmin_length = 4\nmin_character_classes = 1\n"),
    )
    .unwrap();
    let strict = strict.to_str().unwrap();
    let lax = lax.to_str().unwrap();

    // Good enough by default, too short for the strict deployment.
    let password = "Correct-Horse-Battery-9";
    assert_eq!(kailash(&["passwd"], password, &[]).status.code(), Some(0));
    let r = kailash(&["passwd", "--config", strict], password, &[]);
    assert_eq!(r.status.code(), Some(1));
    assert!(text(&r.stderr).contains("30"), "{}", text(&r.stderr));

    // Refused by default, fine for the lax deployment.
    assert_eq!(
        kailash(&["passwd"], "zqxwvtplk", &[]).status.code(),
        Some(1)
    );
    let r = kailash(&["passwd", "--config", lax], "zqxwvtplk", &[]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    assert!(text(&r.stdout).starts_with("$argon2id$"));

    // A config without [auth] has no policy; a broken one is named.
    let none = dir.join("none.toml");
    std::fs::write(&none, "").unwrap();
    let r = kailash(
        &["passwd", "--config", none.to_str().unwrap()],
        password,
        &[],
    );
    assert_eq!(r.status.code(), Some(2));
    assert!(text(&r.stderr).contains("[auth]"), "{}", text(&r.stderr));
    let r = kailash(
        &["passwd", "--config", "/nonexistent/k.toml"],
        password,
        &[],
    );
    assert_eq!(r.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn config_check_prints_the_demo_config_with_secrets_masked() {
    let data = temp_dir();
    let demo = demo_config();
    let r = config_check(
        &demo,
        &data,
        &[
            ("KAILASH_REDIS_URL", "redis://app:hunter2@127.0.0.1:6379/0"),
            ("KAILASH_LISTEN", "0.0.0.0:9443"),
        ],
    );
    let out = text(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    assert!(text(&r.stderr).contains("valid"), "{}", text(&r.stderr));
    // Effective values, overrides applied.
    assert!(out.contains("listen = \"0.0.0.0:9443\""), "{out}");
    assert!(out.contains("issuer = \"kailash-demo\""), "{out}");
    assert!(
        out.contains("redis_url = \"redis://<redacted>@127.0.0.1:6379/0\""),
        "{out}"
    );
    // Secrets masked: hashes, TOTP secrets, the Redis password.
    assert!(out.contains("password_hash = \"<redacted>\""), "{out}");
    assert!(out.contains("totp_secret = \"<redacted>\""), "{out}");
    for secret in ["$argon2id$", "JBSWY3DPEHPK3PXP", "hunter2"] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    // The output is itself a valid config.
    let again: kailash::config::GatewayConfig = toml::from_str(&out).unwrap();
    assert_eq!(again.users.len(), 6);
    // Checking wrote nothing into the data directory (no key, no audit file).
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    std::fs::remove_dir_all(&data).ok();
}

#[test]
fn config_check_refuses_broken_files_naming_the_problem() {
    let dir = temp_dir();
    let demo = std::fs::read_to_string(demo_config()).unwrap();
    let geo = "condition = \"user.location.country IN ['US', 'CA', 'GB']\"";
    // The line of the demo's geo condition (the demo config grows over time).
    let geo_line = 1 + demo.lines().position(|l| l.contains(geo)).unwrap();
    let geo_error = format!(":{geo_line}: access: policy `geo_restriction`");
    let cases = [
        ("syntax.toml", "[server\nlisten = 1\n".to_owned(), "line 1"),
        (
            "key.toml",
            "[gateway]\ncompresion = true\n".to_owned(),
            "key `gateway.compresion`",
        ),
        (
            "condition.toml",
            demo.replace(geo, "condition = \"user.location.country IN ['US', 'CA'\""),
            &geo_error,
        ),
        (
            "tls.toml",
            "[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n"
                .to_owned(),
            "/nonexistent/cert.pem",
        ),
        (
            "key-file.toml",
            format!("{AUTH}signing_key = \"/nonexistent/signing.pem\"\n"),
            "auth.signing_key",
        ),
        // Refused as the gateway's start refuses it, without echoing the
        // password that the malformed URL carries.
        (
            "redis-url.toml",
            "[state]\nredis_url = \"redis://:hunter2?x@cache\"\n".to_owned(),
            "key `state.redis_url`: invalid Redis URL",
        ),
    ];
    for (name, body, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let r = config_check(&path, &dir, &[]);
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{name}: {err}");
        assert!(r.stdout.is_empty(), "{name}");
        assert!(err.contains(path.to_str().unwrap()), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(!err.contains("hunter2"), "{name}: a secret leaked: {err}");
    }
    // An environment override is named as the origin.
    let ok = dir.join("ok.toml");
    std::fs::write(&ok, "").unwrap();
    let r = kailash(
        &["config", "check", ok.to_str().unwrap()],
        "",
        &[("KAILASH_SERVER__MAX_CONNECTIONS", "0")],
    );
    assert_eq!(r.status.code(), Some(1));
    assert!(
        text(&r.stderr).contains("environment variable KAILASH_SERVER__MAX_CONNECTIONS"),
        "{}",
        text(&r.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A rule over the session count checks with `[auth]` (the gateway then
/// registers `active_sessions`) and is refused without it, as at start.
#[test]
fn config_check_knows_the_session_count_signal_with_auth_only() {
    let dir = temp_dir();
    let rule = "[[alerting.rules]]\nname = \"sessions\"\ncondition = \"active_sessions > 50000\"\nseverity = \"warning\"\n";
    for (name, body, code) in [
        ("with-auth.toml", format!("{AUTH}{rule}"), 0),
        ("without-auth.toml", rule.to_owned(), 1),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let r = config_check(&path, &dir, &[]);
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(code), "{name}: {err}");
        if code == 1 {
            assert!(
                err.contains("no source reports the signal `active_sessions`"),
                "{name}: {err}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// With `[security.anomaly]` the anomaly signals are known and the geo
/// file is read as at start: a bad line is named, and without detection a
/// rule over its signal is refused.
#[test]
fn config_check_knows_the_anomaly_signals_and_reads_the_geo_file() {
    let dir = temp_dir();
    std::fs::write(dir.join("geo.txt"), "192.0.2.0/24 NL 52.37 4.90\n").unwrap();
    std::fs::write(
        dir.join("bad-geo.txt"),
        "192.0.2.0/24 NL\n10.0.0.0/8 Holland\n",
    )
    .unwrap();
    let rule = "[[alerting.rules]]\nname = \"anomaly\"\ncondition = \"security_anomalies > 0\"\nseverity = \"warning\"\n";
    let on =
        |geo: &str| format!("[security.anomaly]\nenabled = true\ngeoip_file = \"{geo}\"\n{rule}");
    for (name, body, code, expected) in [
        ("on.toml", on("geo.txt"), 0, ""),
        ("bad-geo.toml", on("bad-geo.txt"), 1, "bad-geo.txt: line 2:"),
        (
            "off.toml",
            rule.to_owned(),
            1,
            "no source reports the signal `security_anomalies`",
        ),
        (
            "alpha.toml",
            "[security.anomaly]\nalpha = 2.0\n".to_owned(),
            1,
            "security.anomaly.alpha",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let r = config_check(&path, &dir, &[]);
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(code), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn keys_rotate_writes_a_private_key_and_prints_the_auth_lines() {
    let dir = temp_dir();
    let data = dir.join("data");
    let config = dir.join("gateway.toml");
    std::fs::write(&config, AUTH).unwrap();
    let rotate = |config: &Path| {
        kailash(
            &[
                "keys",
                "rotate",
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
            "",
            &[],
        )
    };
    let first_line = |out: &str, key: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_owned()
    };

    // A deployment that never started: no key yet, so nothing previous.
    let r = rotate(&config);
    let out = text(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    assert_eq!(first_line(&out, "previous_signing_keys"), "[]");
    let first: String = toml::from_str::<toml::Table>(&out).unwrap()["signing_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(first.starts_with("keys/signing-rs256-"), "{first}");
    let path = data.join(&first);
    let pem = std::fs::read(&path).unwrap();
    SigningKey::from_pkcs8_pem(Algorithm::RS256, "k", &pem).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Put it in force with an older key already kept; rotate again (twice
    // in one second: never the same file).
    std::fs::write(data.join("keys/signing-rs256.pem"), &pem).unwrap();
    std::fs::write(
        &config,
        format!("{AUTH}{out}previous_signing_keys = [\"keys/signing-rs256.pem\"]\n")
            .replace("previous_signing_keys = []\n", ""),
    )
    .unwrap();
    let r = rotate(&config);
    let out = text(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    let second = toml::from_str::<toml::Table>(&out).unwrap();
    let second_key = second["signing_key"].as_str().unwrap();
    assert_ne!(second_key, first);
    assert_eq!(
        first_line(&out, "previous_signing_keys"),
        format!("[\"{first}\", \"keys/signing-rs256.pem\"]")
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        pem,
        "the old key file is untouched"
    );

    // The printed lines make a config the gateway accepts.
    std::fs::write(&config, format!("{AUTH}{out}")).unwrap();
    let r = config_check(&config, &data, &[]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));

    // ES256 deployments get an ES256 key; no [auth] is refused.
    std::fs::write(&config, format!("{AUTH}algorithm = \"ES256\"\n")).unwrap();
    let r = rotate(&config);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    let es: String = toml::from_str::<toml::Table>(&text(&r.stdout)).unwrap()["signing_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let pem = std::fs::read(data.join(&es)).unwrap();
    SigningKey::from_pkcs8_pem(Algorithm::ES256, "k", &pem).unwrap();
    std::fs::write(&config, "").unwrap();
    let r = rotate(&config);
    assert_eq!(r.status.code(), Some(1));
    assert!(text(&r.stderr).contains("[auth]"));
    std::fs::remove_dir_all(&dir).ok();
}

fn demo_cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config/access-tests.toml")
}

#[test]
fn access_test_runs_the_demo_cases() {
    let config = demo_config();
    let out = kailash(
        &[
            "access",
            "test",
            "--config",
            config.to_str().unwrap(),
            demo_cases().to_str().unwrap(),
        ],
        "",
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("ok    case 1 (`business users view reports`): allow"),
        "{stdout}"
    );
    assert!(stdout.contains("passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

/// Writes `cases` to a file and runs `kailash access test` on the demo config.
fn access_test(cases: &str) -> Output {
    let dir = temp_dir();
    let file = dir.join("cases.toml");
    std::fs::write(&file, cases).unwrap();
    let config = demo_config();
    let out = kailash(
        &[
            "access",
            "test",
            "--config",
            config.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        "",
        &[],
    );
    std::fs::remove_dir_all(&dir).ok();
    out
}

#[test]
fn access_test_exits_1_on_a_mismatch_and_shows_why() {
    let out = access_test(
        "time = 2026-12-07T10:00:00Z\n\
         [[case]]\nname = \"right\"\nuser = \"bob\"\npermission = \"report:view\"\nexpect = \"allow\"\n\
         [[case]]\nname = \"wrong\"\nuser = \"dave\"\npermission = \"data:read\"\n\
         resource = { department = \"engineering\", classification = \"secret\" }\nexpect = \"allow\"\n\
         [[case]]\nname = \"wrong reason\"\nuser = \"bob\"\npermission = \"report:view\"\nexpect = \"allow\"\nreason = \"because\"\n",
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("ok    case 1 (`right`)"), "{stdout}");
    assert!(
        stdout.contains("FAIL  case 2 (`wrong`): expected allow, got deny"),
        "{stdout}"
    );
    // The explanation of the failure: the clause that failed, with values.
    assert!(
        stdout
            .contains("user.clearance >= data.classification: fails ('confidential' >= 'secret')"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL  case 3 (`wrong reason`)"), "{stdout}");
    assert!(stdout.contains("1 passed, 2 failed, 3 total"), "{stdout}");
    assert!(text(&out.stderr).contains("2 of 3 cases did not match"));
}

#[test]
fn access_test_refuses_unusable_cases_with_exit_2() {
    let case = |body: &str| format!("[[case]]\nname = \"c\"\n{body}");
    for (cases, expected) in [
        (
            case("user = \"mallory\"\npermission = \"report:view\"\nexpect = \"allow\"\n"),
            "case 1 (`c`): unknown user `mallory`",
        ),
        (
            case("user = \"bob\"\npermission = \"report:veiw\"\nexpect = \"deny\"\n"),
            "case 1 (`c`): unknown permission `report:veiw`",
        ),
        (
            case("user = \"bob\"\npermission = \"report\"\nexpect = \"deny\"\n"),
            "case 1 (`c`): `permission`: must be a permission",
        ),
        (
            case(
                "user = \"bob\"\npermission = \"data:read\"\nresource = \"engineering\"\nexpect = \"deny\"\n",
            ),
            "case 1 (`c`): `resource`: must be an object",
        ),
        (
            case("user = \"bob\"\npermission = \"report:view\"\nexpect = \"yes\"\n"),
            "case 1 (`c`): `expect` must be",
        ),
        (
            case(
                "user = \"bob\"\npermission = \"report:view\"\nexpect = \"allow\"\ntime = \"noon\"\n",
            ),
            "case 1 (`c`): `time`: must be an RFC 3339 timestamp",
        ),
        ("[[case]\nbroken".to_owned(), "not a valid TOML file"),
        (
            "title = \"x\"\n".to_owned(),
            "unknown top-level key `title`",
        ),
        ("".to_owned(), "no [[case]]"),
    ] {
        let out = access_test(&cases);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{cases}: {stderr}{}",
            text(&out.stdout)
        );
        assert!(stderr.contains(expected), "{cases}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A missing file and a config without [access] are exit 2 too.
    let config = demo_config();
    let out = kailash(
        &[
            "access",
            "test",
            "--config",
            config.to_str().unwrap(),
            "/nonexistent/cases.toml",
        ],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let dir = temp_dir();
    let bare = dir.join("gateway.toml");
    std::fs::write(&bare, "").unwrap();
    let out = kailash(
        &[
            "access",
            "explain",
            "--config",
            bare.to_str().unwrap(),
            "--user",
            "bob",
            "--permission",
            "a:b",
        ],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no [access] section"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn access_explain_prints_text_or_json() {
    let config = demo_config();
    let config = config.to_str().unwrap();
    let out = kailash(
        &[
            "access",
            "explain",
            "--config",
            config,
            "--user",
            "frank",
            "--permission",
            "data:read",
            "--resource",
            r#"{"department":"engineering","classification":"confidential"}"#,
        ],
        "",
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with("user `frank` (tenant acme; roles data_scientist)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deny: policy `geo_restriction` not satisfied"),
        "{stdout}"
    );
    assert!(stdout.contains("policy `data_access`: holds"), "{stdout}");
    assert!(
        stdout.contains(
            "user.location.country IN ['US', 'CA', 'GB']: fails ('FR' IN ['US', 'CA', 'GB'])"
        ),
        "{stdout}"
    );

    let out = kailash(
        &[
            "access",
            "explain",
            "--config",
            config,
            "--user",
            "Alice",
            "--permission",
            "system:configure",
            "--time",
            "2026-12-07T10:00:00Z",
            "--json",
        ],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(r#""allowed":true"#), "{stdout}");
    assert!(
        stdout.contains(
            r#""reason":"role `admin` grants `system:configure`; policy `time_based` holds""#
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""at":"2026-12-07T10:00:00Z""#),
        "{stdout}"
    );

    // Unknown users and bad options are exit 2, naming what is wrong.
    let out = kailash(
        &[
            "access",
            "explain",
            "--config",
            config,
            "--user",
            "mallory",
            "--permission",
            "report:view",
        ],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown user `mallory`"));
    let out = kailash(
        &[
            "access",
            "explain",
            "--config",
            config,
            "--user",
            "bob",
            "--permission",
            "report:view",
            "--resource",
            "[1]",
        ],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--resource"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn audit_verify_accepts_a_whole_chain_and_names_the_first_broken_entry() {
    use kailash::audit::{
        AuditDecision, AuditEvent, AuditSink, JsonLinesAuditSink, JsonLinesOptions,
    };
    let dir = temp_dir();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = JsonLinesOptions {
            rotate_bytes: 600,
            ..JsonLinesOptions::default()
        };
        let sink = JsonLinesAuditSink::open_with(dir.join("audit.jsonl"), options).unwrap();
        for i in 0..12 {
            sink.record(
                AuditEvent::new("auth.login", AuditDecision::Success).actor(format!("u{i}")),
            )
            .await
            .unwrap();
        }
    });
    // Closed files are compressed by a background thread: wait for it.
    let plain_closed = || {
        std::fs::read_dir(&dir).unwrap().any(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with("audit-") && !name.ends_with(".gz")
        })
    };
    for _ in 0..500 {
        if !plain_closed() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let dir_arg = dir.to_string_lossy().into_owned();
    let ok = kailash(&["audit", "verify", "--data-dir", &dir_arg], "", &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).starts_with("ok: 12 entries in "),
        "{}",
        text(&ok.stdout)
    );

    // The same files named one by one, oldest first; without the first one
    // the chain is reported as starting later, not as broken.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("audit-")
        })
        .collect();
    files.sort();
    files.push(dir.join("audit.jsonl"));
    assert!(files.len() >= 3, "{files:?}");
    let names: Vec<String> = files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["audit", "verify"];
    args.extend(names[1..].iter().map(String::as_str));
    let later = kailash(&args, "", &[]);
    assert_eq!(later.status.code(), Some(0), "{}", text(&later.stderr));
    assert!(
        text(&later.stdout).contains("earlier files expired"),
        "{}",
        text(&later.stdout)
    );

    // An altered entry in the active file.
    let active = dir.join("audit.jsonl");
    let content = std::fs::read_to_string(&active).unwrap();
    std::fs::write(&active, content.replacen("\"u11\"", "\"u99\"", 1)).unwrap();
    let broken = kailash(&["audit", "verify", "--data-dir", &dir_arg], "", &[]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        text(&broken.stderr).contains("hash mismatch"),
        "{}",
        text(&broken.stderr)
    );

    // A missing middle file.
    std::fs::write(&active, content).unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    let gap = kailash(&["audit", "verify", "--data-dir", &dir_arg], "", &[]);
    assert_eq!(gap.status.code(), Some(1));
    assert!(
        text(&gap.stderr).contains("a file is missing"),
        "{}",
        text(&gap.stderr)
    );

    let none = kailash(
        &["audit", "verify", "--data-dir", "/nonexistent-kailash"],
        "",
        &[],
    );
    assert_eq!(none.status.code(), Some(2), "{}", text(&none.stderr));
    std::fs::remove_dir_all(dir).ok();
}

/// `audit verify --database-url-env` against a real PostgreSQL
/// (`KAILASH_TEST_DATABASE_URL`; each run makes its own database).
#[test]
fn audit_verify_checks_the_trail_in_postgres_and_names_a_direct_update() {
    use kailash::audit::{AuditDecision, AuditEvent, AuditSink};
    use kailash_postgres::audit::{CheckpointKey, PgAuditOptions, PgAuditSink};
    use kailash_postgres::{Database, DbSettings};
    let Ok(admin) = std::env::var("KAILASH_TEST_DATABASE_URL") else {
        eprintln!("skipped: KAILASH_TEST_DATABASE_URL is not set");
        return;
    };
    let dir = temp_dir();
    let name = format!(
        "kailash_cli_{}_{}",
        std::process::id(),
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .rsplit('-')
            .next()
            .unwrap()
    );
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let server = &base[..base.rfind('/').unwrap()];
    let url = format!("{server}/{name}?{query}");
    let key = CheckpointKey::generate().unwrap();
    std::fs::write(dir.join("public.pem"), key.public_key_pem()).unwrap();
    std::fs::write(
        dir.join("other.pem"),
        CheckpointKey::generate().unwrap().public_key_pem(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin_db = rt.block_on(async {
        let admin_db = Database::connect(&DbSettings::new(&admin)).await.unwrap();
        let conn = admin_db.get().await.unwrap();
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let db = Database::connect(&DbSettings::new(&url)).await.unwrap();
        let mut options = PgAuditOptions::new(dir.join("spool/audit.jsonl"));
        options.checkpoint_key = Some(key);
        options.checkpoint_every = 5;
        let sink = PgAuditSink::open(db, options).await.unwrap();
        for i in 0..12 {
            sink.record(
                AuditEvent::new("auth.login", AuditDecision::Success).actor(format!("u{i}")),
            )
            .await
            .unwrap();
        }
        admin_db
    });
    let public = dir.join("public.pem").to_string_lossy().into_owned();
    let other = dir.join("other.pem").to_string_lossy().into_owned();
    let env = [("AUDIT_DB", url.as_str())];
    let ok = kailash(
        &[
            "audit",
            "verify",
            "--database-url-env",
            "AUDIT_DB",
            "--public-key",
            &public,
        ],
        "",
        &env,
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    let out = text(&ok.stdout);
    assert!(
        out.starts_with("ok: 12 entries in the database from the first entry, up to entry 12;"),
        "{out}"
    );
    assert!(out.contains("signatures verified"), "{out}");

    // Checkpoints signed by a key the operator does not trust.
    let forged = kailash(
        &[
            "audit",
            "verify",
            "--database-url-env",
            "AUDIT_DB",
            "--public-key",
            &other,
        ],
        "",
        &env,
    );
    assert_eq!(forged.status.code(), Some(1));
    assert!(
        text(&forged.stderr).contains("is not signed by a trusted key"),
        "{}",
        text(&forged.stderr)
    );

    // An UPDATE made directly in the table (the append-only trigger
    // switched off first, as the table's owner could).
    rt.block_on(async {
        let db = Database::connect(&DbSettings::new(&url)).await.unwrap();
        db.get()
            .await
            .unwrap()
            .batch_execute(
                "ALTER TABLE kailash_audit DISABLE TRIGGER kailash_audit_append_only; \
                 UPDATE kailash_audit SET line = replace(line, '\"u\":\"u6\"', '\"u\":\"u7\"') WHERE seq = 7",
            )
            .await
            .unwrap();
    });
    let bad = kailash(
        &["audit", "verify", "--database-url-env", "AUDIT_DB"],
        "",
        &env,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        text(&bad.stderr).trim(),
        "error: the audit trail is broken: entry 7 was changed"
    );
    // No URL, no password in any message; a missing variable is exit 2.
    let missing = kailash(&["audit", "verify", "--database-url-env", "NOPE"], "", &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("NOPE is not set"));
    rt.block_on(async {
        let conn = admin_db.get().await.unwrap();
        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    });
    std::fs::remove_dir_all(&dir).ok();
}
