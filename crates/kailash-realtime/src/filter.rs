//! [`EventFilter`]: per-connection decisions whether an event may be
//! delivered, and the three filters every hub runs by default.
//!
//! A hub asks its filters, in order, for every (event, connection) pair
//! its audience selects — live deliveries and `resume` replays alike — and
//! delivers only when all of them allow. The defaults ([`Filters::defaults`]):
//!
//! - [`TenantIsolation`]: the event's tenant is the connection's tenant
//!   (the hub also keeps tenants apart structurally — one bus topic and one
//!   history per tenant — this is the second line);
//! - [`RequiredPermission`]: `metadata.required_permission` is granted to
//!   the connection's principal by the `kailash-access` policy in force
//!   (RBAC and ABAC alike; conditions on `data.*` deny, there is no
//!   resource); without an [`AccessControl`] every event that requires a
//!   permission is refused;
//! - [`ClearanceFilter`]: the event's classification is at most the
//!   principal's clearance, read from its `clearance` attribute (the same
//!   attribute the ABAC policies compare as `user.clearance`); a principal
//!   without one, or with an unknown label, has clearance `public`.
//!
//! Add your own with [`Filters::with`]:
//!
//! ```
//! use kailash_realtime::event::Event;
//! use kailash_realtime::filter::{ConnectionView, EventFilter, Filters};
//!
//! /// Only events of type `workflow.*`.
//! struct WorkflowsOnly;
//! impl EventFilter for WorkflowsOnly {
//!     fn allows(&self, _: &ConnectionView<'_>, event: &Event) -> bool {
//!         event.event.starts_with("workflow.")
//!     }
//! }
//!
//! let filters = Filters::defaults(None).with(WorkflowsOnly);
//! assert_eq!(filters.len(), 4);
//! ```

use std::sync::Arc;

use kailash_access::AccessControl;
use kailash_core::{Principal, TenantId};

use crate::event::{Classification, Event};

/// The principal attribute holding a clearance label.
pub const CLEARANCE_ATTRIBUTE: &str = "clearance";

/// What a filter sees of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionView<'a> {
    /// The connection id.
    pub id: &'a str,
    /// The authenticated principal (after any refresh).
    pub principal: &'a Principal,
    /// The connection's tenant.
    pub tenant: &'a TenantId,
}

/// Decides whether one event may reach one connection. Must be cheap,
/// must not block (it runs for every delivery), must not panic.
pub trait EventFilter: Send + Sync + 'static {
    /// Whether `event` may be delivered to `connection`.
    fn allows(&self, connection: &ConnectionView<'_>, event: &Event) -> bool;
}

/// The event's tenant must be the connection's.
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantIsolation;

impl EventFilter for TenantIsolation {
    fn allows(&self, connection: &ConnectionView<'_>, event: &Event) -> bool {
        &event.tenant_id == connection.tenant
    }
}

/// The event's required permission must be granted to the connection's
/// principal by `kailash-access`.
#[derive(Debug, Clone, Default)]
pub struct RequiredPermission {
    access: Option<AccessControl>,
}

impl RequiredPermission {
    /// Decides with `access`; `None` refuses every event that requires a
    /// permission (fail closed).
    pub fn new(access: Option<AccessControl>) -> Self {
        Self { access }
    }
}

impl EventFilter for RequiredPermission {
    fn allows(&self, connection: &ConnectionView<'_>, event: &Event) -> bool {
        let Some(permission) = &event.metadata.required_permission else {
            return true;
        };
        match &self.access {
            Some(access) => {
                access
                    .decide(&access.request(connection.principal, permission, None))
                    .allowed
            }
            None => false,
        }
    }
}

/// The principal's clearance (attribute [`CLEARANCE_ATTRIBUTE`]); `public`
/// when absent. An unknown label is also `public` here: a clearance that
/// cannot be read grants nothing.
pub fn clearance_of(principal: &Principal) -> Classification {
    match principal
        .attribute(CLEARANCE_ATTRIBUTE)
        .and_then(|v| v.as_str())
    {
        Some(label) => match Classification::from_label(label) {
            // `from_label` reads unknown labels as the highest, which is
            // right for an event and wrong for a clearance.
            Classification::Secret if !label.eq_ignore_ascii_case("secret") => {
                Classification::Public
            }
            c => c,
        },
        None => Classification::Public,
    }
}

/// The event's classification must not exceed the principal's clearance.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClearanceFilter;

impl EventFilter for ClearanceFilter {
    fn allows(&self, connection: &ConnectionView<'_>, event: &Event) -> bool {
        event.metadata.classification <= clearance_of(connection.principal)
    }
}

/// An ordered list of filters; all must allow.
#[derive(Clone, Default)]
pub struct Filters {
    filters: Vec<Arc<dyn EventFilter>>,
}

impl std::fmt::Debug for Filters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filters")
            .field("len", &self.filters.len())
            .finish()
    }
}

impl Filters {
    /// No filters at all (tenants are still kept apart by the hub's
    /// structure; use [`defaults`](Self::defaults) unless you know why not).
    pub fn none() -> Self {
        Self::default()
    }

    /// Tenant isolation, required permission (decided by `access`) and
    /// classification against clearance.
    pub fn defaults(access: Option<AccessControl>) -> Self {
        Self::none()
            .with(TenantIsolation)
            .with(RequiredPermission::new(access))
            .with(ClearanceFilter)
    }

    /// Adds `filter` after the others.
    #[must_use]
    pub fn with(mut self, filter: impl EventFilter) -> Self {
        self.filters.push(Arc::new(filter));
        self
    }

    /// How many filters there are.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether every filter allows `event` for `connection`.
    pub fn allows(&self, connection: &ConnectionView<'_>, event: &Event) -> bool {
        self.filters.iter().all(|f| f.allows(connection, event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(p: &'a Principal, t: &'a TenantId) -> ConnectionView<'a> {
        ConnectionView {
            id: "c",
            principal: p,
            tenant: t,
        }
    }

    #[test]
    fn clearance_reads_the_attribute_and_unknown_grants_nothing() {
        let acme = TenantId::new("acme").unwrap();
        let secret = Event::new(acme.clone(), "c", "e")
            .unwrap()
            .classification(Classification::Secret);
        let internal = secret.clone().classification(Classification::Internal);
        let cleared = |label: &str| {
            Principal::builder("u")
                .attribute(CLEARANCE_ATTRIBUTE, label)
                .build()
        };
        let none = Principal::builder("u").build();
        let f = ClearanceFilter;
        assert!(f.allows(&view(&cleared("secret"), &acme), &secret));
        assert!(!f.allows(&view(&cleared("confidential"), &acme), &secret));
        assert!(f.allows(&view(&cleared("Confidential"), &acme), &internal));
        assert!(!f.allows(&view(&cleared("cosmic"), &acme), &internal));
        assert!(!f.allows(&view(&none, &acme), &internal));
        let public = internal.classification(Classification::Public);
        assert!(f.allows(&view(&none, &acme), &public));
    }

    #[test]
    fn permission_without_access_control_fails_closed() {
        let acme = TenantId::new("acme").unwrap();
        let p = Principal::builder("u").role("admin").build();
        let e = Event::new(acme.clone(), "c", "e").unwrap();
        let f = RequiredPermission::new(None);
        assert!(f.allows(&view(&p, &acme), &e));
        let e = e.required_permission("report:view").unwrap();
        assert!(!f.allows(&view(&p, &acme), &e));
        let other = TenantId::new("globex").unwrap();
        assert!(!TenantIsolation.allows(&view(&p, &other), &e));
    }
}
