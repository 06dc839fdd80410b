//! A fresh database per test.

use std::path::PathBuf;

use kailash_core::audit::{AuditDecision, AuditEvent};
use kailash_postgres::{Database, DbSettings};

pub(crate) fn random_hex() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The admin URL, or `None` (and a note) when the tests are not configured.
pub(crate) fn admin_url(test: &str) -> Option<String> {
    match std::env::var("KAILASH_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped {test}: KAILASH_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// `url` with its database replaced by `db`.
pub(crate) fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A new, empty database, dropped by [`Fresh::drop_db`].
pub(crate) struct Fresh {
    pub(crate) admin: String,
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) dir: PathBuf,
}

impl Fresh {
    pub(crate) async fn new(admin: &str) -> Self {
        let name = format!("kailash_t_{}", random_hex());
        let db = Database::connect(&DbSettings::new(admin)).await.unwrap();
        db.get()
            .await
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            admin: admin.to_owned(),
            url: with_database(admin, &name),
            name,
            dir,
        }
    }

    pub(crate) async fn db(&self) -> Database {
        Database::connect(&DbSettings::new(&self.url))
            .await
            .unwrap()
    }

    pub(crate) async fn drop_db(self) {
        let db = Database::connect(&DbSettings::new(&self.admin))
            .await
            .unwrap();
        let _ = db
            .get()
            .await
            .unwrap()
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

pub(crate) fn event(tag: &str, i: usize) -> AuditEvent {
    AuditEvent::new("access.check", AuditDecision::Allow)
        .actor(format!("user{}", i % 7))
        .tenant(
            kailash_core::tenant::TenantId::new(if i.is_multiple_of(2) {
                "acme"
            } else {
                "globex"
            })
            .unwrap(),
        )
        .resource(format!("{tag}-{i}"))
        .reason("role viewer")
}

/// A port nobody listens on now.
pub(crate) fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 10 s for `f` to hold.
pub(crate) async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("not within 10 s: {what}");
}
