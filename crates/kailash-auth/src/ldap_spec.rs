//! `[auth.ldap]`: sign-in against an LDAP directory or Active Directory.
//!
//! Plain data (it parses in every build, so a build without the `ldap`
//! feature can say so instead of calling the key unknown); the directory
//! itself is `crate::ldap::LdapDirectory`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kailash_core::TenantId;
use kailash_core::spec::ConfigDuration;
use serde::{Deserialize, Serialize};

/// `[auth.ldap]`: where the directory is, how to find a user, and how a
/// directory entry becomes a principal (roles from groups, attributes for
/// ABAC, the tenant).
///
/// The bind password is not here: the application reads it from
/// `bind_password_env` or `bind_password_file` and hands it over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSpec {
    /// `ldaps://host:636` (TLS from the start) or `ldap://host:389` (with
    /// `start_tls`, or `allow_plaintext` for a directory on loopback).
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is
    /// sent (default false).
    #[serde(default)]
    pub start_tls: bool,
    /// PEM file of a CA to trust besides the system's roots (a private AD
    /// CA). Certificates are always verified.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Send bind passwords over `ldap://` without TLS (default false: such
    /// a URL without `start_tls` is refused). Only for a directory on
    /// loopback or a protected link.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// The service account that searches for users.
    pub bind_dn: String,
    /// Environment variable holding the service account's password.
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// File holding the service account's password (trailing newline ignored).
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where users are searched (subtree).
    pub user_base_dn: String,
    /// The search filter; `{username}` is replaced by the normalised
    /// username, escaped per RFC 4515. Default `(uid={username})`
    /// (OpenLDAP); Active Directory: `(sAMAccountName={username})`.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// Where groups are searched (subtree) with `group_filter`; absent: only
    /// the user entry's `member_of_attribute` names the groups.
    #[serde(default)]
    pub group_base_dn: Option<String>,
    /// Group search filter; `{dn}` is the user's DN and `{username}` the
    /// username, both escaped. Default `(|(member={dn})(uniqueMember={dn}))`.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// The user entry's attribute listing group DNs (default `memberOf`, as
    /// Active Directory and OpenLDAP's memberof overlay keep it); empty to
    /// ignore it.
    #[serde(default = "default_member_of")]
    pub member_of_attribute: String,
    /// Group DN → roles (DNs compared case-insensitively, spaces around
    /// `,` and `=` ignored).
    #[serde(default)]
    pub group_roles: BTreeMap<String, Vec<String>>,
    /// Roles every directory user gets.
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// The tenant of every directory user.
    #[serde(default)]
    pub tenant: Option<TenantId>,
    /// Or: the entry's attribute naming the user's tenant (a user without
    /// it, or with an invalid id, cannot sign in).
    #[serde(default)]
    pub tenant_attribute: Option<String>,
    /// Principal attribute → directory attribute, for ABAC conditions
    /// (`user.department`). Default: the seed's mapping onto inetOrgPerson —
    /// `email = "mail"`, `first_name = "givenName"`, `last_name = "sn"`,
    /// `department = "departmentNumber"` (Active Directory: `department`),
    /// `title = "title"`. Setting it replaces the whole default. A dotted
    /// name nests (`"location.country" = "c"` is `user.location.country`).
    /// The attribute `username` is always the normalised username.
    #[serde(default = "default_attributes")]
    pub attributes: BTreeMap<String, String>,
    /// Pooled service connections (default 4); each sign-in holds one for a
    /// search and a bind.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Connecting, TLS included (default `5s`).
    #[serde(default = "default_timeout")]
    pub connect_timeout: ConfigDuration,
    /// Each operation: bind or search (default `5s`). A directory that does
    /// not answer in time refuses the sign-in (503), never falls back.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
}

fn default_user_filter() -> String {
    "(uid={username})".into()
}
fn default_group_filter() -> String {
    "(|(member={dn})(uniqueMember={dn}))".into()
}
fn default_member_of() -> String {
    "memberOf".into()
}
fn default_attributes() -> BTreeMap<String, String> {
    [
        ("email", "mail"),
        ("first_name", "givenName"),
        ("last_name", "sn"),
        ("department", "departmentNumber"),
        ("title", "title"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
fn default_pool_size() -> usize {
    4
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

/// A `[auth.ldap]` value that makes no sense, with its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidLdapSpec {
    /// The key, `ldap.<name>` (under `[auth]`).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl LdapSpec {
    /// Checks the values without contacting the directory: the URL's
    /// scheme and the TLS rule, the filters' placeholders, the password
    /// source, the sizes.
    pub fn validate(&self) -> Result<(), InvalidLdapSpec> {
        let bad = |key: &'static str, message: &str| InvalidLdapSpec {
            key,
            message: message.to_owned(),
        };
        let plain = if self.url.starts_with("ldaps://") {
            if self.start_tls {
                return Err(bad("ldap.start_tls", "an ldaps:// URL is TLS already"));
            }
            false
        } else if self.url.starts_with("ldap://") {
            !self.start_tls
        } else {
            return Err(bad("ldap.url", "must start with ldaps:// or ldap://"));
        };
        if plain && !self.allow_plaintext {
            return Err(bad(
                "ldap.url",
                "ldap:// would send passwords in the clear: use ldaps://, set start_tls = true, or allow_plaintext = true for a directory on loopback",
            ));
        }
        if self.url.len() > 1024 || self.url.contains(['@', '?']) {
            return Err(bad(
                "ldap.url",
                "must be ldap[s]://host[:port] (no credentials, no query)",
            ));
        }
        if self.bind_dn.trim().is_empty() {
            return Err(bad("ldap.bind_dn", "must name the service account"));
        }
        match (&self.bind_password_env, &self.bind_password_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "ldap.bind_password_env",
                    "set bind_password_env or bind_password_file, not both",
                ));
            }
            (None, None) => {
                return Err(bad(
                    "ldap.bind_password_env",
                    "set bind_password_env or bind_password_file (the service account's password)",
                ));
            }
            (Some(e), None) if e.is_empty() => {
                return Err(bad(
                    "ldap.bind_password_env",
                    "must name an environment variable",
                ));
            }
            _ => {}
        }
        if self.user_base_dn.trim().is_empty() {
            return Err(bad("ldap.user_base_dn", "must name where users are"));
        }
        check_filter(&self.user_filter, &["{username}"], true)
            .map_err(|m| bad("ldap.user_filter", &m))?;
        if self.group_base_dn.is_some() {
            check_filter(&self.group_filter, &["{dn}", "{username}"], false)
                .map_err(|m| bad("ldap.group_filter", &m))?;
        }
        if self.tenant.is_some() && self.tenant_attribute.is_some() {
            return Err(bad(
                "ldap.tenant",
                "set tenant or tenant_attribute, not both",
            ));
        }
        if self.pool_size == 0 || self.pool_size > 64 {
            return Err(bad("ldap.pool_size", "must be between 1 and 64"));
        }
        for (key, value) in [
            ("ldap.connect_timeout", self.connect_timeout),
            ("ldap.timeout", self.timeout),
        ] {
            if value.0.is_zero() || value.0 > Duration::from_secs(60) {
                return Err(bad(key, "must be between 1ms and 60s"));
            }
        }
        if let Some(name) = self
            .attributes
            .keys()
            .find(|k| k.is_empty() || k.split('.').any(str::is_empty) || k.len() > 128)
        {
            return Err(bad(
                "ldap.attributes",
                &format!("{name:?} is not a valid attribute name"),
            ));
        }
        if self.attributes.contains_key("username") {
            return Err(bad(
                "ldap.attributes",
                "`username` is always the normalised username; map another name",
            ));
        }
        Ok(())
    }

    /// The service account's password source, for error messages: the
    /// variable's name or the file's path (never the value).
    pub fn bind_password_source(&self) -> String {
        match (&self.bind_password_env, &self.bind_password_file) {
            (Some(e), _) => format!("environment variable {e}"),
            (_, Some(f)) => format!("file {}", f.display()),
            _ => "nowhere".into(),
        }
    }
}

/// A filter must be parenthesised, name `required` placeholders (when
/// `must`), and have no other `{…}`.
fn check_filter(filter: &str, allowed: &[&str], must: bool) -> Result<(), String> {
    if filter.len() > 1024 || !filter.starts_with('(') || !filter.ends_with(')') {
        return Err("must be a parenthesised LDAP filter of at most 1024 bytes".into());
    }
    let mut rest = filter;
    while let Some(open) = rest.find('{') {
        let tail = &rest[open..];
        let Some(close) = tail.find('}') else {
            return Err("has an unclosed `{`".into());
        };
        let name = &tail[..=close];
        if !allowed.contains(&name) {
            return Err(format!(
                "unknown placeholder {name} (known: {})",
                allowed.join(", ")
            ));
        }
        rest = &tail[close + 1..];
    }
    if must && !allowed.iter().any(|p| filter.contains(p)) {
        return Err(format!("must contain {}", allowed.join(" or ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> LdapSpec {
        serde_json::from_value(json).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "url": "ldaps://dc1.corp.example",
            "bind_dn": "cn=svc,dc=corp,dc=example",
            "bind_password_env": "LDAP_PW",
            "user_base_dn": "ou=people,dc=corp,dc=example"
        })
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = spec(base());
        s.validate().unwrap();
        assert_eq!(s.user_filter, "(uid={username})");
        assert_eq!(s.member_of_attribute, "memberOf");
        assert_eq!(s.attributes["department"], "departmentNumber");
        assert_eq!(s.attributes.len(), 5);
        assert_eq!(s.pool_size, 4);
        assert_eq!(s.timeout.0, Duration::from_secs(5));
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let cases: &[(serde_json::Value, &str)] = &[
            (serde_json::json!({"url": "http://x"}), "url"),
            (serde_json::json!({"url": "ldap://x"}), "url"),
            (serde_json::json!({"url": "ldaps://u:p@x"}), "url"),
            (serde_json::json!({"start_tls": true}), "start_tls"),
            (
                serde_json::json!({"bind_password_file": "/p"}),
                "bind_password_env",
            ),
            (
                serde_json::json!({"bind_password_env": null}),
                "bind_password_env",
            ),
            (
                serde_json::json!({"user_filter": "(uid=alice)"}),
                "user_filter",
            ),
            (
                serde_json::json!({"user_filter": "(uid={user})"}),
                "user_filter",
            ),
            (
                serde_json::json!({"user_filter": "uid={username}"}),
                "user_filter",
            ),
            (
                serde_json::json!({"group_base_dn": "ou=g", "group_filter": "(member={user})"}),
                "group_filter",
            ),
            (
                serde_json::json!({"tenant": "acme", "tenant_attribute": "o"}),
                "tenant",
            ),
            (serde_json::json!({"pool_size": 0}), "pool_size"),
            (serde_json::json!({"timeout": "0s"}), "timeout"),
            (
                serde_json::json!({"attributes": {"username": "uid"}}),
                "attributes",
            ),
        ];
        for (patch, key) in cases {
            let mut v = base();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let e = spec(v).validate().unwrap_err();
            assert_eq!(e.key, format!("ldap.{key}"), "{patch}: {e}");
        }
        let mut v = base();
        v["url"] = "ldap://127.0.0.1:389".into();
        v["start_tls"] = true.into();
        spec(v.clone()).validate().unwrap();
        v["start_tls"] = false.into();
        v["allow_plaintext"] = true.into();
        spec(v).validate().unwrap();
        assert!(serde_json::from_value::<LdapSpec>(serde_json::json!({"url": "ldaps://x", "bind_dn": "a", "user_base_dn": "b", "bind_pasword_env": "X"})).is_err());
    }
}
