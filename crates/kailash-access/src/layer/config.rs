//! What [`RequirePermissionLayer`](super::RequirePermissionLayer) and its
//! service share.

use crate::control::AccessControl;
use crate::permission::Permission;

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) permission: Permission,
    /// Permissions any of which also admits the request (see `or`).
    pub(crate) alternatives: Vec<Permission>,
    pub(crate) access: Option<AccessControl>,
    pub(crate) defer_resource: bool,
}
