//! What the gateway tells its realtime hub: sessions that end close their
//! sockets at once, on every instance.

use async_trait::async_trait;
use kailash_auth::session::SessionListener;
use kailash_core::TenantId;
use kailash_realtime::Hub;

/// Closes the sockets of ended sessions (close code 4001) through the hub's
/// control topic, which reaches every instance sharing the state.
pub(crate) struct CloseSockets(pub(crate) Hub);

#[async_trait]
impl SessionListener for CloseSockets {
    async fn ended(&self, _tenant: Option<&TenantId>, _subject: &str, sessions: &[String]) {
        for session in sessions {
            if let Err(error) = self.0.revoke_session(session).await {
                // The sweep still closes them within a second.
                tracing::warn!(%error, "could not announce an ended session to realtime");
            }
        }
    }
}
