//! ID token validation (OpenID Connect Core 1.0 §3.1.3.7, RFC 8725).

use data_encoding::BASE64URL_NOPAD;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::OidcError;
use crate::jwt::{Algorithm, RemoteKeySet};
use crate::oidc_spec::OidcProviderSpec;

/// The largest ID token accepted, in bytes.
pub const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;

/// Clock skew allowed on `exp`, `iat` and `nbf`.
const LEEWAY_SECS: i64 = 60;

/// What an ID token must match.
#[derive(Debug, Clone, Copy)]
pub struct IdTokenExpect<'a> {
    /// The provider's configuration (client id, Microsoft tenants).
    pub spec: &'a OidcProviderSpec,
    /// The discovery document's issuer (with `{tenantid}` for a Microsoft
    /// multi-tenant endpoint).
    pub issuer: &'a str,
    /// The algorithms the provider signs ID tokens with (empty: any this
    /// crate verifies).
    pub algorithms: &'a [String],
    /// The sign-in's nonce.
    pub nonce: &'a str,
    /// When the sign-in started (Unix seconds): an older `iat` is refused.
    pub started: i64,
    /// The access token issued with it, checked against `at_hash`.
    pub access_token: Option<&'a str>,
    /// Now (Unix seconds).
    pub now: i64,
}

fn refused(m: &'static str) -> OidcError {
    OidcError::Refused(m)
}

/// The parts of a compact JWS, checked for shape, and its header.
struct Parsed<'a> {
    message: &'a str,
    signature: &'a str,
    payload: Map<String, Value>,
    alg: Algorithm,
    kid: Option<String>,
}

/// Splits and decodes `token` without any key: the shape, the header
/// (`alg` one this crate verifies with a public key, no `crit`), the
/// payload a JSON object.
fn parse(token: &str) -> Result<Parsed<'_>, OidcError> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return Err(refused("the ID token is too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused("the ID token is not a signed JWT"));
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(refused("the ID token is not a signed JWT"));
    }
    let header = object(h)?;
    if header.contains_key("crit") {
        return Err(refused("the ID token has critical header extensions"));
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some(name) => Algorithm::from_name(name),
        None => None,
    };
    // `none` and HS256 (a key shared with the provider) never pass.
    let alg = alg
        .filter(|a| *a != Algorithm::HS256)
        .ok_or(refused("the ID token's algorithm is not accepted"))?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= 256 => Some(k.clone()),
        Some(_) => return Err(refused("the ID token's key id is malformed")),
    };
    Ok(Parsed {
        message: &token[..h.len() + 1 + p.len()],
        signature: s,
        payload: object(p)?,
        alg,
        kid,
    })
}

fn object(part: &str) -> Result<Map<String, Value>, OidcError> {
    let bytes = BASE64URL_NOPAD
        .decode(part.as_bytes())
        .map_err(|_| refused("the ID token is not a signed JWT"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(refused("the ID token is not a signed JWT")),
    }
}

/// Checks `token` against the provider's remote keys (refetched once on an
/// unknown `kid`) and returns its claims.
pub(crate) async fn validate(
    token: &str,
    keys: &RemoteKeySet,
    e: &IdTokenExpect<'_>,
) -> Result<Map<String, Value>, OidcError> {
    let kid = parse(token)?.kid;
    if keys.keys().lookup(kid.as_deref()).is_err()
        && keys.refresh_for_unknown_kid().await == crate::jwt::remote::Refetch::Failed
    {
        // A key the provider rotated in, and its JWKS cannot be fetched.
        return Err(OidcError::Unavailable(
            "the provider's JWKS could not be fetched".into(),
        ));
    }
    verify_id_token(token, keys.keys(), e)
}

/// Verifies an ID token (OpenID Connect Core 1.0 §3.1.3.7) against `keys`
/// and `expect`, and returns its claims: the signature by the key its
/// `kid` names with that key's algorithm (never `none` or HS256), `iss`,
/// `aud` (this client only), `azp`, `exp`, `iat` (not before the sign-in),
/// `nbf`, `nonce`, `sub`, and `at_hash` when present; at most 16 KiB.
pub fn verify_id_token(
    token: &str,
    keys: &crate::jwt::KeySet,
    e: &IdTokenExpect<'_>,
) -> Result<Map<String, Value>, OidcError> {
    let parsed = parse(token)?;
    if !e.algorithms.is_empty() && !e.algorithms.iter().any(|a| a == parsed.alg.as_str()) {
        return Err(refused(
            "the ID token's algorithm is not one the provider announced",
        ));
    }
    let key = keys
        .lookup(parsed.kid.as_deref())
        .map_err(|_| refused("the ID token is signed by an unknown key"))?;
    if key.algorithm() != parsed.alg {
        return Err(refused("the ID token's algorithm does not match its key"));
    }
    if !key.verify_signature(parsed.message.as_bytes(), parsed.signature) {
        return Err(refused("the ID token's signature is invalid"));
    }
    check_claims(&parsed.payload, parsed.alg, e)?;
    Ok(parsed.payload)
}

/// The claim checks, after the signature.
fn check_claims(
    c: &Map<String, Value>,
    alg: Algorithm,
    e: &IdTokenExpect<'_>,
) -> Result<(), OidcError> {
    let text = |name: &str| c.get(name).and_then(Value::as_str);
    let int = |name: &str| c.get(name).and_then(Value::as_i64);
    // Issuer: exact; a Microsoft multi-tenant endpoint's is completed by the
    // token's own `tid`, which may be restricted.
    let iss = text("iss").ok_or(refused("the ID token has no issuer"))?;
    let expected = if e.spec.microsoft_multi_tenant() && e.issuer.contains("{tenantid}") {
        let tid = text("tid")
            .filter(|t| {
                !t.is_empty()
                    && t.len() <= 64
                    && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .ok_or(refused("the ID token names no directory (tid)"))?;
        if !e.spec.microsoft_allowed_tenants.is_empty()
            && !e.spec.microsoft_allowed_tenants.iter().any(|t| t == tid)
        {
            return Err(refused("the user's directory is not allowed to sign in"));
        }
        e.issuer.replace("{tenantid}", tid)
    } else {
        e.issuer.to_owned()
    };
    if iss != expected {
        return Err(refused("the ID token is from another issuer"));
    }
    // Audience: this client and no one else.
    let ours = |v: &Value| v.as_str() == Some(e.spec.client_id.as_str());
    match c.get("aud") {
        Some(Value::String(_)) if c.get("aud").is_some_and(ours) => {}
        Some(Value::Array(list)) if !list.is_empty() && list.iter().all(ours) => {}
        _ => return Err(refused("the ID token is meant for another client")),
    }
    if let Some(azp) = c.get("azp")
        && !ours(azp)
    {
        return Err(refused("the ID token was issued to another client"));
    }
    let exp = int("exp").ok_or(refused("the ID token has no expiry"))?;
    if e.now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(refused("the ID token has expired"));
    }
    let iat = int("iat").ok_or(refused("the ID token has no issue time"))?;
    if iat > e.now.saturating_add(LEEWAY_SECS) || iat < e.started.saturating_sub(LEEWAY_SECS) {
        return Err(refused("the ID token was not issued for this sign-in"));
    }
    if let Some(nbf) = c.get("nbf") {
        let nbf = nbf
            .as_i64()
            .ok_or(refused("the ID token's nbf is malformed"))?;
        if e.now < nbf.saturating_sub(LEEWAY_SECS) {
            return Err(refused("the ID token is not valid yet"));
        }
    }
    let nonce = text("nonce").ok_or(refused("the ID token has no nonce"))?;
    if !bool::from(nonce.as_bytes().ct_eq(e.nonce.as_bytes())) {
        return Err(refused("the ID token's nonce does not match the sign-in"));
    }
    match text("sub") {
        Some(s) if !s.is_empty() && s.len() <= 255 => {}
        _ => return Err(refused("the ID token has no valid subject")),
    }
    // at_hash (§3.1.3.8), when present, binds the access token.
    if let (Some(at_hash), Some(access)) = (c.get("at_hash"), e.access_token)
        && matches!(alg, Algorithm::RS256 | Algorithm::ES256)
    {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
        let expected = BASE64URL_NOPAD.encode(&digest.as_ref()[..16]);
        if at_hash.as_str() != Some(expected.as_str()) {
            return Err(refused(
                "the ID token's at_hash does not match the access token",
            ));
        }
    }
    Ok(())
}
