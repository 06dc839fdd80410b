//! The node types a runtime offers, each with the tenant feature it needs.
//!
//! [`NodeRegistry::builtin`] holds the built-in types (`transform`, open to
//! every tenant). User types come in through [`NodeRegistry::register_custom`]
//! and need the tenant feature [`CUSTOM_NODES`]; a type gated by another
//! feature (`llm` by `ai_enabled`, say) through [`NodeRegistry::register_gated`].
//! Validation refuses a node whose type is missing or whose tenant lacks
//! the feature, naming the node.
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
//! // Built-in names cannot be taken over.
//! assert!(registry.register_custom("transform", TransformType).is_err());
//! # Ok::<(), kailash_runtime::registry::RegistryError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::definition::is_valid_name;
use crate::node::NodeType;
use crate::transform::{TRANSFORM, TransformType};

/// The tenant feature user-registered node types need.
pub const CUSTOM_NODES: &str = "custom_nodes";

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

    fn insert(
        &mut self,
        name: &str,
        feature: Option<Arc<str>>,
        node_type: Arc<dyn NodeType>,
    ) -> Result<&mut Self, RegistryError> {
        if !is_valid_name(name) {
            return Err(RegistryError::InvalidName(name.to_owned()));
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
