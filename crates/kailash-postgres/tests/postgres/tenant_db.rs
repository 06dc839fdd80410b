//! A database per tenant: isolation by construction, bound parameters,
//! bounded results, the pool LRU.

use kailash_core::TenantId;
use kailash_postgres::tenant_db::{TenantDatabases, TenantDbSettings};
use kailash_postgres::{Database, DbError, DbSettings};
use serde_json::json;

use super::support::{admin_url, random_hex, with_database};

async fn exec(url: &str, sql: &str) {
    Database::connect(&DbSettings::new(url))
        .await
        .unwrap()
        .get()
        .await
        .unwrap()
        .batch_execute(sql)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_reaches_only_its_own_database() {
    let Some(admin) = admin_url("each_tenant_reaches_only_its_own_database") else {
        return;
    };
    let prefix = format!("kailash_t_{}", random_hex());
    for t in ["acme", "globex"] {
        exec(&admin, &format!("CREATE DATABASE {prefix}_{t}")).await;
        exec(
            &with_database(&admin, &format!("{prefix}_{t}")),
            &format!(
                "CREATE TABLE orders (id int, customer text, total float8, paid bool, meta jsonb);
                 INSERT INTO orders VALUES (1, '{t}-c1', 10.5, true, '{{\"k\": \"{t}\"}}'), (2, '{t}-c2', 3, false, NULL);"
            ),
        )
        .await;
    }
    let template = with_database(&admin, &format!("{prefix}_{{tenant}}"));
    let mut settings = TenantDbSettings::new(DbSettings::new(&template)).unwrap();
    settings.max_pools = 1;
    let dbs = TenantDatabases::new(settings);
    let acme = TenantId::new("acme").unwrap();
    let globex = TenantId::new("globex").unwrap();

    let a = dbs.for_tenant(&acme).unwrap();
    let rows = a
        .query_json(
            "SELECT id, customer, total, paid, meta FROM orders ORDER BY id",
            &[],
            10,
            1 << 20,
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "customer": "acme-c1", "total": 10.5, "paid": true, "meta": {"k": "acme"}}),
            json!({"id": 2, "customer": "acme-c2", "total": 3.0, "paid": false, "meta": null}),
        ]
    );
    // Values are bound, never spliced: every injection payload is a
    // string that matches nothing and changes nothing.
    for payload in [
        "x' OR '1'='1",
        "'; DROP TABLE orders; --",
        "acme-c1'; DELETE FROM orders WHERE '1'='1",
        "' UNION SELECT id FROM orders --",
        "\\'; TRUNCATE orders; --",
        "$1",
        "acme-c1\u{0}",
        "1; SELECT pg_sleep(5)",
    ] {
        let none = a
            .query_json(
                "SELECT id FROM orders WHERE customer = $1",
                &[json!(payload)],
                10,
                1 << 20,
            )
            .await;
        assert!(none.is_err() || none.unwrap().is_empty(), "{payload}");
    }
    let intact = a
        .query_json("SELECT count(*)::int AS n FROM orders", &[], 1, 1 << 20)
        .await
        .unwrap();
    assert_eq!(intact, vec![json!({"n": 2})]);
    let typed = a
        .query_json(
            "SELECT id FROM orders WHERE id = $1 AND total > $2 AND paid = $3 AND meta @> $4",
            &[json!(1), json!(1.5), json!(true), json!({"k": "acme"})],
            10,
            1 << 20,
        )
        .await
        .unwrap();
    assert_eq!(typed, vec![json!({"id": 1})]);
    // Another tenant's handle, another database (and the LRU of one keeps
    // only the newest pool).
    let g = dbs.for_tenant(&globex).unwrap();
    let rows = g
        .query_json(
            "SELECT customer FROM orders WHERE id = $1",
            &[json!(1)],
            10,
            1 << 20,
        )
        .await
        .unwrap();
    assert_eq!(rows, vec![json!({"customer": "globex-c1"})]);
    assert_eq!(dbs.open(), vec![globex.clone()]);

    // Bounded: rows and bytes; types without a JSON form say how to cast.
    let err = a
        .query_json("SELECT g FROM generate_series(1, 10) g", &[], 5, 1 << 20)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 5 rows"), "{err}");
    let err = a
        .query_json("SELECT repeat('x', 1000) AS t", &[], 5, 100)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bytes"), "{err}");
    let err = a
        .query_json("SELECT now() AS at", &[], 5, 1 << 20)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at::text"), "{err}");
    let err = a
        .query_json("SELECT $1::int AS n", &[json!("seven")], 5, 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DbError::Query(_) | DbError::Unreachable(_)),
        "{err}"
    );
    let err = a.query_json("SELEC 1", &[], 5, 1 << 20).await.unwrap_err();
    assert!(err.to_string().contains("42601"), "a syntax error: {err}");

    for t in ["acme", "globex"] {
        exec(
            &admin,
            &format!("DROP DATABASE IF EXISTS {prefix}_{t} WITH (FORCE)"),
        )
        .await;
    }
}

#[tokio::test]
async fn bad_settings_and_unknown_tenants_are_typed_errors_without_secrets() {
    assert!(matches!(
        TenantDbSettings::new(DbSettings::new("postgres://u:hunter2@127.0.0.1/fixed")),
        Err(DbError::BadUrl)
    ));
    let only = TenantDbSettings::explicit_only()
        .with_tenant(
            TenantId::new("acme").unwrap(),
            DbSettings::new("postgres://u:hunter2@127.0.0.1:9/acme"),
        )
        .unwrap();
    let dbs = TenantDatabases::new(only);
    let err = dbs
        .for_tenant(&TenantId::new("globex").unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("no database configured"), "{err}");
    // Nothing listens on port 9: unreachable, and the password stays out.
    let acme = dbs.for_tenant(&TenantId::new("acme").unwrap()).unwrap();
    let err = acme.query_json("SELECT 1", &[], 1, 100).await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert!(!err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"));
    assert!(!format!("{acme:?}").contains("hunter2"));
}
