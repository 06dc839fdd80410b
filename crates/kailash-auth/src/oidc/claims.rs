//! From validated claims to an [`ExternalIdentity`]: username, roles from
//! groups, attributes for ABAC, the tenant, and whether the provider
//! asserted a second factor.

use std::collections::BTreeMap;

use kailash_core::{AttributeValue, TenantId};
use serde_json::{Map, Value};

use super::OidcError;
use crate::lockout::normalize_username;
use crate::oidc_spec::OidcProviderSpec;
use crate::service::{ExternalIdentity, external_subject};

/// The most groups read from a token.
const MAX_GROUPS: usize = 1000;
/// The longest username accepted.
const MAX_USERNAME: usize = 256;

fn refused(m: &'static str) -> OidcError {
    OidcError::Refused(m)
}

/// Claims about the sign-in itself (or the token), which only the ID token
/// states: userinfo never adds them.
const ID_TOKEN_ONLY: [&str; 11] = [
    "iss",
    "aud",
    "azp",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "at_hash",
    "amr",
    "acr",
    "auth_time",
];

/// Adds the userinfo answer's claims to the ID token's: its `sub` must be
/// the same; the ID token's claims win; claims about the authentication
/// event come from the ID token only; `email` and `email_verified` come
/// together from one source.
pub(super) fn merge_userinfo(
    claims: &mut Map<String, Value>,
    info: Map<String, Value>,
) -> Result<(), OidcError> {
    if info.get("sub") != claims.get("sub") {
        return Err(refused("the userinfo answer is about another user"));
    }
    let email_from_token = claims.contains_key("email");
    for (k, v) in info {
        if ID_TOKEN_ONLY.contains(&k.as_str()) || (k == "email_verified" && email_from_token) {
            continue;
        }
        claims.entry(k).or_insert(v);
    }
    Ok(())
}

/// The most bytes of attributes (as JSON) one user carries into every
/// access token.
const MAX_ATTRIBUTE_BYTES: usize = 8 * 1024;

/// The domain of an e-mail address, lower-cased (`None` unless it has one
/// `@` with text on both sides).
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || local.contains('@') {
        return None;
    }
    Some(domain.to_ascii_lowercase())
}

/// Whether the provider says the e-mail is verified (`true`, or the
/// string `"true"` some providers send).
fn email_verified(claims: &Map<String, Value>) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A claim as an attribute value: strings, booleans, numbers, and lists
/// of those; objects are skipped.
fn attribute(value: &Value) -> Option<AttributeValue> {
    match value {
        Value::String(s) if s.len() <= 1024 => Some(AttributeValue::String(s.clone())),
        Value::Bool(b) => Some(AttributeValue::Bool(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(AttributeValue::Int)
            .or_else(|| n.as_f64().map(AttributeValue::Float)),
        Value::Array(items) if items.len() <= 256 => Some(AttributeValue::List(
            items.iter().filter_map(attribute).collect(),
        )),
        _ => None,
    }
}

/// The identity validated `claims` describe under `spec`: the username
/// (an `email` claim only when verified), the tenant, roles from groups,
/// attributes, and whether the provider asserted a trusted second factor.
pub fn identity_from_claims(
    spec: &OidcProviderSpec,
    claims: &Map<String, Value>,
) -> Result<ExternalIdentity, OidcError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let sub = text("sub").ok_or(refused("the ID token has no valid subject"))?;
    let google = spec.preset == Some(crate::oidc_spec::OidcPreset::Google);
    if google
        && !spec.hosted_domains.is_empty()
        && !text("hd").is_some_and(|hd| spec.hosted_domains.iter().any(|d| d == hd))
    {
        return Err(refused(
            "the Google account is not of an allowed Workspace domain",
        ));
    }
    let verified = email_verified(claims);
    let username_claim = spec.username_claim();
    if username_claim == "email" && !verified {
        return Err(refused(
            "the identity provider has not verified the e-mail address",
        ));
    }
    let username = text(username_claim)
        .map(normalize_username)
        .filter(|u| !u.is_empty() && u.len() <= MAX_USERNAME)
        .ok_or(refused("the identity provider sent no usable username"))?;

    let tenant = if let Some(t) = &spec.tenant {
        Some(t.clone())
    } else if let Some(claim) = &spec.tenant_claim {
        let id = text(claim).ok_or(refused("the identity provider sent no tenant"))?;
        Some(
            TenantId::new(id)
                .map_err(|_| refused("the identity provider's tenant is not a valid tenant id"))?,
        )
    } else if !spec.tenant_domains.is_empty() {
        let domain = text("email")
            .filter(|_| verified)
            .and_then(email_domain)
            .ok_or(refused(
                "the identity provider sent no verified e-mail address",
            ))?;
        Some(
            spec.tenant_domains
                .get(&domain)
                .cloned()
                .ok_or(refused("the e-mail domain belongs to no tenant"))?,
        )
    } else {
        None
    };

    let groups: Vec<&str> = match claims.get(spec.groups_claim.as_str()) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(items)) if items.len() <= MAX_GROUPS => {
            items.iter().filter_map(Value::as_str).collect()
        }
        Some(_) => {
            return Err(refused(
                "the identity provider's groups are malformed or too many",
            ));
        }
    };
    let mut roles: Vec<String> = spec.default_roles.clone();
    for group in groups {
        if let Some(mapped) = spec.group_roles.get(group) {
            roles.extend(mapped.iter().cloned());
        }
    }
    roles.sort();
    roles.dedup();

    let mut attributes = BTreeMap::new();
    for (name, claim) in &spec.attributes {
        if claim == "email" && !verified {
            // An unverified address is no basis for an access decision.
            continue;
        }
        if let Some(value) = claims.get(claim.as_str()).and_then(attribute) {
            crate::users::insert_dotted(&mut attributes, name, value);
        }
    }
    attributes.insert(
        "username".to_owned(),
        AttributeValue::String(username.clone()),
    );
    if serde_json::to_vec(&attributes).map_or(true, |j| j.len() > MAX_ATTRIBUTE_BYTES) {
        return Err(refused("the identity provider's claims are too large"));
    }

    let amr_ok = match claims.get("amr") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|v| spec.mfa_amr.iter().any(|m| m == v)),
        _ => false,
    };
    let acr_ok = text("acr").is_some_and(|v| spec.mfa_acr.iter().any(|m| m == v));
    Ok(ExternalIdentity {
        provider: spec.name.clone(),
        protocol: "oidc",
        subject: external_subject(&spec.name, sub),
        username,
        tenant,
        roles,
        attributes,
        mfa: spec.trust_idp_mfa && (amr_ok || acr_ok),
        record_ttl: spec.user_ttl.0,
        mapping: mapping_fingerprint(spec),
    })
}

/// A fingerprint of what decides who a provider's user is here: the
/// issuer, the client, and every mapping setting. A stored user whose
/// fingerprint no longer matches (the provider was reconfigured or
/// removed) no longer refreshes: they sign in again, under the new rules.
pub(crate) fn mapping_fingerprint(spec: &OidcProviderSpec) -> String {
    let relevant = serde_json::json!([
        spec.issuer_template(),
        spec.microsoft_allowed_tenants,
        spec.hosted_domains,
        spec.allow_any_account,
        spec.client_id,
        spec.username_claim(),
        spec.groups_claim,
        spec.group_roles,
        spec.default_roles,
        spec.attributes,
        spec.tenant,
        spec.tenant_claim,
        spec.tenant_domains,
        spec.trust_idp_mfa,
        spec.mfa_amr,
        spec.mfa_acr,
    ]);
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, relevant.to_string().as_bytes());
    data_encoding::HEXLOWER.encode(&digest.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: Value) -> OidcProviderSpec {
        let mut base = serde_json::json!({
            "name": "corp",
            "issuer": "https://id.example.com",
            "client_id": "kailash",
            "redirect_uri": "https://api.example.com/auth/oidc/corp/callback",
            "group_roles": {"engineering": ["developer"], "finance": ["finance", "analyst"]},
            "default_roles": ["employee"],
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claims_map_to_roles_attributes_and_tenant() {
        let s = spec(serde_json::json!({"tenant_domains": {"acme.example": "acme"}}));
        let id = identity_from_claims(
            &s,
            &claims(serde_json::json!({
                "sub": "00u1", "preferred_username": "Alice", "email": "alice@ACME.example",
                "email_verified": true, "groups": ["engineering", "unknown"],
                "department": "engineering", "given_name": "Alice", "amr": ["pwd", "mfa"],
            })),
        )
        .unwrap();
        assert_eq!(id.subject, "ext:corp:00u1");
        assert_eq!(id.username, "alice");
        assert_eq!(id.tenant.unwrap().as_ref(), "acme");
        assert_eq!(id.roles, ["developer", "employee"]);
        assert_eq!(
            id.attributes.get("department"),
            Some(&AttributeValue::String("engineering".into()))
        );
        assert!(id.attributes.contains_key("email"));
        assert!(id.mfa);
    }

    #[test]
    fn unverified_addresses_give_no_username_tenant_or_attribute() {
        let c = claims(
            serde_json::json!({"sub": "1", "email": "eve@acme.example", "preferred_username": "eve"}),
        );
        let google = spec(serde_json::json!({"username_claim": "email"}));
        assert!(matches!(
            identity_from_claims(&google, &c),
            Err(OidcError::Refused(_))
        ));
        let domains = spec(serde_json::json!({"tenant_domains": {"acme.example": "acme"}}));
        assert!(matches!(
            identity_from_claims(&domains, &c),
            Err(OidcError::Refused(_))
        ));
        let plain = identity_from_claims(&spec(serde_json::json!({})), &c).unwrap();
        assert!(!plain.attributes.contains_key("email"));
        assert!(!plain.mfa);
    }

    #[test]
    fn tenants_come_from_one_source_and_must_be_valid() {
        let s = spec(serde_json::json!({"tenant_claim": "org"}));
        let base = serde_json::json!({"sub": "1", "preferred_username": "bob"});
        assert!(identity_from_claims(&s, &claims(base.clone())).is_err());
        let mut bad = base.clone();
        bad["org"] = "has:colon".into();
        assert!(identity_from_claims(&s, &claims(bad)).is_err());
        let mut good = base;
        good["org"] = "globex".into();
        assert_eq!(
            identity_from_claims(&s, &claims(good))
                .unwrap()
                .tenant
                .unwrap()
                .as_ref(),
            "globex"
        );
        let d = spec(serde_json::json!({"tenant_domains": {"acme.example": "acme"}}));
        let other = serde_json::json!({"sub": "1", "preferred_username": "x", "email": "x@evil.example", "email_verified": true});
        assert!(identity_from_claims(&d, &claims(other)).is_err());
    }

    #[test]
    fn second_factor_needs_a_trusted_amr_or_acr() {
        let c = |v: Value| claims(v);
        let okta = spec(serde_json::json!({"mfa_acr": ["urn:okta:loa:2fa:any"]}));
        assert!(identity_from_claims(&okta, &c(serde_json::json!({"sub": "1", "preferred_username": "a", "acr": "urn:okta:loa:2fa:any"}))).unwrap().mfa);
        assert!(!identity_from_claims(&okta, &c(serde_json::json!({"sub": "1", "preferred_username": "a", "acr": "urn:okta:loa:1fa:any", "amr": ["pwd"]}))).unwrap().mfa);
        let distrust = spec(serde_json::json!({"trust_idp_mfa": false}));
        assert!(
            !identity_from_claims(
                &distrust,
                &c(serde_json::json!({"sub": "1", "preferred_username": "a", "amr": ["mfa"]}))
            )
            .unwrap()
            .mfa
        );
    }

    #[test]
    fn userinfo_about_another_subject_is_refused() {
        let mut c = claims(serde_json::json!({"sub": "1", "email": "a@x"}));
        assert!(merge_userinfo(&mut c, claims(serde_json::json!({"sub": "2"}))).is_err());
        merge_userinfo(
            &mut c,
            claims(serde_json::json!({"sub": "1", "email": "b@x", "groups": ["g"]})),
        )
        .unwrap();
        assert_eq!(c["email"], "a@x");
        assert_eq!(c["groups"], serde_json::json!(["g"]));
    }
}
