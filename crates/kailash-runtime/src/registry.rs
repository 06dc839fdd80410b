//! The node types a runtime offers, each with the tenant feature it needs.
//!
//! [`NodeRegistry::builtin`] holds the built-in types (`transform`, open to
//! every tenant). User types come in through [`NodeRegistry::register_custom`]
//! and need the tenant feature [`CUSTOM_NODES`]; a type gated by another
//! feature (`llm` by `ai_enabled`, say) through [`NodeRegistry::register_gated`].
//! Validation refuses a node whose type is missing or whose tenant lacks
//! the feature, naming the node.
//!
//! The other built-in types come with what they need:
//! [`NodeRegistry::with_database`] adds `database_query` over a
//! [`Database`], and (feature `outbound`) `NodeRegistry::with_outbound`
//! adds `http_request` and `llm` (gated by `ai_enabled`) over the
//! configured integrations. Their names ([`RESERVED`]) are never open to
//! user types, whether or not they are offered.
//!
//! ```
//! use std::sync::Arc;
//! use kailash_runtime::{NodeRegistry, transform::TransformType, registry::CUSTOM_NODES};
//!
//! let mut registry = NodeRegistry::builtin();
//! // A user type (here the transform type under another name).
//! registry.register_custom("reshape", TransformType)?;
//! assert_eq!(registry.required_feature("reshape"), Some(Some(CUSTOM_NODES)));
//! assert_eq!(registry.required_feature("transform"), Some(None));
//! assert_eq!(registry.required_feature("nope"), None);
//! // Built-in names cannot be taken over, offered or not.
//! assert!(registry.register_custom("transform", TransformType).is_err());
//! assert!(registry.register_custom("llm", TransformType).is_err());
//! # Ok::<(), kailash_runtime::registry::RegistryError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::database::{DATABASE_QUERY, Database, DatabaseQueryType};
use crate::definition::is_valid_name;
use crate::node::NodeType;
use crate::transform::{TRANSFORM, TransformType};

/// The tenant feature user-registered node types need.
pub const CUSTOM_NODES: &str = "custom_nodes";

/// The built-in type names, which [`NodeRegistry::register_custom`],
/// [`NodeRegistry::register_gated`] and [`NodeRegistry::register_open`]
/// refuse even when the type is not offered.
pub const RESERVED: [&str; 4] = [TRANSFORM, "http_request", "llm", DATABASE_QUERY];

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) node_type: Arc<dyn NodeType>,
    pub(crate) feature: Option<Arc<str>>,
}

/// Why a node type could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name is not 1-64 ASCII letters, digits, `_` or `-`.
    #[error("node type name {0:?} must be 1-64 ASCII letters, digits, `_` or `-`")]
    InvalidName(String),
    /// A type of that name is registered already.
    #[error("node type {0:?} is registered already")]
    Taken(String),
    /// The name is a built-in type's ([`RESERVED`]).
    #[error("node type name {0:?} is reserved for a built-in type")]
    Reserved(String),
}

/// Node types by name. Cheap to clone; a clone registering more types
/// does not change the others.
#[derive(Clone)]
pub struct NodeRegistry {
    types: Arc<BTreeMap<String, Entry>>,
}

impl fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.types.iter().map(|(k, e)| (k, e.feature.as_deref())))
            .finish()
    }
}

impl Default for NodeRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl NodeRegistry {
    /// The built-in node types: `transform`.
    pub fn builtin() -> Self {
        let mut types = BTreeMap::new();
        types.insert(
            TRANSFORM.to_owned(),
            Entry {
                node_type: Arc::new(TransformType),
                feature: None,
            },
        );
        Self {
            types: Arc::new(types),
        }
    }

    /// Registers a user node type; tenants need the [`CUSTOM_NODES`]
    /// feature to use it.
    pub fn register_custom(
        &mut self,
        name: &str,
        node_type: impl NodeType,
    ) -> Result<&mut Self, RegistryError> {
        self.register_gated(name, CUSTOM_NODES, node_type)
    }

    /// Registers a node type that tenants may use only with `feature`
    /// enabled (the hook for `ai_enabled` gating `llm`, for example).
    pub fn register_gated(
        &mut self,
        name: &str,
        feature: &str,
        node_type: impl NodeType,
    ) -> Result<&mut Self, RegistryError> {
        self.insert(name, Some(feature.into()), Arc::new(node_type))
    }

    /// Registers a node type every tenant may use (a built-in added by
    /// another crate, such as `http_request`, whose own checks gate it).
    pub fn register_open(
        &mut self,
        name: &str,
        node_type: impl NodeType,
    ) -> Result<&mut Self, RegistryError> {
        self.insert(name, None, Arc::new(node_type))
    }

    /// Offers `database_query`, running its queries on `db` (replacing a
    /// database registered before).
    #[must_use]
    pub fn with_database(mut self, db: Arc<dyn Database>) -> Self {
        self.put_builtin(DATABASE_QUERY, None, Arc::new(DatabaseQueryType::new(db)));
        self
    }

    /// Offers `http_request` (open to every tenant; each run needs the
    /// tenant to allow the node's integration) and `llm` (tenant feature
    /// `ai_enabled`) over `integrations`, replacing earlier ones.
    #[cfg(feature = "outbound")]
    #[must_use]
    pub fn with_outbound(mut self, integrations: &crate::outbound::Integrations) -> Self {
        use crate::outbound::{AI_ENABLED, HTTP_REQUEST, HttpRequestType, LLM, LlmType};
        self.put_builtin(
            HTTP_REQUEST,
            None,
            Arc::new(HttpRequestType::new(integrations.clone())),
        );
        self.put_builtin(
            LLM,
            Some(AI_ENABLED.into()),
            Arc::new(LlmType::new(integrations.clone())),
        );
        self
    }

    fn put_builtin(&mut self, name: &str, feature: Option<Arc<str>>, node_type: Arc<dyn NodeType>) {
        Arc::make_mut(&mut self.types).insert(name.to_owned(), Entry { node_type, feature });
    }

    fn insert(
        &mut self,
        name: &str,
        feature: Option<Arc<str>>,
        node_type: Arc<dyn NodeType>,
    ) -> Result<&mut Self, RegistryError> {
        if !is_valid_name(name) {
            return Err(RegistryError::InvalidName(name.to_owned()));
        }
        if RESERVED.contains(&name) {
            return Err(RegistryError::Reserved(name.to_owned()));
        }
        if self.types.contains_key(name) {
            return Err(RegistryError::Taken(name.to_owned()));
        }
        Arc::make_mut(&mut self.types).insert(name.to_owned(), Entry { node_type, feature });
        Ok(self)
    }

    /// `None` for an unknown type; otherwise the feature a tenant needs to
    /// use it (`Some(None)`: none).
    pub fn required_feature(&self, name: &str) -> Option<Option<&str>> {
        self.types.get(name).map(|e| e.feature.as_deref())
    }

    /// The registered type names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Entry> {
        self.types.get(name)
    }
}
