//! Database-per-tenant routing.
//!
//! A [`DatabaseRouter`] tells a data layer where one tenant's data lives:
//! its own database, its own schema in a shared database, or the shared
//! default (row-level isolation by tenant id). The PostgreSQL backend
//! implements it against its connection pools; [`StaticDatabaseRouter`]
//! routes from configuration.
//!
//! ```
//! use kailash_core::TenantId;
//! use kailash_tenancy::database::{DatabaseRouter, DatabaseTarget, StaticDatabaseRouter};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let acme = TenantId::new("acme").unwrap();
//! let router = StaticDatabaseRouter::new(DatabaseTarget::Shared)
//!     .route(acme.clone(), DatabaseTarget::Schema("tenant_acme".into()))
//!     .unwrap();
//! assert_eq!(router.target(&acme).await.unwrap(), DatabaseTarget::Schema("tenant_acme".into()));
//! let globex = TenantId::new("globex").unwrap();
//! assert_eq!(router.target(&globex).await.unwrap(), DatabaseTarget::Shared);
//! # });
//! ```

use std::collections::HashMap;

use async_trait::async_trait;
use kailash_core::TenantId;
use serde::{Deserialize, Serialize};

/// Where one tenant's data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum DatabaseTarget {
    /// The shared database, rows isolated by tenant id.
    Shared,
    /// A schema of its own in the shared database.
    Schema(String),
    /// A database of its own, by the name of a configured connection.
    Database(String),
}

/// Why a route could not be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// A schema or connection name that is not a plain identifier.
    #[error(
        "invalid database target name {0:?}: use [a-z0-9_], 1-63 characters, not starting with a digit"
    )]
    InvalidName(String),
    /// Two tenants were routed to the same schema or database.
    #[error("tenants `{0}` and `{1}` share a target; isolated targets must be distinct")]
    SharedTarget(TenantId, TenantId),
    /// The routing source cannot be reached.
    #[error("database routing unavailable: {0}")]
    Unavailable(String),
}

/// Routes a tenant to its database target.
#[async_trait]
pub trait DatabaseRouter: Send + Sync + 'static {
    /// The target for `tenant`.
    async fn target(&self, tenant: &TenantId) -> Result<DatabaseTarget, RoutingError>;
}

/// Routes from a fixed table, with a default for unlisted tenants.
#[derive(Debug, Clone)]
pub struct StaticDatabaseRouter {
    default: DatabaseTarget,
    routes: HashMap<TenantId, DatabaseTarget>,
}

/// Schema and connection names end up in SQL identifiers: keep them plain.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn check(target: &DatabaseTarget) -> Result<(), RoutingError> {
    match target {
        DatabaseTarget::Shared => Ok(()),
        DatabaseTarget::Schema(n) | DatabaseTarget::Database(n) if valid_name(n) => Ok(()),
        DatabaseTarget::Schema(n) | DatabaseTarget::Database(n) => {
            Err(RoutingError::InvalidName(n.clone()))
        }
    }
}

impl StaticDatabaseRouter {
    /// A router sending every tenant to `default` (which must not be an
    /// isolated target shared by all: use `Shared` or give routes).
    pub fn new(default: DatabaseTarget) -> Self {
        Self {
            default,
            routes: HashMap::new(),
        }
    }

    /// Routes `tenant` to `target`; an isolated target may serve one tenant only.
    pub fn route(mut self, tenant: TenantId, target: DatabaseTarget) -> Result<Self, RoutingError> {
        check(&target)?;
        if target != DatabaseTarget::Shared
            && let Some((other, _)) = self
                .routes
                .iter()
                .find(|(t, existing)| **existing == target && **t != tenant)
        {
            return Err(RoutingError::SharedTarget(other.clone(), tenant));
        }
        self.routes.insert(tenant, target);
        Ok(self)
    }
}

#[async_trait]
impl DatabaseRouter for StaticDatabaseRouter {
    async fn target(&self, tenant: &TenantId) -> Result<DatabaseTarget, RoutingError> {
        check(&self.default)?;
        Ok(self
            .routes
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| self.default.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    #[tokio::test]
    async fn routes_and_defaults() {
        let router = StaticDatabaseRouter::new(DatabaseTarget::Shared)
            .route(t("acme"), DatabaseTarget::Database("acme_db".into()))
            .unwrap()
            .route(t("globex"), DatabaseTarget::Schema("globex".into()))
            .unwrap();
        assert_eq!(
            router.target(&t("acme")).await.unwrap(),
            DatabaseTarget::Database("acme_db".into())
        );
        assert_eq!(
            router.target(&t("globex")).await.unwrap(),
            DatabaseTarget::Schema("globex".into())
        );
        assert_eq!(
            router.target(&t("initech")).await.unwrap(),
            DatabaseTarget::Shared
        );
    }

    #[test]
    fn names_that_could_inject_sql_are_refused() {
        for bad in ["", "Acme", "a-b", "a;drop", "1abc", "a b", &"x".repeat(64)] {
            let r = StaticDatabaseRouter::new(DatabaseTarget::Shared)
                .route(t("acme"), DatabaseTarget::Schema(bad.to_owned()));
            assert_eq!(
                r.unwrap_err(),
                RoutingError::InvalidName(bad.to_owned()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_isolated_target_serves_one_tenant() {
        let r = StaticDatabaseRouter::new(DatabaseTarget::Shared)
            .route(t("acme"), DatabaseTarget::Schema("s".into()))
            .unwrap()
            .route(t("globex"), DatabaseTarget::Schema("s".into()));
        assert_eq!(
            r.unwrap_err(),
            RoutingError::SharedTarget(t("acme"), t("globex"))
        );
        // Re-routing the same tenant is fine.
        assert!(
            StaticDatabaseRouter::new(DatabaseTarget::Shared)
                .route(t("acme"), DatabaseTarget::Schema("s".into()))
                .unwrap()
                .route(t("acme"), DatabaseTarget::Schema("s".into()))
                .is_ok()
        );
    }
}
