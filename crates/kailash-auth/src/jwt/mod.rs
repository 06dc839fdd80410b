//! JSON Web Tokens: keys, key sets with rotation, JWKS, RFC 8725
//! verification and a verified-token cache.
//!
//! * Algorithms: RS256, ES256, EdDSA (Ed25519) and HS256 only. Every key
//!   carries its `kid` and [`Algorithm`]; a token's header never selects the
//!   algorithm, it must merely agree with the key.
//! * [`Verifier`] follows RFC 8725: size limit before parsing, `crit`
//!   refused, `jku`/`x5u`/`jwk`/`x5c` ignored, `typ` must be `at+jwt` (access)
//!   or `rt+jwt` (refresh) as configured, and `exp`/`nbf`/`iat` are checked
//!   against an injected [`Clock`](kailash_core::clock::Clock) with one leeway.
//!
//! ```
//! use std::sync::Arc;
//! use kailash_auth::jwt::{Algorithm, Claims, KeySet, SigningKey, TokenType, Verifier};
//! use kailash_core::clock::{Clock, SystemClock};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let clock: Arc<dyn Clock> = Arc::new(SystemClock);
//! let keys = Arc::new(KeySet::new(SigningKey::generate(Algorithm::EdDSA, "k1")?, clock.clone()));
//! let now = clock.now().as_second();
//! let token = keys.issue(&Claims::new("https://id.example", "alice", "api", now, now + 300), TokenType::Access)?;
//! let verifier = Verifier::builder(keys.clone(), "https://id.example", "api").clock(clock).build();
//! let claims = verifier.verify(&token).await?;
//! assert_eq!(claims.to_principal().subject(), "alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod algorithm;
#[cfg(feature = "axum")]
pub(crate) mod axum;
mod cache;
mod claims;
mod error;
mod jwks;
mod keys;
mod keyset;
pub(crate) mod remote;
mod verify;

pub use algorithm::{Algorithm, TokenType};
#[cfg(feature = "axum")]
pub use axum::{jwks_handler, jwks_router};
pub use cache::{DEFAULT_CACHE_CAPACITY, TokenCache};
pub use claims::Claims;
pub use error::{KeyError, KeySetError, VerifyError};
pub use keys::{MIN_HS256_SECRET, Pkcs8Pem, SigningKey, VerifyingKey};
pub use keyset::KeySet;
pub use remote::{DEFAULT_REFETCH_COOLDOWN, FileJwksSource, JwksSource, RemoteKeySet};
pub use verify::{DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_SIZE, KeySource, Verifier, VerifierBuilder};
