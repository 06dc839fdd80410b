//! The users `POST /api/access/explain` explains: kailash-auth's users,
//! seen by kailash-access through its [`Directory`] trait (the two domain
//! crates meet here, in the facade, not in each other).

use kailash_access::http::{Directory, DirectoryError};
use kailash_auth::service::{AuthError, AuthService};
use kailash_core::Principal;

/// The authentication service's users, as the principals a login gives them.
pub(crate) struct AuthDirectory(pub(crate) AuthService);

#[async_trait::async_trait]
impl Directory for AuthDirectory {
    async fn principal(&self, username: &str) -> Result<Option<Principal>, DirectoryError> {
        // Every failure of the lookup is the backend's (an unknown user is
        // `Ok(None)`); the route answers 503 for it.
        self.0
            .principal_of(username)
            .await
            .map_err(|_: AuthError| DirectoryError::Unavailable)
    }
}
