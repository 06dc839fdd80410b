//! Directory users in the reference deployment: `[auth.ldap]` against the
//! test OpenLDAP (`.ci/ldap/slapd.sh`; `KAILASH_TEST_LDAPS_URL`,
//! `KAILASH_TEST_LDAP_CA`), signing in through `POST /auth/login` beside
//! DEMO.md's configured users, with roles from groups and the ABAC
//! policies reading the directory's attributes.

use super::*;

const LDAP_SECTION: &str = r#"
[auth.ldap]
url = "URL"
ca_file = "CA"
bind_dn = "cn=kailash-svc,dc=kailash,dc=test"
bind_password_file = "PWFILE"
user_base_dn = "ou=people,dc=kailash,dc=test"
group_base_dn = "ou=groups,dc=kailash,dc=test"
default_roles = ["business_user"]
tenant_attribute = "o"
timeout = "2s"

[auth.ldap.attributes]
email = "mail"
department = "departmentNumber"
clearance = "employeeType"
"location.country" = "l"

[auth.ldap.group_roles]
"cn=kailash-admins,ou=groups,dc=kailash,dc=test" = ["admin"]
"cn=data-science,ou=groups,dc=kailash,dc=test" = ["data_scientist"]
"#;

/// `POST /auth/login`, whatever it answers.
async fn try_login(d: &Demo, user: &str, password: &str) -> Resp {
    let body = json!({ "username": user, "password": password }).to_string();
    let head = format!(
        "POST /auth/login HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    request(d.gw.addr, &head, body.as_bytes()).await
}

#[tokio::test]
async fn directory_users_sign_in_and_policies_read_their_attributes() {
    let (Ok(url), Ok(ca)) = (
        std::env::var("KAILASH_TEST_LDAPS_URL"),
        std::env::var("KAILASH_TEST_LDAP_CA"),
    ) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but KAILASH_TEST_LDAPS_URL is not set"
        );
        eprintln!("skipped: KAILASH_TEST_LDAPS_URL and KAILASH_TEST_LDAP_CA are not set");
        return;
    };
    let secrets = temp_dir();
    std::fs::create_dir_all(&secrets).unwrap();
    let pw_file = secrets.join("ldap-bind-password");
    std::fs::write(&pw_file, "svc-secret\n").unwrap();
    let section = LDAP_SECTION
        .replace("URL", &url)
        .replace("CA", &ca)
        .replace("PWFILE", &pw_file.to_string_lossy());
    let text = format!("{}\n{section}", demo_config_text());
    for overrides in backends() {
        let d = start_from(&text, "enterprise.toml", &overrides).await;

        // lena: data-science group → data_scientist; engineering,
        // confidential, GB from the directory.
        let lena = login(&d, "lena", "Lena-Directory-Pass-1", None).await;
        let r = call(&d, "GET", "/api/data/acme-eng-conf", &lena, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        // The department policy sees "engineering", not "sales".
        call(&d, "GET", "/api/data/acme-sales-int", &lena, None)
            .await
            .assert_problem(403);
        // The clearance policy sees "confidential".
        call(&d, "GET", "/api/data/acme-eng-secret", &lena, None)
            .await
            .assert_problem(403);

        // paula: no group, so business_user only.
        let paula = login(&d, "paula", "Paula-Directory-Pass-1", None).await;
        call(&d, "GET", "/api/data/acme-eng-conf", &paula, None)
            .await
            .assert_problem(403);
        assert_eq!(
            call(&d, "GET", "/api/reports", &paula, None).await.status,
            200
        );

        // omar is an admin through his group: the deployment's
        // mfa_required_roles applies to directory users too, so his
        // password alone gets an enrolment-only token, not a session.
        let r = try_login(&d, "omar", "Omar-Directory-Pass-1").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.json().get("access_token").is_none(), "{}", r.text());
        assert!(r.json().get("enrolment_token").is_some(), "{}", r.text());

        // Wrong and injected credentials: the usual 401, nothing signed in.
        for (user, password) in [
            ("lena", "wrong"),
            ("lena", ""),
            ("*", "Lena-Directory-Pass-1"),
            ("lena)(uid=*", "Lena-Directory-Pass-1"),
        ] {
            let r = try_login(&d, user, password).await;
            assert_eq!(r.assert_problem(401)["status"], 401, "{user:?}");
        }

        // DEMO.md's configured users are unaffected.
        let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;
        assert_eq!(
            call(&d, "GET", "/api/data/acme-eng-conf", &dave, None)
                .await
                .status,
            200
        );
        d.stop().await;
    }

    // A directory that cannot be reached: the gateway starts (the other
    // users work), and its users get 503, never another identity.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = text.replace(&url, &format!("ldaps://127.0.0.1:{closed}"));
    let d = start_from(&down, "enterprise.toml", &[]).await;
    let r = try_login(&d, "lena", "Lena-Directory-Pass-1").await;
    r.assert_problem(503);
    login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;
    d.stop().await;

    // A service password the directory refuses stops the start.
    std::fs::write(&pw_file, "not-the-password").unwrap();
    let config =
        GatewayConfig::from_toml_with_env(&text, "enterprise.toml", Vec::<(String, String)>::new())
            .unwrap();
    let e = match GatewayBuilder::from_config_with_backends(&config, &temp_dir()).await {
        Ok(_) => panic!("a refused service account must stop the start"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("refused the service account"), "{e}");
    assert!(!e.contains("not-the-password"), "{e}");
    std::fs::remove_dir_all(&secrets).ok();
}
