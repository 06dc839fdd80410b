use std::sync::Arc;

use tower::Layer;

use crate::control::AccessControl;
use crate::permission::{Permission, PermissionError};

use super::config::Config;
use super::service::RequirePermission;

/// Requires a permission on every request through it; see the
/// [module docs](super).
#[derive(Debug, Clone)]
pub struct RequirePermissionLayer {
    pub(crate) config: Arc<Config>,
}

impl RequirePermissionLayer {
    /// Requires `permission` (`resource:action`).
    ///
    /// The [`AccessControl`] comes from [`access`](Self::access) or, when
    /// not set, from the request's extensions (the gateway inserts it); a
    /// request through a layer that has neither answers `500`, never passes.
    ///
    /// # Panics
    ///
    /// When `permission` is not a valid permission literal — like an
    /// invalid route path in axum, a programming error caught at startup.
    /// Use [`try_new`](Self::try_new) for permissions that come from input.
    pub fn new(permission: &str) -> Self {
        match Self::try_new(permission) {
            Ok(layer) => layer,
            Err(e) => panic!("RequirePermissionLayer::new: {e}"),
        }
    }

    /// Requires `permission`, refusing an invalid one.
    pub fn try_new(permission: &str) -> Result<Self, PermissionError> {
        Ok(Self::permission(Permission::parse(permission)?))
    }

    /// Requires an already parsed permission.
    pub fn permission(permission: Permission) -> Self {
        Self {
            config: Arc::new(Config {
                permission,
                alternatives: Vec::new(),
                access: None,
                defer_resource: false,
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            permission: self.config.permission.clone(),
            alternatives: self.config.alternatives.clone(),
            access: self.config.access.clone(),
            defer_resource: self.config.defer_resource,
        };
        f(&mut config);
        Self {
            config: Arc::new(config),
        }
    }

    /// Decides with this access control rather than the one in the request.
    #[must_use]
    pub fn access(self, access: AccessControl) -> Self {
        self.with(|c| c.access = Some(access))
    }

    /// Also admits a request that holds `permission` instead: the request
    /// passes when any of the required permissions is allowed (tried in
    /// order; only when the first is denied are the others decided). The
    /// one audit entry records the permission that allowed, or the first
    /// permission's denial. For routes that two duties may use, like
    /// `POST /api/access/explain` (`audit:view` or `system:configure`).
    ///
    /// # Panics
    ///
    /// When `permission` is not a valid permission literal, like
    /// [`new`](Self::new).
    #[must_use]
    pub fn or(self, permission: &str) -> Self {
        match Permission::parse(permission) {
            Ok(p) => self.with(|c| c.alternatives.push(p)),
            Err(e) => panic!("RequirePermissionLayer::or: {e}"),
        }
    }

    /// Leaves conditions that read `data.*` to the handler (see the
    /// [module docs](super)).
    #[must_use]
    pub fn defer_resource(self) -> Self {
        self.with(|c| c.defer_resource = true)
    }

    /// The required permission.
    pub fn required(&self) -> &Permission {
        &self.config.permission
    }
}

impl<S> Layer<S> for RequirePermissionLayer {
    type Service = RequirePermission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermission {
            inner,
            config: self.config.clone(),
        }
    }
}
