//! The `database_query` node type and the [`Database`] it runs on.
//!
//! The node type is offered only when a database is registered
//! ([`NodeRegistry::with_database`](crate::NodeRegistry::with_database)).
//! Its SQL is parameterised only: the statement text comes from the node's
//! config, fixed when the workflow is validated; values come only from the
//! input port `params` (a JSON array) and reach the [`Database`] separately
//! from the text, so nothing a run receives is ever spliced into SQL. A
//! [`Database`] implementation must send them as bind parameters
//! (`$1`, `$2`, … in PostgreSQL's extended protocol), one statement per query.
//!
//! Config `{"sql": "…", "analytics"?: bool, "max_rows"?: n}`:
//! `analytics: true` marks a query for analytics (the database may route
//! it to a replica or another role) and makes the node need the tenant
//! feature `advanced_analytics`. Outputs `rows` (an array of row objects)
//! and `row_count`. Rows are bounded twice: the [`QueryLimits`] passed to
//! the database (which should stop reading past them), and a check of what
//! it returned — more than `max_rows` rows, or rows whose serialized JSON
//! passes the run's remaining byte budget, fail the node.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use kailash_runtime::{NodeRegistry, compile};
//! use kailash_runtime::database::{Database, DatabaseError, QueryLimits};
//! use kailash_runtime::definition::Definition;
//! use kailash_tenancy::model::{Tenant, TenantSpec};
//! use serde_json::{Value, json};
//!
//! struct Empty;
//!
//! #[async_trait]
//! impl Database for Empty {
//!     async fn query(&self, _tenant: &kailash_core::TenantId, _sql: &str, _params: &[Value],
//!         _analytics: bool, _limits: QueryLimits) -> Result<Vec<Value>, DatabaseError> {
//!         Ok(Vec::new())
//!     }
//! }
//!
//! let acme = Tenant::try_from(serde_json::from_str::<TenantSpec>(r#"{"id": "acme"}"#)?)?;
//! let def = |analytics: bool| -> Result<Definition, serde_json::Error> {
//!     serde_json::from_value(json!({"nodes": [{"id": "q", "type": "database_query",
//!         "config": {"sql": "SELECT id FROM orders WHERE customer = $1", "analytics": analytics}}]}))
//! };
//! // Not offered without a database.
//! assert!(compile(&def(false)?, &acme, &NodeRegistry::builtin()).is_err());
//! let registry = NodeRegistry::builtin().with_database(Arc::new(Empty));
//! assert!(compile(&def(false)?, &acme, &registry).is_ok());
//! // Analytics needs the tenant feature.
//! let err = compile(&def(true)?, &acme, &registry).unwrap_err();
//! assert!(err.to_string().contains("advanced_analytics"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use crate::executor::json_size;
use crate::node::{ConfigError, Node, NodeContext, NodeError, NodeType, Ports, Values};

/// The type name of the database query node.
pub const DATABASE_QUERY: &str = "database_query";
/// The tenant feature an analytics query needs.
pub const ADVANCED_ANALYTICS: &str = "advanced_analytics";
/// The longest SQL text, in bytes.
pub const MAX_SQL_BYTES: usize = 16 * 1024;
/// The most parameters one query may take.
pub const MAX_PARAMS: usize = 1000;
/// `max_rows` when the config sets none.
pub const DEFAULT_MAX_ROWS: u64 = 1000;
/// The largest `max_rows` a config may set.
pub const MAX_ROWS: u64 = 100_000;

/// Why a query failed. The message goes into the run record: it must not
/// carry secrets (connection strings, passwords).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DatabaseError(String);

impl DatabaseError {
    /// A failure saying `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// How much one query may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// The most rows.
    pub max_rows: u64,
    /// The most bytes of rows, measured as their compact serialized JSON.
    pub max_bytes: u64,
}

/// A database the `database_query` node runs statements on (the gateway
/// implements it over `kailash_postgres::tenant_db`, one database per
/// tenant).
#[async_trait]
pub trait Database: Send + Sync + 'static {
    /// Runs the one statement `sql` with `params` bound to its
    /// placeholders (never spliced into the text) in `tenant`'s data —
    /// the run's own tenant, which the implementation must confine the
    /// statement to — returning each row as a JSON object. `analytics`
    /// marks an analytics query. Implementations should stop reading once
    /// `limits` are passed and fail.
    async fn query(
        &self,
        tenant: &kailash_core::TenantId,
        sql: &str,
        params: &[Value],
        analytics: bool,
        limits: QueryLimits,
    ) -> Result<Vec<Value>, DatabaseError>;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    sql: String,
    #[serde(default)]
    analytics: bool,
    #[serde(default)]
    max_rows: Option<u64>,
}

/// The `database_query` node type, over one database.
#[derive(Clone)]
pub struct DatabaseQueryType {
    db: Arc<dyn Database>,
}

impl std::fmt::Debug for DatabaseQueryType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseQueryType").finish_non_exhaustive()
    }
}

impl DatabaseQueryType {
    /// The type, running queries on `db`.
    pub fn new(db: Arc<dyn Database>) -> Self {
        Self { db }
    }
}

impl NodeType for DatabaseQueryType {
    fn build(&self, config: &Value) -> Result<Arc<dyn Node>, ConfigError> {
        let c = Config::deserialize(config)
            .map_err(|e| ConfigError::new(format!("database_query config: {e}")))?;
        if c.sql.trim().is_empty() || c.sql.len() > MAX_SQL_BYTES || c.sql.contains('\0') {
            return Err(ConfigError::new(format!(
                "`sql` must be 1-{MAX_SQL_BYTES} bytes without NUL"
            )));
        }
        let max_rows = c.max_rows.unwrap_or(DEFAULT_MAX_ROWS);
        if !(1..=MAX_ROWS).contains(&max_rows) {
            return Err(ConfigError::new(format!("`max_rows` must be 1-{MAX_ROWS}")));
        }
        Ok(Arc::new(DatabaseQuery {
            db: Arc::clone(&self.db),
            sql: c.sql,
            analytics: c.analytics,
            max_rows,
        }))
    }
}

/// A configured `database_query` node.
pub struct DatabaseQuery {
    db: Arc<dyn Database>,
    sql: String,
    analytics: bool,
    max_rows: u64,
}

impl std::fmt::Debug for DatabaseQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseQuery")
            .field("sql", &self.sql)
            .field("analytics", &self.analytics)
            .field("max_rows", &self.max_rows)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Node for DatabaseQuery {
    fn ports(&self) -> Ports {
        Ports::named(&["params"], &["rows", "row_count"])
    }

    fn required_feature(&self) -> Option<&str> {
        self.analytics.then_some(ADVANCED_ANALYTICS)
    }

    async fn run(&self, ctx: &NodeContext<'_>, input: Values) -> Result<Values, NodeError> {
        let params = match input.get("params") {
            None => Vec::new(),
            Some(Value::Array(p)) if p.len() <= MAX_PARAMS => p.clone(),
            Some(Value::Array(_)) => {
                return Err(NodeError::new(format!(
                    "input `params` has more than {MAX_PARAMS} values"
                )));
            }
            Some(_) => return Err(NodeError::new("input `params` must be an array")),
        };
        let limits = QueryLimits {
            max_rows: self.max_rows,
            max_bytes: ctx.budget_remaining,
        };
        let rows = self
            .db
            .query(
                &ctx.run.tenant.id,
                &self.sql,
                &params,
                self.analytics,
                limits,
            )
            .await
            .map_err(|e| NodeError::new(format!("the query failed: {e}")))?;
        let count = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        if count > self.max_rows {
            return Err(NodeError::new(format!(
                "the query returned more than max_rows ({}) rows",
                self.max_rows
            )));
        }
        let rows = Value::Array(rows);
        let bytes = json_size(&rows);
        if bytes > ctx.budget_remaining {
            return Err(NodeError::new(format!(
                "the query returned {bytes} bytes of rows, past the {} bytes left in the run's budget",
                ctx.budget_remaining
            )));
        }
        Ok(Values::from_iter([
            ("rows".to_owned(), rows),
            ("row_count".to_owned(), Value::from(count)),
        ]))
    }
}
