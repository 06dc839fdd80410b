//! JWT authentication on an axum router with your own user store: a
//! `UserStore` over your accounts, kailash-auth's `AuthService` behind
//! `POST /auth/login` and `POST /auth/logout`, and `JwtAuthLayer` in front
//! of `GET /me` (401 without a token; a logged-out token is refused at once).
//!
//! ```text
//! cargo run -p kailash-examples --example jwt_auth_axum -- 127.0.0.1:3000
//! TOKEN=$(curl -s localhost:3000/auth/login -H 'content-type: application/json' \
//!   -d '{"username":"alice","password":"Alice-Example-Passw0rd!"}' | jq -r .access_token)
//! curl -i localhost:3000/me -H "authorization: Bearer $TOKEN"   # 200 "hello alice"
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::{Router, routing::get};
use kailash::audit::MemoryAuditSink;
use kailash::auth::jwt::{Algorithm, KeySet, SigningKey};
use kailash::auth::layer::JwtAuthLayer;
use kailash::auth::password::{Password, PasswordHasher};
use kailash::auth::service::{AuthConfig, AuthService};
use kailash::auth::users::{Credential, UserRecord, UserStore, UserStoreError};
use kailash::clock::{Clock, SystemClock};
use kailash::context::SetRequestContextLayer;
use kailash::problem::ProblemJsonLayer;
use kailash::state::SharedState;
use kailash::{Principal, TenantId};

/// Your accounts: here a map; a database or a directory in real life.
struct Accounts(HashMap<String, UserRecord>);

#[async_trait]
impl UserStore for Accounts {
    async fn find_by_username(&self, username: &str) -> Result<Option<UserRecord>, UserStoreError> {
        Ok(self.0.get(username).cloned())
    }
    async fn find_by_subject(&self, subject: &str) -> Result<Option<UserRecord>, UserStoreError> {
        Ok(self.0.values().find(|u| u.subject == subject).cloned())
    }
}

async fn me(principal: Principal) -> String {
    format!("hello {}\n", principal.subject())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let addr: SocketAddr = arg
        .parse()
        .map_err(|e| format!("listen address {arg:?}: {e}"))?;
    let hash = PasswordHasher::default().hash(&Password::new("Alice-Example-Passw0rd!"))?;
    let alice = UserRecord {
        subject: "alice".into(),
        username: "alice".into(),
        tenant: Some(TenantId::new("acme")?),
        roles: vec!["analyst".into()],
        attributes: Default::default(),
        credential: Credential::Hash(hash),
        active: true,
        totp_secret: None,
    };
    let users = Accounts(HashMap::from([("alice".to_owned(), alice)]));

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "k1")?,
        clock.clone(),
    ));
    let config = AuthConfig {
        issuer: "https://id.example".into(),
        audience: "api".into(),
        ..AuthConfig::default()
    };
    let state = SharedState::memory(clock);
    let auth = AuthService::new(
        config,
        Arc::new(users),
        keys,
        state,
        Arc::new(MemoryAuditSink::with_capacity(1000)),
    );

    // The same verifier, token cache and session store as the login: a
    // logged-out session's token is refused before it expires.
    let jwt = JwtAuthLayer::new(auth.access_verifier())
        .cache(auth.token_cache())
        .session_check(Arc::new(auth.sessions().clone()))
        .public_path("/auth/login")
        .public_path("/auth/refresh");
    let app = Router::new()
        .route("/me", get(me))
        .merge(kailash::auth::http::router(auth))
        .layer(jwt)
        .layer(SetRequestContextLayer::new())
        .layer(ProblemJsonLayer::new());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
