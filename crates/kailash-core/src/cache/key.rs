//! The key an entry is stored under: everything the answer may depend on
//! besides the request header fields its `Vary` names.

use std::hash::{Hash, Hasher};

use crate::{Principal, TenantId};

/// What a stored response belongs to. The whole key is kept with the entry
/// and compared on every lookup (the map compares keys with [`Eq`], the
/// hash only picks the bucket), so two owners whose keys hash alike never
/// see each other's entry.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    /// The path and query, exactly as requested.
    pub(crate) target: Box<str>,
    /// The resolved tenant (the tenancy layer's [`TenantId`]), or the
    /// principal's.
    pub(crate) tenant: Option<TenantId>,
    /// The authenticated caller, or none for a shared (`public`) entry.
    pub(crate) principal: Option<Principal>,
    /// The access policy's generation when the entry was made.
    pub(crate) generation: u64,
}

/// The caller parts an answer may depend on: who, in which session and
/// tenant, with which roles and attributes. Not the token id or its
/// expiry, so a refreshed token of the same session keeps its entries.
fn same_principal(a: &Principal, b: &Principal) -> bool {
    a.subject() == b.subject()
        && a.session_id() == b.session_id()
        && a.tenant() == b.tenant()
        && a.token_tenant() == b.token_tenant()
        && a.roles() == b.roles()
        && a.attributes() == b.attributes()
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.generation == other.generation
            && self.target == other.target
            && self.tenant == other.tenant
            && match (&self.principal, &other.principal) {
                (None, None) => true,
                (Some(a), Some(b)) => same_principal(a, b),
                _ => false,
            }
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A subset of what `eq` compares: equal keys hash alike.
        self.target.hash(state);
        self.tenant.hash(state);
        self.generation.hash(state);
        match &self.principal {
            Some(p) => {
                1u8.hash(state);
                p.subject().hash(state);
                p.session_id().hash(state);
            }
            None => 0u8.hash(state),
        }
    }
}

impl Key {
    /// The bytes the key occupies, for the byte budget.
    pub(crate) fn weight(&self) -> usize {
        self.target.len() + 64
    }
}
