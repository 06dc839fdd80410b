//! Tenants stored in PostgreSQL, changed at run time, seen by every
//! instance within moments.
//!
//! [`PgTenantRegistry`] keeps the tenants in `kailash_tenants` (the spec as
//! JSON, a version). At start it adds the configured (TOML) tenants whose
//! ids are not in the table yet — after that **the table is the source of
//! truth**: editing a seeded tenant in the file changes nothing, the admin
//! API does. Every instance answers lookups from an in-memory snapshot (no
//! query per request); a change ([`create`](PgTenantRegistry::create),
//! [`patch`](PgTenantRegistry::patch)) is validated against every other
//! tenant (unique domains), written with `version + 1` and a
//! `NOTIFY kailash_tenants` in one transaction, and each instance's
//! listener reloads its snapshot. A listener that loses its connection
//! reconnects and reloads everything, so no change is missed.
//!
//! Activation also goes through the shared state's switch that the static
//! registry uses, so a deactivation takes effect on the next request of
//! every instance sharing the state, before the notification arrives.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kailash_core::{clock::SystemClock, state::SharedState, TenantId};
//! use kailash_postgres::tenants::PgTenantRegistry;
//! use kailash_postgres::{Database, DbSettings};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Database::connect(&DbSettings::new("postgres://kailash@db/kailash")).await?;
//! let state = SharedState::memory(Arc::new(SystemClock));
//! let seed = vec![serde_json::from_str(r#"{"id": "acme"}"#)?];
//! let registry = PgTenantRegistry::open(db, seed, state).await?;
//! let acme = TenantId::new("acme")?;
//! registry.patch(&acme, &serde_json::json!({"max_api_calls_per_day": 5000})).await?;
//! # Ok(()) }
//! ```

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use kailash_core::TenantId;
use kailash_core::state::SharedState;
use kailash_tenancy::model::{Tenant, TenantSpec};
use kailash_tenancy::registry::{LocalTenant, RegistryError, StaticTenantRegistry, TenantRegistry};

use crate::db::{Database, DbError};

/// The notification channel.
const CHANNEL: &str = "kailash_tenants";
/// Serialises registry changes (domain uniqueness spans rows).
const CHANGE_LOCK: i64 = 0x006b_7465_6e61_6e74;
/// The most tenants the registry holds.
pub const MAX_TENANTS: usize = 100_000;

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantChangeError {
    /// Creating a tenant whose id exists.
    #[error("tenant `{0}` exists")]
    Exists(TenantId),
    /// Changing a tenant that does not exist.
    #[error("no tenant `{0}`")]
    NotFound(TenantId),
    /// The spec or patch is invalid (names the field); nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// The database failed; nothing changed.
    #[error(transparent)]
    Db(#[from] DbError),
}

struct Inner {
    db: Database,
    state: SharedState,
    snapshot: RwLock<Arc<StaticTenantRegistry>>,
    /// Reloads run one at a time, so an older read never replaces a newer.
    reloading: tokio::sync::Mutex<()>,
}

impl Inner {
    fn current(&self) -> Arc<StaticTenantRegistry> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn reload(&self) -> Result<(), DbError> {
        let _one = self.reloading.lock().await;
        let specs = load(&self.db).await?;
        let n = specs.len();
        let fresh = StaticTenantRegistry::new(specs, self.state.clone())
            .map_err(|e| DbError::Corrupt(format!("kailash_tenants: {e}")))?;
        match self.snapshot.write() {
            Ok(mut s) => *s = Arc::new(fresh),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(fresh),
        }
        metrics::gauge!("kailash_tenants").set(n as f64);
        Ok(())
    }
}

async fn load(db: &Database) -> Result<Vec<TenantSpec>, DbError> {
    let conn = db.get().await?;
    let rows = conn
        .query(
            "SELECT id, spec FROM kailash_tenants ORDER BY id LIMIT $1",
            &[&(MAX_TENANTS as i64)],
        )
        .await
        .map_err(|e| DbError::query(&e))?;
    rows.iter()
        .map(|r| {
            let id: &str = r.get(0);
            serde_json::from_value(r.get(1))
                .map_err(|e| DbError::Corrupt(format!("kailash_tenants `{id}`: {e}")))
        })
        .collect()
}

/// The tenant registry in PostgreSQL; see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct PgTenantRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgTenantRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTenantRegistry")
            .field("tenants", &self.inner.current().ids().len())
            .finish_non_exhaustive()
    }
}

impl PgTenantRegistry {
    /// Creates the table if needed, adds the `seed` tenants whose ids are
    /// not stored yet (each validated first: an invalid seed stops the
    /// start), loads the snapshot and starts the listener (so it needs a
    /// Tokio runtime). `state` holds the activation switches.
    pub async fn open(
        db: Database,
        seed: Vec<TenantSpec>,
        state: SharedState,
    ) -> Result<Self, TenantChangeError> {
        crate::schema::migrate(&db).await?;
        // The seed must be valid on its own (the file's errors first).
        StaticTenantRegistry::new(seed.clone(), state.clone())
            .map_err(|e| TenantChangeError::Invalid(e.to_string()))?;
        {
            let mut conn = db.get().await?;
            let tx = conn.transaction().await.map_err(|e| DbError::query(&e))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHANGE_LOCK])
                .await
                .map_err(|e| DbError::query(&e))?;
            for spec in &seed {
                let json =
                    serde_json::to_value(spec).map_err(|e| DbError::Corrupt(e.to_string()))?;
                tx.execute(
                    "INSERT INTO kailash_tenants (id, spec) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                    &[&spec.id.as_str(), &json],
                )
                .await
                .map_err(|e| DbError::query(&e))?;
            }
            tx.execute("SELECT pg_notify($1, '*')", &[&CHANNEL])
                .await
                .map_err(|e| DbError::query(&e))?;
            tx.commit().await.map_err(|e| DbError::query(&e))?;
        }
        let specs = load(&db).await?;
        let snapshot = StaticTenantRegistry::new(specs, state.clone())
            .map_err(|e| TenantChangeError::Invalid(format!("stored tenants: {e}")))?;
        let inner = Arc::new(Inner {
            db,
            state,
            snapshot: RwLock::new(Arc::new(snapshot)),
            reloading: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(listen(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// The stored spec of `id`.
    pub async fn spec(&self, id: &TenantId) -> Result<Option<TenantSpec>, DbError> {
        let conn = self.inner.db.get().await?;
        let row = conn
            .query_opt(
                "SELECT spec FROM kailash_tenants WHERE id = $1",
                &[&id.as_str()],
            )
            .await
            .map_err(|e| DbError::query(&e))?;
        row.map(|r| {
            serde_json::from_value(r.get(0))
                .map_err(|e| DbError::Corrupt(format!("kailash_tenants `{id}`: {e}")))
        })
        .transpose()
    }

    /// Adds a tenant; [`TenantChangeError::Exists`] when the id is taken.
    pub async fn create(&self, spec: TenantSpec) -> Result<TenantSpec, TenantChangeError> {
        let id = spec.id.clone();
        self.change(&id, |current| match current {
            Some(_) => Err(TenantChangeError::Exists(id.clone())),
            None => Ok(spec.clone()),
        })
        .await
    }

    /// Applies a JSON merge patch (RFC 7386) to a tenant's spec:
    /// `{"active": false}` deactivates it, `{"max_api_calls_per_day": null}`
    /// lifts a limit. The id cannot change.
    pub async fn patch(
        &self,
        id: &TenantId,
        patch: &serde_json::Value,
    ) -> Result<TenantSpec, TenantChangeError> {
        self.change(id, |current| match current {
            None => Err(TenantChangeError::NotFound(id.clone())),
            Some(spec) => spec
                .merge_patch(patch)
                .map_err(|e| TenantChangeError::Invalid(e.to_string())),
        })
        .await
    }

    async fn change(
        &self,
        id: &TenantId,
        f: impl FnOnce(Option<&TenantSpec>) -> Result<TenantSpec, TenantChangeError>,
    ) -> Result<TenantSpec, TenantChangeError> {
        let q = |e: tokio_postgres::Error| TenantChangeError::Db(DbError::query(&e));
        let mut conn = self.inner.db.get().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHANGE_LOCK])
            .await
            .map_err(q)?;
        let mut all = Vec::new();
        for row in tx
            .query("SELECT spec FROM kailash_tenants ORDER BY id", &[])
            .await
            .map_err(q)?
        {
            let spec: TenantSpec = serde_json::from_value(row.get(0))
                .map_err(|e| DbError::Corrupt(format!("kailash_tenants: {e}")))?;
            all.push(spec);
        }
        let at = all.iter().position(|s| &s.id == id);
        let new = f(at.map(|i| &all[i]))?;
        match at {
            Some(i) => all[i] = new.clone(),
            None if all.len() >= MAX_TENANTS => {
                return Err(TenantChangeError::Invalid(format!(
                    "at most {MAX_TENANTS} tenants"
                )));
            }
            None => all.push(new.clone()),
        }
        // Every rule the file's tenants obey (fields, unique domains).
        let checked = StaticTenantRegistry::new(all, self.inner.state.clone())
            .map_err(|e| TenantChangeError::Invalid(e.to_string()))?;
        let json = serde_json::to_value(&new).map_err(|e| DbError::Corrupt(e.to_string()))?;
        tx.execute(
            "INSERT INTO kailash_tenants (id, spec) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET spec = EXCLUDED.spec, \
             version = kailash_tenants.version + 1, updated_at = now()",
            &[&id.as_str(), &json],
        )
        .await
        .map_err(q)?;
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &id.as_str()])
            .await
            .map_err(q)?;
        tx.commit().await.map_err(q)?;
        // The state's switch follows, so every instance sharing the state
        // sees (de)activation on its next request.
        if let Err(e) = checked.set_active(id, new.active).await {
            tracing::warn!(error = %e, tenant = %id, "tenant activation switch not updated; the snapshot reload applies it");
        }
        if let Err(e) = self.inner.reload().await {
            tracing::warn!(error = %e, "tenant snapshot reload failed; the listener retries");
        }
        Ok(new)
    }

    /// The ids of the tenants in this instance's snapshot, sorted.
    pub fn ids(&self) -> Vec<TenantId> {
        self.inner.current().ids()
    }

    /// Reloads the snapshot now (the listener does it on every change).
    pub async fn reload(&self) -> Result<(), DbError> {
        self.inner.reload().await
    }
}

#[async_trait]
impl TenantRegistry for PgTenantRegistry {
    async fn list(&self) -> Result<Vec<TenantId>, RegistryError> {
        Ok(self.ids())
    }

    async fn get(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, RegistryError> {
        self.inner.current().get(id).await
    }

    async fn by_domain(&self, host: &str) -> Result<Option<TenantId>, RegistryError> {
        self.inner.current().by_domain(host).await
    }

    fn get_local(&self, id: &TenantId) -> Option<LocalTenant> {
        self.inner.current().get_local(id)
    }
}

/// Reloads the snapshot on every notification; on a lost connection,
/// reconnects with backoff and reloads everything. Ends with the registry.
async fn listen(inner: Weak<Inner>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let listener = strong.db.listen(CHANNEL).await;
        drop(strong);
        let mut listener = match listener {
            Ok(l) => {
                backoff = Duration::from_millis(100);
                l
            }
            Err(e) => {
                tracing::warn!(error = %e, "tenant registry listener cannot connect; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        // Changes made while no listener was connected.
        if let Some(strong) = inner.upgrade() {
            if let Err(e) = strong.reload().await {
                tracing::warn!(error = %e, "tenant snapshot reload failed");
            }
        } else {
            return;
        }
        loop {
            let next = tokio::select! {
                n = listener.recv() => n,
                () = tokio::time::sleep(Duration::from_secs(30)) => {
                    if inner.strong_count() == 0 { return; }
                    continue;
                }
            };
            let Some(_) = next else { break };
            while listener.try_recv().is_some() {}
            let Some(strong) = inner.upgrade() else {
                return;
            };
            if let Err(e) = strong.reload().await {
                tracing::warn!(error = %e, "tenant snapshot reload failed");
            }
        }
        tracing::warn!("tenant registry listener lost its connection; reconnecting");
    }
}
