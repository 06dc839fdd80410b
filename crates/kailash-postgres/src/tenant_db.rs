//! A database per tenant: each tenant's pool resolved from a URL template
//! (`postgres://app:…@db/kailash_{tenant}`) or an explicit URL, created on
//! first use and capped by an LRU. A query runs only through the
//! [`TenantDb`] handle [`TenantDatabases::for_tenant`] gives for the
//! resolved tenant, so one tenant's statement can never reach another's
//! database.
//!
//! Statements are parameterised only: values travel as bind parameters,
//! JSON in ([`TenantDb::query_json`]) and JSON out.
//!
//! ```no_run
//! use kailash_core::TenantId;
//! use kailash_postgres::DbSettings;
//! use kailash_postgres::tenant_db::{TenantDatabases, TenantDbSettings};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = TenantDbSettings::new(DbSettings::new("postgres://app:secret@db/kailash_{tenant}"))?;
//! let dbs = TenantDatabases::new(settings);
//! let acme = dbs.for_tenant(&TenantId::new("acme")?)?;
//! let rows = acme
//!     .query_json("SELECT id, total FROM orders WHERE customer = $1", &[json!("c-7")], 100, 1 << 20)
//!     .await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Mutex;

use bytes::BytesMut;
use futures_util::TryStreamExt;
use kailash_core::TenantId;
use serde_json::{Map, Value};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::db::{Database, DbError, DbSettings};

/// The placeholder a URL template names the tenant with.
pub const PLACEHOLDER: &str = "{tenant}";

/// How tenants' databases are reached.
#[derive(Debug, Clone)]
pub struct TenantDbSettings {
    /// The template (its URL contains [`PLACEHOLDER`]) and the pool
    /// settings every tenant's pool gets.
    base: Option<DbSettings>,
    /// Tenants with a URL of their own (their pool settings are the base's).
    explicit: HashMap<TenantId, DbSettings>,
    /// Pools kept at most; the least recently used one is closed past it
    /// (default 64).
    pub max_pools: usize,
}

impl TenantDbSettings {
    /// Every tenant's database from `template`, whose URL must contain
    /// `{tenant}` (replaced by the tenant id, `[a-z0-9_-]` only).
    pub fn new(template: DbSettings) -> Result<Self, DbError> {
        if !template.url().contains(PLACEHOLDER) {
            return Err(DbError::BadUrl);
        }
        // The template must parse with an id in place.
        template
            .with_url(template.url().replace(PLACEHOLDER, "t"))
            .validate()?;
        Ok(Self {
            base: Some(template),
            explicit: HashMap::new(),
            max_pools: 64,
        })
    }

    /// Only the tenants given explicitly ([`with_tenant`](Self::with_tenant)).
    pub fn explicit_only() -> Self {
        Self {
            base: None,
            explicit: HashMap::new(),
            max_pools: 64,
        }
    }

    /// `tenant`'s database at its own URL (instead of the template's).
    pub fn with_tenant(mut self, tenant: TenantId, settings: DbSettings) -> Result<Self, DbError> {
        settings.validate()?;
        self.explicit.insert(tenant, settings);
        Ok(self)
    }

    fn resolve(&self, tenant: &TenantId) -> Option<DbSettings> {
        if let Some(s) = self.explicit.get(tenant) {
            return Some(s.clone());
        }
        self.base
            .as_ref()
            .map(|b| b.with_url(b.url().replace(PLACEHOLDER, tenant.as_str())))
    }
}

/// Every tenant's pool, created lazily, capped by an LRU; cheap to share
/// behind an `Arc`.
#[derive(Debug)]
pub struct TenantDatabases {
    settings: TenantDbSettings,
    pools: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    tick: u64,
    pools: HashMap<TenantId, (Database, u64)>,
}

/// Why a tenant has no database.
fn no_database(tenant: &TenantId) -> DbError {
    DbError::Query(format!("tenant `{tenant}` has no database configured"))
}

impl TenantDatabases {
    /// No pool is created until a tenant asks.
    pub fn new(settings: TenantDbSettings) -> Self {
        Self {
            settings,
            pools: Mutex::new(Lru::default()),
        }
    }

    /// The handle of `tenant`'s database: the pool is created on first use
    /// (no connection yet) and kept while it is among the `max_pools` most
    /// recently used. An evicted pool closes once its last handle drops.
    pub fn for_tenant(&self, tenant: &TenantId) -> Result<TenantDb, DbError> {
        let mut lru = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((db, used)) = lru.pools.get_mut(tenant) {
            *used = tick;
            return Ok(TenantDb {
                tenant: tenant.clone(),
                db: db.clone(),
            });
        }
        let settings = self
            .settings
            .resolve(tenant)
            .ok_or_else(|| no_database(tenant))?;
        let db = Database::lazy(&settings)?;
        if lru.pools.len() >= self.settings.max_pools.max(1)
            && let Some(oldest) = lru
                .pools
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(t, _)| t.clone())
        {
            lru.pools.remove(&oldest);
            metrics::counter!("kailash_db_tenant_pools_evicted_total").increment(1);
        }
        lru.pools.insert(tenant.clone(), (db.clone(), tick));
        metrics::gauge!("kailash_db_tenant_pools").set(lru.pools.len() as f64);
        Ok(TenantDb {
            tenant: tenant.clone(),
            db,
        })
    }

    /// Tenants with an open pool, most recently used first.
    pub fn open(&self) -> Vec<TenantId> {
        let lru = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = lru
            .pools
            .iter()
            .map(|(t, (_, u))| (*u, t.clone()))
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.0));
        v.into_iter().map(|(_, t)| t).collect()
    }
}

/// One tenant's database: the only way to run a statement on it.
#[derive(Debug, Clone)]
pub struct TenantDb {
    tenant: TenantId,
    db: Database,
}

/// A JSON value bound as a statement parameter, converted to the type the
/// server inferred for its placeholder.
#[derive(Debug)]
struct JsonParam<'a>(&'a Value);

fn wrong(ty: &Type, v: &Value) -> Box<dyn StdError + Sync + Send> {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("{kind} cannot be bound to a `{}` parameter", ty.name()).into()
}

impl ToSql for JsonParam<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let v = self.0;
        if v.is_null() {
            return Ok(IsNull::Yes);
        }
        match *ty {
            Type::BOOL => v.as_bool().ok_or_else(|| wrong(ty, v))?.to_sql(ty, out),
            Type::INT2 => i16::try_from(v.as_i64().ok_or_else(|| wrong(ty, v))?)?.to_sql(ty, out),
            Type::INT4 => i32::try_from(v.as_i64().ok_or_else(|| wrong(ty, v))?)?.to_sql(ty, out),
            Type::INT8 => v.as_i64().ok_or_else(|| wrong(ty, v))?.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation, reason = "float4 is what the column holds")]
            Type::FLOAT4 => (v.as_f64().ok_or_else(|| wrong(ty, v))? as f32).to_sql(ty, out),
            Type::FLOAT8 => v.as_f64().ok_or_else(|| wrong(ty, v))?.to_sql(ty, out),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                v.as_str().ok_or_else(|| wrong(ty, v))?.to_sql(ty, out)
            }
            Type::JSON | Type::JSONB => tokio_postgres::types::Json(v).to_sql(ty, out),
            _ => Err(format!(
                "parameters of type `{}` are not supported: cast the placeholder in SQL (e.g. `$1::text`)",
                ty.name()
            )
            .into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Column `i` of `row` as JSON, for the types that map plainly.
fn column(row: &tokio_postgres::Row, i: usize) -> Result<Value, DbError> {
    let col = &row.columns()[i];
    let bad = |e: tokio_postgres::Error| DbError::query(&e);
    let v = match *col.type_() {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(bad)?
            .map(Value::from),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(bad)?
            .map(Value::from),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(bad)?
            .map(Value::from),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(bad)?
            .map(Value::from),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)
            .map_err(bad)?
            .map(Value::from),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .map_err(bad)?
            .map(Value::from),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<String>>(i)
            .map_err(bad)?
            .map(Value::from),
        Type::JSON | Type::JSONB => row
            .try_get::<_, Option<tokio_postgres::types::Json<Value>>>(i)
            .map_err(bad)?
            .map(|j| j.0),
        ref other => {
            return Err(DbError::Query(format!(
                "column `{}` has type `{}`, which has no JSON form here: cast it in SQL (e.g. `{}::text`)",
                col.name(),
                other.name(),
                col.name()
            )));
        }
    };
    Ok(v.unwrap_or(Value::Null))
}

impl TenantDb {
    /// The tenant this handle belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The pool (for statements of your own; they stay in this tenant's
    /// database).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs one statement with `params` bound to `$1`, `$2`, … and returns
    /// each row as a JSON object. Reading stops with an error past
    /// `max_rows` rows or `max_bytes` bytes of rows (as compact JSON).
    pub async fn query_json(
        &self,
        sql: &str,
        params: &[Value],
        max_rows: u64,
        max_bytes: u64,
    ) -> Result<Vec<Value>, DbError> {
        let conn = self.db.get().await?;
        let params: Vec<JsonParam<'_>> = params.iter().map(JsonParam).collect();
        let stream = conn
            .query_raw(sql, params.iter().map(|p| p as &(dyn ToSql + Sync)))
            .await
            .map_err(|e| DbError::query(&e))?;
        futures_util::pin_mut!(stream);
        let mut rows = Vec::new();
        let mut bytes = 0u64;
        while let Some(row) = stream.try_next().await.map_err(|e| DbError::query(&e))? {
            if rows.len() as u64 >= max_rows {
                return Err(DbError::Query(format!("more than {max_rows} rows")));
            }
            let mut object = Map::with_capacity(row.len());
            for i in 0..row.len() {
                object.insert(row.columns()[i].name().to_owned(), column(&row, i)?);
            }
            let value = Value::Object(object);
            bytes = bytes.saturating_add(serde_json::to_vec(&value).map_or(0, |v| v.len() as u64));
            if bytes > max_bytes {
                return Err(DbError::Query(format!(
                    "more than {max_bytes} bytes of rows"
                )));
            }
            rows.push(value);
        }
        Ok(rows)
    }
}
