//! From a verified assertion to an [`ExternalIdentity`]: username, roles
//! from groups, attributes for ABAC, the tenant, and whether the IdP
//! asserted a second factor (`AuthnContextClassRef`).

use std::collections::BTreeMap;

use kailash_core::{AttributeValue, TenantId};
use samael::schema::Assertion;

use super::SamlError;
use crate::lockout::normalize_username;
use crate::saml_spec::SamlSpec;
use crate::service::{ExternalIdentity, external_subject};

/// The most groups read from an assertion.
const MAX_GROUPS: usize = 1000;
/// The longest username (and NameID) accepted.
const MAX_USERNAME: usize = 256;
/// The most bytes of attributes (as JSON) one user carries into every
/// access token.
const MAX_ATTRIBUTE_BYTES: usize = 8 * 1024;

fn refused(m: &'static str) -> SamlError {
    SamlError::Refused(m)
}

/// The values of the attribute `name` (by `Name`, or else `FriendlyName`).
fn values<'a>(assertion: &'a Assertion, name: &str) -> Vec<&'a str> {
    let attributes = assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter());
    let mut by_name = Vec::new();
    let mut by_friendly = Vec::new();
    for a in attributes {
        let list = if a.name.as_deref() == Some(name) {
            &mut by_name
        } else if a.friendly_name.as_deref() == Some(name) {
            &mut by_friendly
        } else {
            continue;
        };
        list.extend(a.values.iter().filter_map(|v| v.value.as_deref()));
    }
    if by_name.is_empty() {
        by_friendly
    } else {
        by_name
    }
}

/// The identity a verified `assertion` describes under `spec`.
pub fn identity_from_assertion(
    spec: &SamlSpec,
    assertion: &Assertion,
) -> Result<ExternalIdentity, SamlError> {
    let name_id = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.trim())
        .filter(|v| !v.is_empty() && v.len() <= MAX_USERNAME)
        .ok_or(refused("the assertion has no usable NameID"))?;
    let username = match &spec.username_attribute {
        Some(attribute) => values(assertion, attribute).first().copied(),
        None => Some(name_id),
    }
    .map(normalize_username)
    .filter(|u| !u.is_empty() && u.len() <= MAX_USERNAME)
    .ok_or(refused("the identity provider sent no usable username"))?;

    let tenant = if let Some(t) = &spec.tenant {
        Some(t.clone())
    } else if let Some(attribute) = &spec.tenant_attribute {
        let id = values(assertion, attribute)
            .first()
            .copied()
            .ok_or(refused("the identity provider sent no tenant"))?;
        Some(
            TenantId::new(id)
                .map_err(|_| refused("the identity provider's tenant is not a valid tenant id"))?,
        )
    } else {
        None
    };

    let groups = values(assertion, &spec.groups_attribute);
    if groups.len() > MAX_GROUPS {
        return Err(refused("the identity provider sent too many groups"));
    }
    let mut roles: Vec<String> = spec.default_roles.clone();
    for group in groups {
        if let Some(mapped) = spec.group_roles.get(group) {
            roles.extend(mapped.iter().cloned());
        }
    }
    roles.sort();
    roles.dedup();

    let mut attributes = BTreeMap::new();
    for (name, saml_name) in &spec.attributes {
        let found: Vec<&str> = values(assertion, saml_name)
            .into_iter()
            .filter(|v| v.len() <= 1024)
            .collect();
        let value = match found.as_slice() {
            [] => continue,
            [one] => AttributeValue::String((*one).to_owned()),
            many if many.len() <= 256 => AttributeValue::List(
                many.iter()
                    .map(|v| AttributeValue::String((*v).to_owned()))
                    .collect(),
            ),
            _ => continue,
        };
        crate::users::insert_dotted(&mut attributes, name, value);
    }
    attributes.insert(
        "username".to_owned(),
        AttributeValue::String(username.clone()),
    );
    if serde_json::to_vec(&attributes).map_or(true, |j| j.len() > MAX_ATTRIBUTE_BYTES) {
        return Err(refused("the identity provider's attributes are too large"));
    }

    let mfa = spec.trust_idp_mfa
        && assertion
            .authn_statements
            .iter()
            .flatten()
            .filter_map(|s| s.authn_context.as_ref())
            .filter_map(|c| c.value.as_ref())
            .filter_map(|r| r.value.as_deref())
            .any(|r| {
                spec.mfa_authn_context_class_refs
                    .iter()
                    .any(|m| m == r.trim())
            });
    Ok(ExternalIdentity {
        provider: spec.name.clone(),
        protocol: "saml",
        subject: external_subject(&spec.name, name_id),
        username,
        tenant,
        roles,
        attributes,
        mfa,
        record_ttl: spec.user_ttl.0,
        mapping: mapping_fingerprint(spec),
    })
}

/// A fingerprint of what decides who the IdP's user is here: the IdP, this
/// entity, and every mapping setting.
pub(crate) fn mapping_fingerprint(spec: &SamlSpec) -> String {
    let relevant = serde_json::json!([
        spec.idp_entity_id,
        spec.entity_id,
        spec.username_attribute,
        spec.groups_attribute,
        spec.group_roles,
        spec.default_roles,
        spec.attributes,
        spec.tenant,
        spec.tenant_attribute,
        spec.trust_idp_mfa,
        spec.mfa_authn_context_class_refs,
    ]);
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, relevant.to_string().as_bytes());
    data_encoding::HEXLOWER.encode(&digest.as_ref()[..16])
}
