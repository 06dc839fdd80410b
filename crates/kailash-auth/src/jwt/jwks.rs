//! JWKS (RFC 7517) parsing into verifying keys.

use data_encoding::BASE64URL_NOPAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use super::algorithm::Algorithm;
use super::error::KeySetError;
use super::keys::VerifyingKey;

fn b64_len(s: &str) -> Option<usize> {
    BASE64URL_NOPAD.decode(s.as_bytes()).ok().map(|v| v.len())
}

/// The longest `kid` a log line repeats (a JWKS is remote input).
const MAX_LOGGED_KID: usize = 64;

/// Parses the usable keys of a JWKS document.
///
/// A key this crate cannot use — an encryption key (`use` other than
/// `sig`), an unsupported `kty`, curve or `alg` (P-384, `oct`), missing or
/// invalid parameters, no `kid` — is logged and skipped, as RFC 7517 §5
/// advises, so one such key does not take the provider's signing keys down
/// with it. Keys sharing a `kid` are all skipped: a token naming that `kid`
/// could not say which one it means. Only a document that is not a JWKS at
/// all is an error; a set with no usable key comes back empty.
pub(crate) fn parse(doc: &Value) -> Result<Vec<VerifyingKey>, KeySetError> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(KeySetError::NotAJwks)?;
    let mut out: Vec<VerifyingKey> = Vec::with_capacity(keys.len());
    let mut ambiguous: Vec<String> = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        match parse_entry(index, key) {
            Ok(key) => {
                if out.iter().any(|k| k.kid() == key.kid()) {
                    ambiguous.push(key.kid().to_owned());
                } else {
                    out.push(key);
                }
            }
            Err(e) => skipped(&e),
        }
    }
    for kid in ambiguous {
        out.retain(|k| k.kid() != kid);
        skipped(&KeySetError::DuplicateKid { kid });
    }
    Ok(out)
}

/// One entry of `keys`.
fn parse_entry(index: usize, key: &Value) -> Result<VerifyingKey, KeySetError> {
    let obj = key.as_object().ok_or(KeySetError::MissingKid { index })?;
    let kid = obj
        .get("kid")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or(KeySetError::MissingKid { index })?
        .to_owned();
    parse_one(obj, kid)
}

/// Logs a skipped key; the message names the `kid` (shortened), never key
/// material.
fn skipped(error: &KeySetError) {
    let mut reason = error.to_string();
    if reason.len() > MAX_LOGGED_KID + 64 {
        let mut end = MAX_LOGGED_KID + 64;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    tracing::warn!(%reason, "JWKS key skipped: it cannot verify tokens here");
}

fn parse_one(
    obj: &serde_json::Map<String, Value>,
    kid: String,
) -> Result<VerifyingKey, KeySetError> {
    let unsupported = || KeySetError::Unsupported { kid: kid.clone() };
    let invalid = || KeySetError::InvalidJwk { kid: kid.clone() };
    let field = |name: &str| obj.get(name).and_then(Value::as_str);
    if let Some(u) = obj.get("use")
        && u.as_str() != Some("sig")
    {
        return Err(unsupported());
    }
    let alg = match (field("kty"), field("crv")) {
        (Some("RSA"), _) => Algorithm::RS256,
        (Some("EC"), Some("P-256")) => Algorithm::ES256,
        (Some("OKP"), Some("Ed25519")) => Algorithm::EdDSA,
        _ => return Err(unsupported()),
    };
    match obj.get("alg") {
        None => {}
        Some(a) if a.as_str() == Some(alg.as_str()) => {}
        Some(_) => return Err(unsupported()),
    }
    let decoding = match alg {
        Algorithm::RS256 => {
            let (n, e) = (
                field("n").ok_or_else(invalid)?,
                field("e").ok_or_else(invalid)?,
            );
            // At least 2048-bit moduli.
            if b64_len(n).is_none_or(|l| l < 256) || b64_len(e).is_none_or(|l| l == 0 || l > 8) {
                return Err(invalid());
            }
            DecodingKey::from_rsa_components(n, e)
        }
        Algorithm::ES256 => {
            let (x, y) = (
                field("x").ok_or_else(invalid)?,
                field("y").ok_or_else(invalid)?,
            );
            if b64_len(x) != Some(32) || b64_len(y) != Some(32) {
                return Err(invalid());
            }
            DecodingKey::from_ec_components(x, y)
        }
        Algorithm::EdDSA => {
            let x = field("x").ok_or_else(invalid)?;
            if b64_len(x) != Some(32) {
                return Err(invalid());
            }
            DecodingKey::from_ed_components(x)
        }
        Algorithm::HS256 => return Err(unsupported()),
    }
    .map_err(|_| invalid())?;
    let jwk: Jwk = serde_json::from_value(Value::Object(obj.clone())).map_err(|_| invalid())?;
    Ok(VerifyingKey::from_parts(kid, alg, decoding, jwk))
}
