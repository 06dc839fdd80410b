//! The reference deployment with `audit.sink = "postgres"`: two instances
//! on one database write one chain, and each answers `GET /api/audit` from
//! it (`KAILASH_TEST_DATABASE_URL`; each run makes its own database).

use super::{Demo, call, demo_config_text, login, start_from, unique_suffix};
use kailash::postgres::audit::verify;
use kailash::postgres::{Database, DbSettings};
use std::collections::HashSet;

/// A new database for one test: the admin pool, its name, its URL and a
/// file holding the URL (what `url_file` reads).
async fn fresh_database(admin: &str) -> (Database, String, String, std::path::PathBuf) {
    let name = format!("kailash_demo_{}", unique_suffix().replace('-', "_"));
    let admin_db = Database::connect(&DbSettings::new(admin)).await.unwrap();
    admin_db
        .get()
        .await
        .unwrap()
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let url = format!("{}/{name}?{query}", &base[..base.rfind('/').unwrap()]);
    let url_file = std::env::temp_dir().join(format!("{name}.url"));
    std::fs::write(&url_file, &url).unwrap();
    (admin_db, name, url, url_file)
}

async fn drop_database(admin_db: &Database, name: &str, url_file: &std::path::Path) {
    admin_db
        .get()
        .await
        .unwrap()
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    std::fs::remove_file(url_file).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_audit_trail_in_postgres() {
    let Ok(admin) = std::env::var("KAILASH_TEST_DATABASE_URL") else {
        eprintln!("skipped: KAILASH_TEST_DATABASE_URL is not set");
        return;
    };
    let (admin_db, name, url, url_file) = fresh_database(&admin).await;
    let overrides = [
        ("KAILASH_AUDIT__SINK", "postgres".to_owned()),
        (
            "KAILASH_DATABASE__PRIMARY__URL_FILE",
            url_file.to_string_lossy().into_owned(),
        ),
    ];
    let text = demo_config_text();
    let one: Demo = start_from(&text, "enterprise.toml", &overrides).await;
    let two: Demo = start_from(&text, "enterprise.toml", &overrides).await;

    // Decisions made on the first instance...
    let bob = login(&one, "bob", "Bob-Demo-Passw0rd!", None).await;
    for _ in 0..5 {
        assert_eq!(
            call(&one, "GET", "/api/reports", &bob, None).await.status,
            200
        );
    }
    // ...are read on the second, a page at a time, newest first.
    let alice = login(
        &two,
        "alice",
        "Alice-Demo-Passw0rd!",
        Some("JBSWY3DPEHPK3PXP"),
    )
    .await;
    let mut events = Vec::new();
    let mut path = "/api/audit?limit=3".to_owned();
    loop {
        let r = call(&two, "GET", &path, &alice, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json();
        let batch = page["events"].as_array().unwrap().clone();
        assert!(batch.len() <= 3);
        events.extend(batch);
        match page["next_before"].as_u64() {
            Some(before) => path = format!("/api/audit?limit=3&before={before}"),
            None => break,
        }
    }
    let reports = events
        .iter()
        .filter(|e| {
            e["actor"] == "bob" && e["action"] == "access.check" && e["decision"] == "allow"
        })
        .count();
    assert_eq!(
        reports, 5,
        "bob's five allowed reads, written by the other instance"
    );
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "auth.login" && e["actor"] == "alice")
    );
    assert!(
        events.iter().all(|e| e["tenant"] == "acme"),
        "acme's trail only"
    );
    let times: Vec<jiff::Timestamp> = events
        .iter()
        .map(|e| e["time"].as_str().unwrap().parse().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    let distinct: HashSet<String> = events.iter().map(|e| e.to_string()).collect();
    assert!(distinct.len() >= events.len() - 1, "pages do not overlap");
    // A subject access request for bob, on the other instance: his events
    // only, and the export itself on record.
    let r = call(
        &two,
        "GET",
        "/api/audit/export?user=bob&limit=2",
        &alice,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.json();
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let before = page["next_before"].as_u64().expect("more of bob's events");
    let rest = call(
        &two,
        "GET",
        &format!("/api/audit/export?user=bob&before={before}&limit=1000"),
        &alice,
        None,
    )
    .await;
    let mut bobs = page["events"].as_array().unwrap().clone();
    bobs.extend(rest.json()["events"].as_array().unwrap().iter().cloned());
    assert!(bobs.iter().all(|e| e["actor"] == "bob"));
    assert!(bobs.len() >= 6, "a login and five reads: {bobs:?}");
    let exported = call(&two, "GET", "/api/audit?limit=5", &alice, None)
        .await
        .json();
    assert!(
        exported["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "audit.export"
                && e["actor"] == "alice"
                && e["resource"] == "user bob"),
        "{exported}"
    );
    call(&two, "GET", "/api/audit/export", &alice, None)
        .await
        .assert_problem(422);
    call(&one, "GET", "/api/audit/export?user=bob", &bob, None)
        .await
        .assert_problem(403);
    // The trail is the database's, not an instance's memory: nothing in
    // the spool, and the chain written by both verifies.
    one.stop().await;
    two.stop().await;
    let db = Database::connect(&DbSettings::new(&url)).await.unwrap();
    let report = verify(&db, &[]).await.unwrap();
    assert!(report.entries >= 8, "{report:?}");
    drop(db);
    drop_database(&admin_db, &name, &url_file).await;
}

/// `[database.tenants]`: dave's `database_query` node reads acme's own
/// database (from the URL template), with its parameters bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_query_node_reads_its_tenants_own_database() {
    let Ok(admin) = std::env::var("KAILASH_TEST_DATABASE_URL") else {
        eprintln!("skipped: KAILASH_TEST_DATABASE_URL is not set");
        return;
    };
    let prefix = format!("kailash_demo_{}", unique_suffix().replace('-', "_"));
    let admin_db = Database::connect(&DbSettings::new(&admin)).await.unwrap();
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let server = &base[..base.rfind('/').unwrap()];
    admin_db
        .get()
        .await
        .unwrap()
        .batch_execute(&format!("CREATE DATABASE {prefix}_acme"))
        .await
        .unwrap();
    let acme_url = format!("{server}/{prefix}_acme?{query}");
    Database::connect(&DbSettings::new(&acme_url))
        .await
        .unwrap()
        .get()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE orders (id int, customer text, total float8);
             INSERT INTO orders VALUES (1, 'c-1', 12.5), (2, 'c-2', 7), (3, 'c-1', 1)",
        )
        .await
        .unwrap();
    let template_file = std::env::temp_dir().join(format!("{prefix}.template"));
    std::fs::write(
        &template_file,
        format!("{server}/{prefix}_{{tenant}}?{query}"),
    )
    .unwrap();
    let overrides = [(
        "KAILASH_DATABASE__TENANTS__URL_TEMPLATE_FILE",
        template_file.to_string_lossy().into_owned(),
    )];
    let d: Demo = start_from(&demo_config_text(), "enterprise.toml", &overrides).await;
    let dave = login(&d, "dave", "Dave-Demo-Passw0rd!", None).await;
    let wf = serde_json::json!({
        "name": "orders of a customer",
        "inputs": ["p"],
        "nodes": [{"id": "q", "type": "database_query",
                   "config": {"sql": "SELECT id, total FROM orders WHERE customer = $1 ORDER BY id", "max_rows": 10}}],
        "connections": [{"from": {"input": "p"}, "to": {"node": "q", "input": "params"}}],
        "outputs": {"rows": {"node": "q", "output": "rows"}, "n": {"node": "q", "output": "row_count"}}
    });
    let r = call(&d, "POST", "/api/workflows", &dave, Some(wf)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let wf = r.json()["id"].as_str().unwrap().to_owned();
    let s = super::session(&d, &dave).await;
    for (param, want) in [
        (
            "c-1",
            serde_json::json!({"rows": [{"id": 1, "total": 12.5}, {"id": 3, "total": 1.0}], "n": 2}),
        ),
        // A hostile value is a value: bound, never spliced.
        ("c-1' OR '1'='1", serde_json::json!({"rows": [], "n": 0})),
    ] {
        let r = super::start_run(&d, &dave, &s, &wf, serde_json::json!({"p": [param]})).await;
        assert!(r.status == 201 || r.status == 202, "{}", r.text());
        let run = super::finished(&d, &dave, r.json()["run_id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["outputs"], want, "{run}");
    }
    d.stop().await;
    admin_db
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {prefix}_acme WITH (FORCE)"
        ))
        .await
        .unwrap();
    std::fs::remove_file(&template_file).ok();
}

/// `audit.personal_data_keyring_file`: the trail seals actors and client
/// addresses per person; an erasure (`DELETE /api/audit/subjects/{user}`,
/// `user:manage`) leaves bob's entries without his name while the chain
/// still verifies, and no chained row names him.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_removes_a_persons_fields_and_the_chain_still_verifies() {
    let Ok(admin) = std::env::var("KAILASH_TEST_DATABASE_URL") else {
        eprintln!("skipped: KAILASH_TEST_DATABASE_URL is not set");
        return;
    };
    let (admin_db, name, url, url_file) = fresh_database(&admin).await;
    let keyring_file = std::env::temp_dir().join(format!("{name}.keyring"));
    std::fs::write(
        &keyring_file,
        format!(
            "demo-1 {}\n",
            kailash::envelope::Keyring::generate_key().unwrap()
        ),
    )
    .unwrap();
    let overrides = [
        ("KAILASH_AUDIT__SINK", "postgres".to_owned()),
        (
            "KAILASH_DATABASE__PRIMARY__URL_FILE",
            url_file.to_string_lossy().into_owned(),
        ),
        (
            "KAILASH_AUDIT__PERSONAL_DATA_KEYRING_FILE",
            keyring_file.to_string_lossy().into_owned(),
        ),
    ];
    let d: Demo = start_from(&demo_config_text(), "enterprise.toml", &overrides).await;
    let bob = login(&d, "bob", "Bob-Demo-Passw0rd!", None).await;
    for _ in 0..3 {
        assert_eq!(
            call(&d, "GET", "/api/reports", &bob, None).await.status,
            200
        );
    }
    let alice = login(
        &d,
        "alice",
        "Alice-Demo-Passw0rd!",
        Some("JBSWY3DPEHPK3PXP"),
    )
    .await;
    let export = call(&d, "GET", "/api/audit/export?user=bob", &alice, None).await;
    assert_eq!(export.status, 200, "{}", export.text());
    let bobs = export.json()["events"].as_array().unwrap().len();
    assert!(bobs >= 4, "a login and three reads");

    // Only someone with user:manage may erase.
    call(&d, "DELETE", "/api/audit/subjects/bob", &bob, None)
        .await
        .assert_problem(403);
    let r = call(&d, "DELETE", "/api/audit/subjects/bob", &alice, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["erased"], true);
    let r = call(&d, "DELETE", "/api/audit/subjects/nobody", &alice, None).await;
    assert_eq!(r.json()["erased"], false);

    let export = call(&d, "GET", "/api/audit/export?user=bob", &alice, None).await;
    assert_eq!(export.json()["events"].as_array().unwrap().len(), 0);
    let trail = call(&d, "GET", "/api/audit?limit=1000", &alice, None)
        .await
        .json();
    let events = trail["events"].as_array().unwrap();
    assert!(events.iter().all(|e| e["actor"] != "bob"), "{trail}");
    let anonymous_reads = events
        .iter()
        .filter(|e| e["action"] == "access.check" && e.get("actor").is_none())
        .count();
    assert!(
        anonymous_reads >= 3,
        "bob's reads stay, without him: {trail}"
    );
    assert!(events.iter().any(|e| e["action"] == "audit.erase"
        && e["actor"] == "alice"
        && e["resource"] == "audit subject"));
    // The export and the erasure are on record without his name either.
    assert!(
        events.iter().all(|e| !e.to_string().contains("bob")),
        "{trail}"
    );
    d.stop().await;

    let db = Database::connect(&DbSettings::new(&url)).await.unwrap();
    let report = verify(&db, &[]).await.unwrap();
    assert!(report.entries >= 8, "{report:?}");
    let rows = db
        .get()
        .await
        .unwrap()
        .query("SELECT line FROM kailash_audit", &[])
        .await
        .unwrap();
    for row in rows {
        let line: String = row.get(0);
        assert!(!line.contains("\"bob\""), "{line}");
        assert!(!line.contains("\"alice\""), "{line}");
    }
    drop(db);
    drop_database(&admin_db, &name, &url_file).await;
    std::fs::remove_file(&keyring_file).ok();
}

/// `[tenancy] registry = "postgres"`: the demo's tenants seed the table;
/// alice (`system:configure`) creates, reads and changes tenants through
/// `/api/admin/tenants` on one instance, and the other instance serves the
/// change within moments — a deactivated tenant's users are refused there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_administered_at_run_time_and_every_instance_follows() {
    let Ok(admin) = std::env::var("KAILASH_TEST_DATABASE_URL") else {
        eprintln!("skipped: KAILASH_TEST_DATABASE_URL is not set");
        return;
    };
    let (admin_db, name, _url, url_file) = fresh_database(&admin).await;
    let overrides = [
        ("KAILASH_TENANCY__REGISTRY", "postgres".to_owned()),
        (
            "KAILASH_DATABASE__PRIMARY__URL_FILE",
            url_file.to_string_lossy().into_owned(),
        ),
    ];
    // The registry, not office hours, is under test here (`time_based`
    // guards system:configure; the explain test covers it).
    let text = demo_config_text().replace(
        "current_time.hour >= 9 AND current_time.hour <= 17 AND current_time.weekday < 5",
        "current_time.hour >= 0",
    );
    let one: Demo = start_from(&text, "enterprise.toml", &overrides).await;
    let two: Demo = start_from(&text, "enterprise.toml", &overrides).await;
    let alice = login(
        &one,
        "alice",
        "Alice-Demo-Passw0rd!",
        Some("JBSWY3DPEHPK3PXP"),
    )
    .await;
    let bob = login(&one, "bob", "Bob-Demo-Passw0rd!", None).await;

    // Seeded from the file.
    let r = call(&one, "GET", "/api/admin/tenants/globex", &alice, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["max_api_calls_per_day"], 1000);
    call(&one, "GET", "/api/admin/tenants/globex", &bob, None)
        .await
        .assert_problem(403);
    call(&one, "GET", "/api/admin/tenants/nope", &alice, None)
        .await
        .assert_problem(404);

    // Create; twice is a conflict; invalid specs change nothing.
    let umbrella =
        serde_json::json!({"id": "umbrella", "plan": "enterprise", "max_api_calls_per_day": 50});
    let r = call(
        &one,
        "POST",
        "/api/admin/tenants",
        &alice,
        Some(umbrella.clone()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some("/api/admin/tenants/umbrella"));
    call(&one, "POST", "/api/admin/tenants", &alice, Some(umbrella))
        .await
        .assert_problem(409);
    for bad in [
        serde_json::json!({"id": "x", "colour": "red"}),
        serde_json::json!({"id": "y", "max_storage_gb": -3}),
        serde_json::json!({"plan": "no id"}),
    ] {
        call(&one, "POST", "/api/admin/tenants", &alice, Some(bad))
            .await
            .assert_problem(422);
    }
    call(
        &one,
        "PATCH",
        "/api/admin/tenants/umbrella",
        &alice,
        Some(serde_json::json!({"id": "other"})),
    )
    .await
    .assert_problem(422);
    // The instances share only the database (memory state, own sessions).
    let alice_two = login(
        &two,
        "alice",
        "Alice-Demo-Passw0rd!",
        Some("JBSWY3DPEHPK3PXP"),
    )
    .await;
    let r = call(&two, "GET", "/api/admin/tenants/umbrella", &alice_two, None).await;
    assert_eq!(r.json()["max_api_calls_per_day"], 50);

    // Carol (globex) works on the second instance until globex is
    // deactivated on the first.
    let carol = login(&two, "carol", "Carol-Demo-Passw0rd!", None).await;
    assert_eq!(
        call(&two, "GET", "/api/workflows", &carol, None)
            .await
            .status,
        200
    );
    let r = call(
        &one,
        "PATCH",
        "/api/admin/tenants/globex",
        &alice,
        Some(serde_json::json!({"active": false})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["active"], false);
    let mut refused = false;
    for _ in 0..100 {
        if call(&two, "GET", "/api/workflows", &carol, None)
            .await
            .status
            == 403
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "the second instance still serves the deactivated tenant"
    );

    // Each change is on the trail, with the keys changed.
    let trail = call(&one, "GET", "/api/audit?limit=100", &alice, None)
        .await
        .json();
    let events = trail["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["action"] == "tenant.create"
        && e["resource"] == "tenant:umbrella"
        && e["actor"] == "alice"));
    one.stop().await;
    two.stop().await;
    drop_database(&admin_db, &name, &url_file).await;
}
