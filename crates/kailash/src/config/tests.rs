//! The loader's tests: defaults, unknown keys, invalid values, overrides.

use super::*;

fn load(text: &str, vars: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
    GatewayConfig::from_toml_with_env(
        text,
        "test.toml",
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn empty_file_gives_secure_defaults() {
    let c = load("", &[]).unwrap();
    assert_eq!(c, GatewayConfig::default());
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8000");
    assert!(c.cors.origins.is_empty());
    assert!(c.server.trusted_proxies.is_empty());
}

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    let e = load("[gateway]\ncompresion = true\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("test.toml:2: key `gateway.compresion`"),
        "{e}"
    );
    let e = load("[nope]\n", &[]).unwrap_err().to_string();
    assert!(e.contains("`nope`"), "{e}");
}

#[test]
fn the_cache_section_is_checked_key_by_key() {
    let config = load("", &[]).expect("defaults");
    assert!(!config.cache.enabled, "off unless asked for");
    assert!(config.cache.layer().is_none());
    for (text, key) in [
        (
            "[cache]\nmax_bytes = 0\n",
            "key `cache.max_bytes`: must be at least 1",
        ),
        (
            "[cache]\nmax_entries = 0\n",
            "key `cache.max_entries`: must be at least 1",
        ),
        (
            "[cache]\nmax_entry_bytes = 0\n",
            "key `cache.max_entry_bytes`",
        ),
        (
            "[cache]\nmax_bytes = 100\nmax_entry_bytes = 101\n",
            "key `cache.max_entry_bytes`: must be between 1 and cache.max_bytes (100)",
        ),
        ("[cache]\nenable = true\n", "`enable`"),
        ("[cache]\nmax_bytes = -1\n", "key `cache.max_bytes`"),
    ] {
        let e = load(text, &[]).unwrap_err().to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
    let config = load(
        "[cache]\nenabled = true\nmax_bytes = 4096\nmax_entry_bytes = 1024\nmax_entries = 8\n",
        &[],
    )
    .expect("a valid [cache]");
    let layer = config.cache.layer().expect("enabled");
    assert_eq!(layer.store().limits().max_entries, 8);
    assert_eq!(layer.store().limits().max_entry_bytes, 1024);
}

#[test]
fn invalid_values_name_the_key() {
    let e = load("[server]\nmax_connections = \"many\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `server.max_connections`"), "{e}");
    let e = load("[gateway]\nrequest_timeout = \"30 seconds\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `gateway.request_timeout`"), "{e}");
    let e = load("[server]\nmax_header_bytes = 100\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("key `server.max_header_bytes`: must be at least 8192"),
        "{e}"
    );
    let e = load("[cors]\norigins = [\"*\"]\nallow_credentials = true\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `cors.origins`"), "{e}");
    let e = load("[rate_limit.per_ip]\nrate = 0\nper = \"1s\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `rate_limit.per_ip`"), "{e}");
    let e = load("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `server.trusted_proxies"), "{e}");
    let cluster = "[state]\nredis_url = \"redis+cluster://a:7000,b:7000\"\n";
    let e = load(&format!("{cluster}key_prefix = \"app{{1}}:\"\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `state.key_prefix`"), "{e}");
    assert!(load(cluster, &[]).is_ok());
    let e = load(&format!("{cluster}redis_tls_ca = \"/ca.pem\"\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `state.redis_tls_ca`"), "{e}");
    let tls_cluster =
        "[state]\nredis_url = \"rediss+cluster://a:7000\"\nredis_tls_ca = \"/ca.pem\"\n";
    assert!(load(tls_cluster, &[]).is_ok());
    let tls_sentinel =
        "[state]\nredis_url = \"rediss+sentinel://s:26379/m\"\nredis_tls_ca = \"/ca.pem\"\n";
    assert!(load(tls_sentinel, &[]).is_ok());
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let e = load("[server\n", &[]).unwrap_err().to_string();
    assert!(e.starts_with("test.toml:"), "{e}");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn environment_overrides_win_and_are_named_in_errors() {
    let c = load(
        "[server]\nlisten = \"127.0.0.1:8000\"\n",
        &[
            ("KAILASH_LISTEN", "0.0.0.0:9000"),
            ("KAILASH_GATEWAY__COMPRESSION", "false"),
            ("KAILASH_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
            ("KAILASH_TEST_REDIS_URL", "ignored: not a config override"),
        ],
    )
    .unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:9000");
    assert!(!c.gateway.compression);
    assert_eq!(c.server.trusted_proxies.len(), 1);

    let e = load("", &[("KAILASH_SERVER__MAX_CONECTIONS", "5")])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "environment variable KAILASH_SERVER__MAX_CONECTIONS: key `server.max_conections`"
        ),
        "{e}"
    );
    let e = load("", &[("KAILASH_LISTEN", "not-an-address")])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("environment variable KAILASH_LISTEN: key `server.listen`"),
        "{e}"
    );
}

const AUTH: &str = "[auth]\nissuer = \"i\"\naudience = \"a\"\n";
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$fP2XnF/Jdfk2pTqw48EqiA$CROXYRm9f+vQm4BHYy4wAwAlCl6JWZqyYsOgumK7zCw";

#[test]
fn access_roles_must_cover_the_users_and_need_auth() {
    let access = "[[access.roles]]\nname = \"reader\"\npermissions = [\"report:view\"]\n";
    let user = |role: &str| {
        format!("[[users]]\nusername = \"u\"\nroles = [\"{role}\"]\npassword_hash = \"{HASH}\"\n")
    };
    assert!(load(&format!("{AUTH}{}{access}", user("reader")), &[]).is_ok());
    let e = load(&format!("{AUTH}{}{access}", user("writer")), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `users`") && e.contains("`writer`"), "{e}");
    let e = load(access, &[]).unwrap_err().to_string();
    assert!(e.contains("key `access`") && e.contains("[auth]"), "{e}");
    let e = load(
        &format!("{AUTH}[[access.roles]]\nname = \"r\"\npermissions = [\"Report:View\"]\n"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("access.roles[0].permissions"), "{e}");
}

#[test]
fn auth_errors_name_the_key_under_auth() {
    let e = load(&format!("{AUTH}algorithm = \"HS256\"\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("key `auth.algorithm`: must be RS256, ES256 or EdDSA"),
        "{e}"
    );
    let e = load(&format!("{AUTH}lockout_duration = \"0s\"\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `auth.lockout_duration`"), "{e}");
    let e = load(
        AUTH,
        &[(
            "KAILASH_AUTH__LOGIN_RATE_PER_IP",
            "{ rate = 0, per = \"1s\" }",
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(
            "environment variable KAILASH_AUTH__LOGIN_RATE_PER_IP: key `auth.login_rate_per_ip`"
        ),
        "{e}"
    );
}

#[test]
fn ldap_section_is_checked_against_access_and_tenants() {
    let ldap = "[auth.ldap]\nurl = \"ldaps://dc.corp.example\"\nbind_dn = \"cn=svc\"\nbind_password_env = \"LDAP_PW\"\nuser_base_dn = \"ou=people\"\n";
    assert!(load(&format!("{AUTH}{ldap}"), &[]).is_ok());
    let e = load(
        &format!("{AUTH}{}", ldap.replace("ldaps://", "ldap://")),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("key `auth.ldap.url`") && e.contains("clear"),
        "{e}"
    );
    let e = load(&format!("{AUTH}{ldap}user_filter = \"(uid=*)\"\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `auth.ldap.user_filter`"), "{e}");
    let e = load(&format!("{AUTH}{ldap}bind_pasword_file = \"x\"\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bind_pasword_file"), "{e}");
    let access = "[[access.roles]]\nname = \"reader\"\npermissions = [\"report:view\"]\n";
    let roles =
        "default_roles = [\"reader\"]\n[auth.ldap.group_roles]\n\"cn=finance\" = [\"finance\"]\n";
    let e = load(&format!("{AUTH}{ldap}{roles}{access}"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("key `auth.ldap`") && e.contains("`finance`"),
        "{e}"
    );
    let tenant = "[[tenants]]\nid = \"acme\"\n";
    let e = load(&format!("{AUTH}{ldap}{tenant}"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `auth.ldap`") && e.contains("tenant"), "{e}");
    let e = load(&format!("{AUTH}{ldap}tenant = \"globex\"\n{tenant}"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `auth.ldap.tenant`"), "{e}");
    assert!(load(&format!("{AUTH}{ldap}tenant = \"acme\"\n{tenant}"), &[]).is_ok());
}

/// `[auth.saml]` parses in every build (a build without the `saml` feature
/// refuses it at start, not as an unknown key) and is checked like
/// `[auth.ldap]`: its values, its roles against `[access]`, its tenant.
#[test]
fn saml_section_is_checked_against_access_and_tenants() {
    let saml = "[auth.saml]\nentity_id = \"https://api.example.com/saml\"\nacs_url = \"https://api.example.com/auth/saml/acs\"\nidp_entity_id = \"https://idp.example.com\"\nidp_sso_url = \"https://idp.example.com/sso\"\nidp_certificate_file = \"idp.pem\"\n";
    assert!(load(&format!("{AUTH}{saml}"), &[]).is_ok());
    let e = load(
        &format!("{AUTH}{}", saml.replace("auth/saml/acs", "acs")),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("saml.acs_url"), "{e}");
    let e = load(&format!("{AUTH}{saml}want_assertion_signed = false\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("want_assertion_signed"), "{e}");
    let access = "[[access.roles]]\nname = \"reader\"\npermissions = [\"report:view\"]\n";
    let roles = "default_roles = [\"reader\"]\n[auth.saml.group_roles]\nFinance = [\"finance\"]\n";
    let e = load(&format!("{AUTH}{saml}{roles}{access}"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("key `auth.saml`") && e.contains("`finance`"),
        "{e}"
    );
    let tenant = "[[tenants]]\nid = \"acme\"\n";
    let e = load(&format!("{AUTH}{saml}{tenant}"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `auth.saml`") && e.contains("tenant"), "{e}");
    let e = load(&format!("{AUTH}{saml}tenant = \"globex\"\n{tenant}"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `auth.saml.tenant`"), "{e}");
    assert!(load(&format!("{AUTH}{saml}tenant = \"acme\"\n{tenant}"), &[]).is_ok());
}

#[test]
fn oidc_providers_are_checked_against_access_and_tenants() {
    let oidc = "[[auth.oidc]]\nname = \"okta\"\npreset = \"okta\"\nissuer = \"https://dev-1.okta.com/oauth2/default\"\nclient_id = \"c\"\nredirect_uri = \"https://api.example.com/auth/oidc/okta/callback\"\n";
    assert!(load(&format!("{AUTH}{oidc}"), &[]).is_ok());
    let e = load(&format!("{AUTH}{oidc}{oidc}"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("key `auth.oidc.name`") && e.contains("twice"),
        "{e}"
    );
    let e = load(
        &format!("{AUTH}{}", oidc.replace("oidc/okta/callback", "callback")),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("key `auth.oidc.redirect_uri`"), "{e}");
    let e = load(&format!("{AUTH}{oidc}clent_id = \"x\"\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("clent_id"), "{e}");
    let access = "[[access.roles]]\nname = \"reader\"\npermissions = [\"report:view\"]\n";
    let roles = "default_roles = [\"reader\"]\n[auth.oidc.group_roles]\nFinance = [\"finance\"]\n";
    let e = load(&format!("{AUTH}{oidc}{roles}{access}"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("key `auth.oidc`") && e.contains("`finance`"),
        "{e}"
    );
    let tenant = "[[tenants]]\nid = \"acme\"\n";
    let e = load(&format!("{AUTH}{oidc}{tenant}"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `auth.oidc`") && e.contains("tenant"), "{e}");
    let e = load(
        &format!("{AUTH}{oidc}tenant_domains = {{ \"acme.com\" = \"globex\" }}\n{tenant}"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("key `auth.oidc.tenant`") && e.contains("globex"),
        "{e}"
    );
    assert!(
        load(
            &format!("{AUTH}{oidc}tenant_domains = {{ \"acme.com\" = \"acme\" }}\n{tenant}"),
            &[]
        )
        .is_ok()
    );
}

/// The reference deployment's commented `[[auth.oidc]]` examples are valid
/// as they stand, once uncommented.
#[test]
fn the_demo_configs_oidc_examples_are_valid() {
    let demo = include_str!("../../../../examples/config/enterprise.toml");
    let start = demo.find("# [[auth.oidc]]").expect("examples");
    let block: String = demo[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim_start())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(block.matches("[[auth.oidc]]").count(), 3, "{block}");
    let config = load(&format!("{demo}\n{block}"), &[]).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = config
        .auth
        .as_ref()
        .unwrap()
        .oidc
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["google", "microsoft", "okta"]);
}

#[test]
fn with_tenants_every_user_has_one() {
    let tenant = "[[tenants]]\nid = \"acme\"\n";
    let user = format!("[[users]]\nusername = \"u\"\npassword_hash = \"{HASH}\"\n");
    let e = load(&format!("{AUTH}{user}{tenant}"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("user `u` has no tenant"), "{e}");
    let with = user.replace("username = \"u\"", "username = \"u\"\ntenant = \"acme\"");
    assert!(load(&format!("{AUTH}{with}{tenant}"), &[]).is_ok());
}

#[test]
fn audit_storage_keys_are_checked_and_become_sink_options() {
    let c = load(
        "[audit]\nfsync = \"batch\"\nrotate_bytes = 1000\nmax_total_bytes = 5000\nretention_days = 30\n",
        &[],
    )
    .unwrap();
    let o = c.audit.sink_options();
    assert_eq!(o.fsync, kailash_core::audit::FsyncPolicy::Batch);
    assert_eq!(o.hard_total_bytes, Some(5500), "soft + 10 % by default");
    assert_eq!(o.retention, std::time::Duration::from_secs(30 * 86_400));
    for (text, key) in [
        ("[audit]\nhard_total_bytes = 10\n", "audit.hard_total_bytes"),
        (
            "[audit]\nmax_total_bytes = 5000\nhard_total_bytes = 10\nrotate_bytes = 100\n",
            "audit.hard_total_bytes",
        ),
        ("[audit]\nmax_total_bytes = 100\n", "audit.max_total_bytes"),
        ("[audit]\nrotate_bytes = 0\n", "audit.rotate_bytes"),
        ("[audit]\nfsync = \"sometimes\"\n", "audit.fsync"),
        ("[audit]\nsink = \"postgres\"\n", "audit.sink"),
        ("[audit]\nsink = \"mongo\"\n", "audit.sink"),
        (
            "[audit]\ncheckpoint_key_file = \"k.pem\"\n",
            "audit.checkpoint_key_file",
        ),
        ("[audit]\ncheckpoint_every = 0\n", "audit.checkpoint_every"),
        (
            "[audit]\npersonal_data_keyring_file = \"ring\"\n",
            "audit.personal_data_keyring_file",
        ),
        (
            "[audit]\nsink = \"postgres\"\npersonal_data_keyring_env = \"R\"\npersonal_data_keyring_file = \"ring\"\n[database.primary]\nurl_env = \"A\"\n",
            "audit.personal_data_keyring_env",
        ),
        (
            "[database.primary]\npool_size = 4\n",
            "database.primary.url_env",
        ),
        (
            "[database.primary]\nurl_env = \"A\"\nurl_file = \"b\"\n",
            "database.primary.url_env",
        ),
        (
            "[database.primary]\nurl_env = \"A\"\npool_size = 0\n",
            "database.primary.pool_size",
        ),
        (
            "[database.replica]\nurl_env = \"B\"\n",
            "database.replica.url_env",
        ),
        (
            "[database.primary]\nurl_env = \"A\"\n[database.analytics]\nurl_env = \"B\"\npool_recycle = \"0s\"\n",
            "database.analytics.pool_recycle",
        ),
        (
            "[database.primary]\nurl_env = \"A\"\nmax_overflow = 5000\n",
            "database.primary.max_overflow",
        ),
        (
            "[database]\nmax_replica_lag = \"0s\"\n",
            "database.max_replica_lag",
        ),
        (
            "[database.primary]\nurl = \"postgres://u:secret@h/db\"\n",
            "database.primary",
        ),
    ] {
        let e = load(text, &[]).unwrap_err().to_string();
        assert!(e.contains(key), "{text}: {e}");
        assert!(!e.contains("secret"), "{text}: {e}");
    }
    let c = load(
        "[database.primary]\nurl_env = \"KAILASH_DATABASE_URL\"\n[audit]\nsink = \"postgres\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.audit.sink, super::AuditSinkKind::Postgres);
    assert_eq!(c.database.primary.unwrap().pool_size, 16);
}

#[test]
fn the_health_section_loads_and_refuses_nonsense() {
    let c = load(
        r#"
        [health]
        check_interval = "10s"
        timeout = "2s"
        failure_threshold = 4
        recovery_threshold = 1
        memory_threshold = 0.8
        disk_threshold = 0.95
        max_active_sessions = 250000
        external_apis = [{ name = "payments_api", url = "https://payments.example.com/health?key=s3cret" }]
        "#,
        &[],
    )
    .unwrap();
    assert_eq!(
        c.health.check_interval.0,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(
        (c.health.failure_threshold, c.health.recovery_threshold),
        (4, 1)
    );
    assert_eq!(c.health.external_apis[0].name, "payments_api");
    assert_eq!(c.health.max_active_sessions, 250_000);
    // The URL (a key in its query) stays out of Debug output.
    assert!(!format!("{c:?}").contains("s3cret"));
    assert_eq!(load("", &[]).unwrap().health, HealthConfig::default());

    for (text, key, message) in [
        (
            "check_interval = \"0s\"",
            "health.check_interval",
            "must be positive",
        ),
        ("timeout = \"0s\"", "health.timeout", "must be positive"),
        ("timeout = \"1m\"", "health.timeout", "must not be longer"),
        (
            "failure_threshold = 0",
            "health.failure_threshold",
            "between 1 and 100",
        ),
        (
            "recovery_threshold = 1000",
            "health.recovery_threshold",
            "between 1 and 100",
        ),
        (
            "memory_threshold = 1.5",
            "health.memory_threshold",
            "fraction",
        ),
        ("disk_threshold = 0.0", "health.disk_threshold", "fraction"),
        (
            "workflow_failure_threshold = nan",
            "health.workflow_failure_threshold",
            "fraction",
        ),
        (
            "external_apis = [{ name = \"Payments API\", url = \"https://a.example\" }]",
            "health.external_apis[0].name",
            "a-z, 0-9",
        ),
        (
            "max_active_sessions = 0",
            "health.max_active_sessions",
            "at least 1",
        ),
        ("max_active_sessions = -5", "health.max_active_sessions", ""),
        (
            "external_apis = [{ name = \"active_sessions\", url = \"https://a.example\" }]",
            "health.external_apis[0].name",
            "already a check's name",
        ),
        (
            "external_apis = [{ name = \"state\", url = \"https://a.example\" }]",
            "health.external_apis[0].name",
            "already a check's name",
        ),
        (
            "external_apis = [{ name = \"a\", url = \"https://a.example\" }, { name = \"a\", url = \"https://b.example\" }]",
            "health.external_apis[1].name",
            "already a check's name",
        ),
        (
            "external_apis = [{ name = \"a\", url = \"ftp://a.example\" }]",
            "health.external_apis[0].url",
            "http(s) URL",
        ),
        (
            "external_apis = [{ name = \"a\", url = \"https://a.example\", method = \"POST\" }]",
            "health.external_apis",
            "method",
        ),
    ] {
        let e = load(&format!("[health]\n{text}\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("key `{key}")), "{text}: {e}");
        assert!(e.contains(message), "{text}: {e}");
    }
}

#[test]
fn the_billing_section_loads_and_refuses_nonsense() {
    let tenants = r#"
[auth]
issuer = "i"
audience = "a"

[[tenants]]
id = "acme"
"#;
    let c = load(
        &format!("{tenants}\n[billing]\nwebhook_url = \"https://billing.example.com/usage\"\nsecret_env = \"BILLING_SECRET\"\n"),
        &[],
    )
    .unwrap();
    let b = c.billing.unwrap();
    assert_eq!(b.interval.0, std::time::Duration::from_secs(60));
    assert_eq!(b.settle.0, std::time::Duration::from_secs(600));
    assert_eq!(b.timeout.0, std::time::Duration::from_secs(10));
    for (section, key, message) in [
        (
            "webhook_url = \"http://billing.example.com/\"\nsecret_env = \"S\"",
            "billing.webhook_url",
            "https://",
        ),
        (
            "webhook_url = \"not a url\"\nsecret_env = \"S\"",
            "billing.webhook_url",
            "absolute",
        ),
        (
            "webhook_url = \"https://b.example\"",
            "billing",
            "exactly one of `secret_env` and `secret_file`",
        ),
        (
            "webhook_url = \"https://b.example\"\nsecret_env = \"S\"\nsecret_file = \"s\"",
            "billing",
            "not both",
        ),
        (
            "webhook_url = \"https://b.example\"\nsecret_env = \"S\"\ninterval = \"0s\"",
            "billing.interval",
            "must be from",
        ),
        (
            "webhook_url = \"https://b.example\"\nsecret_env = \"S\"\nsettle = \"1d\"",
            "billing.settle",
            "must be from",
        ),
        (
            "webhook_url = \"https://b.example\"\nsecret_env = \"S\"\ntimeout = \"10m\"",
            "billing.timeout",
            "must be from",
        ),
    ] {
        let e = load(&format!("{tenants}\n[billing]\n{section}\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("key `{key}")), "{section}: {e}");
        assert!(e.contains(message), "{section}: {e}");
    }
    // Usage is per tenant: no tenants, no billing.
    let e = load(
        "[billing]\nwebhook_url = \"https://b.example\"\nsecret_env = \"S\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("needs [[tenants]]"), "{e}");
    // An unknown key is named.
    let e = load(
        &format!("{tenants}\n[billing]\nwebhook_url = \"https://b.example\"\nsecret_env = \"S\"\nretries = 3\n"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("retries"), "{e}");
}

#[test]
fn worker_threads_size_the_runtime_and_nonsense_is_refused() {
    assert_eq!(load("", &[]).unwrap().server.worker_threads, None);
    let c = load("[server]\nworker_threads = 3\n", &[]).unwrap();
    assert_eq!(c.server.worker_threads, Some(3));
    let runtime = c.server.runtime().unwrap();
    assert_eq!(runtime.metrics().num_workers(), 3);
    // The environment overrides the file (the Kubernetes ConfigMap stays
    // one file for every pod size).
    let c = load(
        "[server]\nworker_threads = 3\n",
        &[("KAILASH_SERVER__WORKER_THREADS", "1")],
    )
    .unwrap();
    assert_eq!(c.server.runtime().unwrap().metrics().num_workers(), 1);
    for text in ["worker_threads = 0", "worker_threads = 1025"] {
        let e = load(&format!("[server]\n{text}\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `server.worker_threads"), "{text}: {e}");
        assert!(e.contains("from 1 to 1024"), "{text}: {e}");
    }
    let e = load("[server]\nworker_threads = -2\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("worker_threads"), "{e}");
}

#[test]
fn the_outbound_pool_is_sized_by_the_file_or_the_environment_and_nonsense_is_refused() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.outbound.pool().max(), 100);
    assert_eq!(c.outbound.pool().idle(), std::time::Duration::from_secs(90));
    let c = load(
        "[outbound]\nconnection_pool_size = 8\nidle_timeout = \"0s\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.outbound.pool().max(), 8);
    assert!(c.outbound.pool().idle().is_zero());
    let c = load(
        "[outbound]\nconnection_pool_size = 8\n",
        &[("KAILASH_OUTBOUND__CONNECTION_POOL_SIZE", "3")],
    )
    .unwrap();
    assert_eq!(c.outbound.pool().max(), 3);
    for (text, key, message) in [
        (
            "connection_pool_size = 0",
            "outbound.connection_pool_size",
            "from 1 to 10000",
        ),
        (
            "connection_pool_size = 10001",
            "outbound.connection_pool_size",
            "from 1 to 10000",
        ),
        (
            "idle_timeout = \"2h\"",
            "outbound.idle_timeout",
            "at most 1h",
        ),
    ] {
        let e = load(&format!("[outbound]\n{text}\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("key `{key}")), "{text}: {e}");
        assert!(e.contains(message), "{text}: {e}");
    }
    let e = load("[outbound]\npool_size = 3\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("pool_size"), "{e}");
}

#[test]
fn the_alerting_section_loads_and_bad_rules_and_channels_name_their_line() {
    let text = r#"
[alerting]
interval = "10s"

[[alerting.rules]]
name = "workflow_failures"
condition = "workflow_failure_rate > 0.05"
duration = "5m"
severity = "critical"

[[alerting.rules]]
name = "state_down"
condition = "state_health == false"
severity = "warning"
summary = "The state backend does not answer"

[[alerting.channels]]
name = "oncall"
type = "pagerduty"
severity_levels = ["critical"]
routing_key_file = "/run/secrets/pd"

[[alerting.channels]]
name = "mail"
type = "email"
host = "smtp.example.com"
username = "alerts"
password_env = "SMTP_PASSWORD"
from = "Alerts <alerts@example.com>"
to = ["oncall@example.com"]
"#;
    let c = load(text, &[]).unwrap();
    assert_eq!(c.alerting.rules.len(), 2);
    assert_eq!(
        c.alerting.rules[0].rule().unwrap().duration().as_secs(),
        300
    );
    assert_eq!(
        c.alerting.channels[0].kind,
        alerting::ChannelType::Pagerduty
    );
    assert_eq!(
        load("", &[]).unwrap().alerting,
        alerting::AlertingConfig::default()
    );

    // Each refusal names the key and the line it is on.
    for (from, to, key, line, message) in [
        (
            "workflow_failure_rate > 0.05",
            "workflow_failure_rate >> 0.05",
            "alerting.rules[0].condition",
            7,
            "column 24",
        ),
        (
            "\"warning\"",
            "\"urgent\"",
            "alerting.rules[1].severity",
            14,
            "unknown variant",
        ),
        (
            "name = \"state_down\"",
            "name = \"workflow_failures\"",
            "alerting.rules[1].name",
            12,
            "a second rule",
        ),
        (
            "routing_key_file = \"/run/secrets/pd\"",
            "webhook_url_env = \"X\"",
            "alerting.channels[0].webhook_url_env",
            21,
            "not a setting of a `pagerduty`",
        ),
        (
            "to = [\"oncall@example.com\"]",
            "to = []",
            "alerting.channels[1].to",
            30,
            "at least one recipient",
        ),
        (
            "password_env = \"SMTP_PASSWORD\"",
            "password_file = \"/a\"\npassword_env = \"B\"",
            "alerting.channels[1].password_env",
            29,
            "not both",
        ),
        (
            "interval = \"10s\"",
            "interval = \"10s\"\nrepeat_interval = \"5s\"",
            "alerting.repeat_interval",
            4,
            "not be shorter",
        ),
    ] {
        let bad = text.replacen(from, to, 1);
        let e = load(&bad, &[]).unwrap_err().to_string();
        assert!(e.contains(&format!("key `{key}`")), "{e}");
        assert!(e.contains(message), "{e}");
        assert!(
            e.starts_with(&format!("test.toml:{line}: ")),
            "wanted line {line}: {e}"
        );
    }
    // A password is never sent in the clear.
    let bad = text.replacen("host = ", "security = \"none\"\nhost = ", 1);
    let e = load(&bad, &[]).unwrap_err().to_string();
    assert!(
        e.contains("alerting.channels[1].security") && e.contains("never sent without TLS"),
        "{e}"
    );
}

#[test]
fn line_of_key_walks_tables_arrays_and_inline_values() {
    let text =
        "[server]\nlisten = \"127.0.0.1:1\"\n\n[[a.b]]\nx = 1\n\n[[a.b]]\nx = 2\ny = [1, 2]\n";
    assert_eq!(load::line_of_key(text, "server.listen"), Some(2));
    assert_eq!(load::line_of_key(text, "a.b[1].x"), Some(8));
    assert_eq!(load::line_of_key(text, "a.b[1].y"), Some(9));
    // A key not in the file: the closest enclosing part that is.
    let enclosing = load::line_of_key(text, "a.b[0].missing").unwrap();
    assert!((4..=5).contains(&enclosing), "{enclosing}");
    assert_eq!(load::line_of_key(text, "nope"), None);
    assert_eq!(load::line_of_key("not = [toml", "not"), None);
}
