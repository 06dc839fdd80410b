//! CORS: the validation of configured origins and the one layer built from
//! them.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::GatewayError;

/// Validates CORS origins: explicit `scheme://host[:port]` values, or `*`
/// alone and never with credentials.
pub(crate) fn origins(
    origins: &[String],
    credentials: bool,
) -> Result<Option<AllowOrigin>, GatewayError> {
    if origins.is_empty() {
        return Ok(None);
    }
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            return Err(GatewayError::Cors(
                "`*` cannot be combined with explicit origins".into(),
            ));
        }
        if credentials {
            return Err(GatewayError::Cors(
                "credentials are only allowed with explicit origins, never with `*`".into(),
            ));
        }
        return Ok(Some(AllowOrigin::any()));
    }
    let mut values = Vec::with_capacity(origins.len());
    for origin in origins {
        let uri: http::Uri = origin
            .parse()
            .map_err(|_| GatewayError::Cors(format!("origin {origin:?} is not a URL")))?;
        let well_formed = matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some()
            && uri
                .path_and_query()
                .is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty())
            && !origin.ends_with('/');
        if !well_formed {
            return Err(GatewayError::Cors(format!(
                "origin {origin:?} must be scheme://host[:port] with no path"
            )));
        }
        values.push(HeaderValue::from_str(origin).map_err(|_| {
            GatewayError::Cors(format!("origin {origin:?} is not a valid header value"))
        })?);
    }
    Ok(Some(AllowOrigin::list(values)))
}

/// The CORS layer for validated `origins`: the methods and headers the
/// gateway's routes use, and the headers a browser client needs to read
/// (request id, `Retry-After`, `WWW-Authenticate`).
pub(crate) fn layer(origins: AllowOrigin, credentials: bool, max_age: Duration) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-tenant-id"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
        ])
        .max_age(max_age);
    if credentials {
        layer.allow_credentials(true)
    } else {
        layer
    }
}
