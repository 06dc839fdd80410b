//! The gateway's side of SAML 2.0 sign-in (`[auth.saml]`, feature `saml`):
//! the Service Provider built from the configuration. The flow itself is
//! [`kailash_auth::saml`]; the routes are `GET /auth/saml/metadata`,
//! `GET /auth/saml/login` and `POST /auth/saml/acs`.
//!
//! The IdP's certificate is read from `idp_certificate_file` (relative to
//! the data directory) at start; no secret is configured (AuthnRequests
//! are not signed), so none can reach a log.

use std::sync::Arc;

use kailash_auth::saml::SamlServiceProvider;
use kailash_auth::spec::SamlSpec;
use kailash_core::state::SharedState;

use crate::GatewayError;

/// The Service Provider `[auth.saml]` describes.
pub(crate) fn provider_from_config(
    spec: &SamlSpec,
    data_dir: &std::path::Path,
    state: &SharedState,
) -> Result<Arc<SamlServiceProvider>, GatewayError> {
    let err = |m: String| GatewayError::Auth(format!("auth.saml: {m}"));
    // An absolute path replaces the base (Path::join's own rule).
    let path = data_dir.join(&spec.idp_certificate_file);
    let pem = std::fs::read_to_string(&path).map_err(|e| {
        err(format!(
            "idp_certificate_file {}: {}",
            path.display(),
            e.kind()
        ))
    })?;
    SamlServiceProvider::new(spec.clone(), &pem, state.clone())
        .map(Arc::new)
        .map_err(|e| err(e.to_string()))
}
