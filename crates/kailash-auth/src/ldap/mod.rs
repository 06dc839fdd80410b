//! Sign-in against an LDAP directory or Active Directory (feature `ldap`).
//!
//! [`LdapDirectory`] is a [`UserStore`]: the service account searches for
//! the user with the configured filter (the username escaped per RFC 4515,
//! so `*`, `(`, `)` and `\` match only themselves), reads the mapped
//! attributes and the groups (the entry's `memberOf` and/or a group
//! search), and the record's [`Credential::Directory`] checks the password
//! with a simple bind as the user's DN. Everything after the password —
//! account lockout, per-IP throttling, the tenant's state, MFA by role,
//! the session cap, the token pair, the audit trail — is the password
//! login's, unchanged.
//!
//! It **fails closed**: a directory that cannot be reached, refuses the
//! service account or does not answer within `timeout` makes the sign-in
//! fail with [`UserStoreError::Unavailable`] (the service answers `503`); no
//! other user, role or store is tried. An empty password is refused before
//! the directory sees it (an LDAP bind with an empty password is an
//! *unauthenticated* bind that servers accept). Transport is TLS (`ldaps://`
//! or StartTLS) on rustls with aws-lc-rs, certificates always verified
//! against the system roots plus `ca_file`.
//!
//! Connections bound as the service account are pooled (`pool_size`); a
//! user bind borrows one and binds it back as the service account before
//! returning it, and a connection that fails anything is dropped.
//!
//! Refreshing a token looks the user up again, so a user removed from the
//! directory, or from the groups that gave a role, loses it at the next
//! refresh.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kailash_auth::ldap::LdapDirectory;
//! use kailash_auth::password::Password;
//! use kailash_auth::spec::LdapSpec;
//! use kailash_auth::users::{ChainedUserStore, StaticUserStore, UserStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let spec: LdapSpec = serde_json::from_value(serde_json::json!({
//!     "url": "ldaps://dc1.corp.example",
//!     "bind_dn": "CN=kailash,OU=Service Accounts,DC=corp,DC=example",
//!     "bind_password_env": "KAILASH_LDAP_PASSWORD",
//!     "user_base_dn": "OU=Staff,DC=corp,DC=example",
//!     "user_filter": "(sAMAccountName={username})",
//!     "group_roles": { "CN=Finance,OU=Groups,DC=corp,DC=example": ["finance"] },
//!     "default_roles": ["business_user"],
//!     "tenant": "acme"
//! }))?;
//! let password = Password::new(std::env::var("KAILASH_LDAP_PASSWORD")?);
//! let directory = LdapDirectory::new(&spec, password)?;
//! directory.check().await?; // the service account can bind
//! let users = ChainedUserStore::new()
//!     .then(Arc::new(StaticUserStore::new(vec![])?))
//!     .then(Arc::new(directory));
//! let lena = users.find_by_username("lena").await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kailash_core::{AttributeValue, TenantId};
use ldap3::asn1::{PL, StructureTag};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchOptions, ldap_escape};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::lockout::normalize_username;
use crate::password::Password;
use crate::spec::LdapSpec;
use crate::users::{
    Credential, DirectoryBind, DirectoryCredential, UserRecord, UserStore, UserStoreError,
};

/// LDAP result code: wrong password (or no such DN).
const INVALID_CREDENTIALS: u32 = 49;
/// LDAP result codes a bind answers for an account it will not sign in
/// (disabled, expired, locked in AD): the password is not accepted.
const REFUSED_BINDS: [u32; 3] = [INVALID_CREDENTIALS, 50, 53];
/// LDAP result code: more entries than the size limit.
const SIZE_LIMIT_EXCEEDED: u32 = 4;
/// Values kept of one attribute (a group list longer than this is cut).
const MAX_VALUES: usize = 256;
/// Bytes kept of one attribute value.
const MAX_VALUE_BYTES: usize = 4096;

/// Why a directory could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LdapSetupError {
    /// The `[auth.ldap]` values are invalid.
    #[error(transparent)]
    Spec(#[from] crate::spec::InvalidLdapSpec),
    /// The CA file cannot be read or holds no certificate.
    #[error("ldap.ca_file: {0}")]
    Tls(String),
    /// The service account's password is empty.
    #[error("ldap: the service account's password is empty")]
    EmptyPassword,
    /// The directory refused the service account's credentials.
    #[error(
        "ldap: the directory refused the service account {bind_dn:?} (wrong bind_dn or password)"
    )]
    ServiceRefused {
        /// The service account.
        bind_dn: String,
    },
    /// The directory cannot be reached.
    #[error("ldap: {0}")]
    Unreachable(String),
}

/// An LDAP directory users sign in against. Cheap to clone.
#[derive(Clone)]
pub struct LdapDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    settings: LdapConnSettings,
    bind_dn: String,
    bind_password: Password,
    user_base_dn: String,
    user_filter: String,
    group_base_dn: Option<String>,
    group_filter: String,
    member_of: Option<String>,
    group_roles: HashMap<String, Vec<String>>,
    default_roles: Vec<String>,
    tenant: Option<TenantId>,
    tenant_attribute: Option<String>,
    attributes: BTreeMap<String, String>,
    wanted: Vec<String>,
    timeout: Duration,
    connect_timeout: Duration,
    idle: Mutex<Vec<Ldap>>,
    slots: Arc<Semaphore>,
}

impl fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("url", &self.inner.url)
            .field("bind_dn", &self.inner.bind_dn)
            .field("user_base_dn", &self.inner.user_base_dn)
            .finish_non_exhaustive()
    }
}

impl LdapDirectory {
    /// A directory as `spec` describes it, the service account signing in
    /// with `bind_password`. Checks the spec and reads the CA file; opens no
    /// connection (see [`check`](Self::check)).
    pub fn new(spec: &LdapSpec, bind_password: Password) -> Result<Self, LdapSetupError> {
        spec.validate()?;
        if bind_password.is_empty() {
            return Err(LdapSetupError::EmptyPassword);
        }
        let tls = tls_config(spec.ca_file.as_deref())?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(spec.connect_timeout.0)
            .set_starttls(spec.start_tls)
            .set_config(Arc::new(tls));
        let member_of = Some(spec.member_of_attribute.clone()).filter(|a| !a.is_empty());
        let mut wanted: Vec<String> = spec.attributes.values().cloned().collect();
        wanted.extend(member_of.clone());
        wanted.extend(spec.tenant_attribute.clone());
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            // "1.1": no attributes (RFC 4511 4.5.1.8).
            wanted.push("1.1".into());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                url: spec.url.trim_end_matches('/').to_owned(),
                settings,
                bind_dn: spec.bind_dn.clone(),
                bind_password,
                user_base_dn: spec.user_base_dn.clone(),
                user_filter: spec.user_filter.clone(),
                group_base_dn: spec.group_base_dn.clone(),
                group_filter: spec.group_filter.clone(),
                member_of,
                group_roles: spec
                    .group_roles
                    .iter()
                    .map(|(dn, roles)| (normalize_dn(dn), roles.clone()))
                    .collect(),
                default_roles: spec.default_roles.clone(),
                tenant: spec.tenant.clone(),
                tenant_attribute: spec.tenant_attribute.clone(),
                attributes: spec.attributes.clone(),
                wanted,
                timeout: spec.timeout.0,
                connect_timeout: spec.connect_timeout.0,
                idle: Mutex::new(Vec::new()),
                slots: Arc::new(Semaphore::new(spec.pool_size)),
            }),
        })
    }

    /// Connects and binds as the service account: a wrong `bind_dn` or
    /// password is [`LdapSetupError::ServiceRefused`], an unreachable
    /// directory [`LdapSetupError::Unreachable`].
    pub async fn check(&self) -> Result<(), LdapSetupError> {
        match self.connection().await {
            Ok(conn) => {
                conn.release();
                Ok(())
            }
            Err(ConnError::ServiceRefused) => Err(LdapSetupError::ServiceRefused {
                bind_dn: self.inner.bind_dn.clone(),
            }),
            Err(ConnError::Unavailable(e)) => Err(LdapSetupError::Unreachable(e)),
        }
    }

    /// A pooled connection bound as the service account.
    async fn connection(&self) -> Result<Pooled, ConnError> {
        let inner = &self.inner;
        let permit = tokio::time::timeout(inner.timeout, inner.slots.clone().acquire_owned())
            .await
            .map_err(|_| ConnError::Unavailable("every pooled connection is busy".into()))?
            .map_err(|_| ConnError::Unavailable("the pool is closed".into()))?;
        let idle = {
            let mut idle = inner.idle.lock().unwrap_or_else(|p| p.into_inner());
            let mut found = None;
            while let Some(mut ldap) = idle.pop() {
                if !ldap.is_closed() {
                    found = Some(ldap);
                    break;
                }
            }
            found
        };
        let ldap = match idle {
            Some(ldap) => ldap,
            None => self.open().await?,
        };
        Ok(Pooled {
            ldap,
            directory: self.inner.clone(),
            _permit: permit,
        })
    }

    async fn open(&self) -> Result<Ldap, ConnError> {
        let inner = &self.inner;
        // The connect timeout covers TCP and TLS; the whole open is bounded too.
        let opened = tokio::time::timeout(
            inner.connect_timeout + inner.timeout,
            LdapConnAsync::with_settings(inner.settings.clone(), &inner.url),
        )
        .await
        .map_err(|_| ConnError::Unavailable("connecting timed out".into()))?
        .map_err(|e| ConnError::Unavailable(describe(&e)))?;
        let (conn, mut ldap) = opened;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %describe(&e), "LDAP connection ended");
            }
        });
        let bound = ldap
            .with_timeout(inner.timeout)
            .simple_bind(&inner.bind_dn, inner.bind_password.expose())
            .await
            .map_err(|e| ConnError::Unavailable(describe(&e)))?;
        match bound.rc {
            0 => Ok(ldap),
            rc if REFUSED_BINDS.contains(&rc) => {
                tracing::error!(bind_dn = %inner.bind_dn, rc, "the directory refused the service account");
                Err(ConnError::ServiceRefused)
            }
            rc => Err(ConnError::Unavailable(format!(
                "service bind answered {rc} ({})",
                bound.text
            ))),
        }
    }

    /// The entry a username names: `None` when no entry or more than one
    /// matches.
    async fn find_entry(
        &self,
        conn: &mut Pooled,
        username: &str,
    ) -> Result<Option<Entry>, UserStoreError> {
        let inner = &self.inner;
        let filter = inner
            .user_filter
            .replace("{username}", &ldap_escape(username));
        let entries = conn
            .search(
                &inner.user_base_dn,
                &filter,
                &inner.wanted,
                2,
                inner.timeout,
            )
            .await?;
        match entries {
            Found::Entries(mut entries) if entries.len() == 1 => Ok(entries.pop()),
            Found::Entries(entries) if entries.is_empty() => Ok(None),
            _ => {
                tracing::warn!(
                    "more than one directory entry matches the user filter for one username; sign-in refused"
                );
                Ok(None)
            }
        }
    }

    async fn record(
        &self,
        conn: &mut Pooled,
        username: &str,
        entry: Entry,
    ) -> Result<Option<UserRecord>, UserStoreError> {
        let inner = &self.inner;
        let mut groups: Vec<String> = match &inner.member_of {
            Some(attr) => entry.values(attr).to_vec(),
            None => Vec::new(),
        };
        if let Some(base) = &inner.group_base_dn {
            let filter = inner
                .group_filter
                .replace("{dn}", &ldap_escape(&entry.dn))
                .replace("{username}", &ldap_escape(username));
            match conn
                .search(
                    base,
                    &filter,
                    &["1.1".to_owned()],
                    MAX_VALUES as i32,
                    inner.timeout,
                )
                .await?
            {
                Found::Entries(found) => groups.extend(found.into_iter().map(|g| g.dn)),
                Found::TooMany => {
                    return Err(UserStoreError::Unavailable(format!(
                        "the group search found more than {MAX_VALUES} groups"
                    )));
                }
            }
        }
        let mut roles = inner.default_roles.clone();
        for group in &groups {
            if let Some(mapped) = inner.group_roles.get(&normalize_dn(group)) {
                roles.extend(mapped.iter().cloned());
            }
        }
        roles.sort();
        roles.dedup();
        let tenant = match (&inner.tenant, &inner.tenant_attribute) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(attr)) => match entry.values(attr).first().map(|v| TenantId::new(v)) {
                Some(Ok(t)) => Some(t),
                _ => {
                    tracing::warn!(attribute = %attr, "a directory user has no valid tenant; sign-in refused");
                    return Ok(None);
                }
            },
            (None, None) => None,
        };
        let mut attributes = BTreeMap::new();
        attributes.insert(
            "username".to_owned(),
            AttributeValue::String(username.to_owned()),
        );
        for (name, attr) in &inner.attributes {
            let values = entry.values(attr);
            let value = match values {
                [] => continue,
                [one] => AttributeValue::String(one.clone()),
                many => {
                    AttributeValue::List(many.iter().cloned().map(AttributeValue::String).collect())
                }
            };
            crate::users::insert_dotted(&mut attributes, name, value);
        }
        let bind: Arc<dyn DirectoryBind> = Arc::new(self.clone());
        Ok(Some(UserRecord {
            subject: username.to_owned(),
            username: username.to_owned(),
            tenant,
            roles,
            attributes,
            credential: Credential::Directory(DirectoryCredential::new(bind, entry.dn)),
            active: true,
            totp_secret: None,
        }))
    }
}

#[async_trait]
impl UserStore for LdapDirectory {
    async fn find_by_username(&self, username: &str) -> Result<Option<UserRecord>, UserStoreError> {
        if username.is_empty() || username.len() > crate::bounds::MAX_USERNAME_CHARS * 4 {
            return Ok(None);
        }
        let mut conn = self.connection().await.map_err(ConnError::into_store)?;
        let found = async {
            let Some(entry) = self.find_entry(&mut conn, username).await? else {
                return Ok(None);
            };
            self.record(&mut conn, username, entry).await
        }
        .await;
        if found.is_ok() {
            conn.release();
        }
        found
    }

    /// A directory user's subject is their normalised username.
    async fn find_by_subject(&self, subject: &str) -> Result<Option<UserRecord>, UserStoreError> {
        self.find_by_username(&normalize_username(subject))
            .await
            .map(|u| u.filter(|u| u.subject == subject))
    }
}

#[async_trait]
impl DirectoryBind for LdapDirectory {
    async fn verify(&self, dn: &str, password: &Password) -> Result<bool, UserStoreError> {
        // An empty password makes an unauthenticated bind, which succeeds.
        if password.is_empty() || dn.is_empty() {
            return Ok(false);
        }
        let inner = &self.inner;
        let mut conn = self.connection().await.map_err(ConnError::into_store)?;
        let ldap = conn.ldap();
        let bound = ldap
            .with_timeout(inner.timeout)
            .simple_bind(dn, password.expose())
            .await
            .map_err(|e| UserStoreError::Unavailable(describe(&e)))?;
        let accepted = match bound.rc {
            0 => true,
            rc if REFUSED_BINDS.contains(&rc) => false,
            rc => {
                return Err(UserStoreError::Unavailable(format!(
                    "user bind answered {rc}"
                )));
            }
        };
        // Back to the service account before the connection is reused; a
        // connection that cannot is dropped.
        let rebound = ldap
            .with_timeout(inner.timeout)
            .simple_bind(&inner.bind_dn, inner.bind_password.expose())
            .await;
        if matches!(rebound, Ok(ref r) if r.rc == 0) {
            conn.release();
        }
        Ok(accepted)
    }
}

enum ConnError {
    ServiceRefused,
    Unavailable(String),
}

impl ConnError {
    fn into_store(self) -> UserStoreError {
        match self {
            ConnError::ServiceRefused => {
                UserStoreError::Unavailable("the directory refused the service account".into())
            }
            ConnError::Unavailable(e) => UserStoreError::Unavailable(e),
        }
    }
}

/// A connection taken from the pool: back to it only through
/// [`release`](Self::release), dropped (closed) otherwise.
struct Pooled {
    ldap: Ldap,
    directory: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

enum Found {
    Entries(Vec<Entry>),
    TooMany,
}

impl Pooled {
    fn ldap(&mut self) -> &mut Ldap {
        &mut self.ldap
    }

    fn release(self) {
        let Pooled {
            ldap, directory, ..
        } = self;
        let mut idle = directory.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.push(ldap);
    }

    async fn search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[String],
        limit: i32,
        timeout: Duration,
    ) -> Result<Found, UserStoreError> {
        let ldap = self.ldap();
        let result = ldap
            .with_timeout(timeout)
            .with_search_options(SearchOptions::new().sizelimit(limit))
            .search(base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| UserStoreError::Unavailable(describe(&e)))?;
        if result.1.rc == SIZE_LIMIT_EXCEEDED {
            return Ok(Found::TooMany);
        }
        if result.1.rc == 32 {
            // noSuchObject: the base DN is not there.
            return Err(UserStoreError::Unavailable(format!(
                "the search base {base:?} does not exist"
            )));
        }
        if result.1.rc != 0 {
            return Err(UserStoreError::Unavailable(format!(
                "search answered {} ({})",
                result.1.rc, result.1.text
            )));
        }
        let mut entries = Vec::with_capacity(result.0.len());
        for raw in result.0 {
            match Entry::parse(raw.0) {
                Some(entry) => entries.push(entry),
                // A search reference or a malformed entry: not a user.
                None => continue,
            }
        }
        Ok(Found::Entries(entries))
    }
}

/// A search result entry: its DN and its text attributes (names
/// lower-cased), parsed without panicking whatever the server sent.
#[derive(Debug)]
struct Entry {
    dn: String,
    attrs: HashMap<String, Vec<String>>,
}

impl Entry {
    fn parse(tag: StructureTag) -> Option<Entry> {
        // SearchResultEntry ::= [APPLICATION 4] SEQUENCE { objectName, attributes }
        if tag.id != 4 {
            return None;
        }
        let PL::C(parts) = tag.payload else {
            return None;
        };
        let mut parts = parts.into_iter();
        let dn = text(parts.next()?)?;
        let PL::C(list) = parts.next()?.payload else {
            return None;
        };
        let mut attrs: HashMap<String, Vec<String>> = HashMap::new();
        for attr in list {
            let PL::C(pair) = attr.payload else {
                return None;
            };
            let mut pair = pair.into_iter();
            let name = text(pair.next()?)?.to_ascii_lowercase();
            let PL::C(values) = pair.next()?.payload else {
                return None;
            };
            let kept: Vec<String> = values
                .into_iter()
                .filter_map(text)
                .filter(|v| v.len() <= MAX_VALUE_BYTES)
                .take(MAX_VALUES)
                .collect();
            attrs.entry(name).or_default().extend(kept);
        }
        Some(Entry { dn, attrs })
    }

    fn values(&self, attr: &str) -> &[String] {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

fn text(tag: StructureTag) -> Option<String> {
    match tag.payload {
        PL::P(bytes) => String::from_utf8(bytes).ok(),
        PL::C(_) => None,
    }
}

/// A DN compared case-insensitively, without spaces around `,` and `=`.
fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// An LDAP error as a message without credentials (ldap3's errors name
/// neither the bind password nor the filter's values).
fn describe(e: &LdapError) -> String {
    match e {
        LdapError::Timeout { .. } => "the directory did not answer in time".into(),
        other => other.to_string(),
    }
}

fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, LdapSetupError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| LdapSetupError::Tls(format!("{}: {e}", path.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| LdapSetupError::Tls(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(LdapSetupError::Tls(format!(
                "{}: no certificate in the file",
                path.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| LdapSetupError::Tls(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LdapSetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::TagClass;

    fn prim(id: u64, s: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::P(s.to_vec()),
        }
    }
    fn cons(id: u64, parts: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::C(parts),
        }
    }

    /// A SearchResultEntry with one attribute of one value.
    fn raw_entry(dn: &[u8], attr: &[u8], value: &[u8]) -> StructureTag {
        let values = cons(17, vec![prim(4, value)]);
        let attribute = cons(16, vec![prim(4, attr), values]);
        cons(4, vec![prim(4, dn), cons(16, vec![attribute])])
    }

    #[test]
    fn entries_parse_and_malformed_ones_are_refused_without_panicking() {
        let good = raw_entry(b"uid=lena,ou=people", b"departmentNumber", b"finance");
        let entry = Entry::parse(good).unwrap();
        assert_eq!(entry.dn, "uid=lena,ou=people");
        assert_eq!(entry.values("DEPARTMENTNUMBER"), ["finance"]);
        for bad in [
            prim(4, b"x"),
            cons(5, vec![]),
            cons(4, vec![]),
            cons(4, vec![prim(4, b"dn")]),
            cons(4, vec![prim(4, &[0xff, 0xfe]), cons(16, vec![])]),
            cons(4, vec![cons(4, vec![]), cons(16, vec![])]),
            cons(4, vec![prim(4, b"dn"), prim(16, b"")]),
            cons(4, vec![prim(4, b"dn"), cons(16, vec![prim(16, b"")])]),
            cons(
                4,
                vec![
                    prim(4, b"dn"),
                    cons(16, vec![cons(16, vec![prim(4, b"a")])]),
                ],
            ),
            cons(
                4,
                vec![
                    prim(4, b"dn"),
                    cons(16, vec![cons(16, vec![prim(4, b"a"), prim(17, b"")])]),
                ],
            ),
        ] {
            assert!(Entry::parse(bad).is_none());
        }
        // Binary values are skipped, not fatal.
        let binary = raw_entry(b"cn=x", b"photo", &[0xff]);
        assert!(Entry::parse(binary).unwrap().values("photo").is_empty());
    }

    #[test]
    fn group_dns_compare_without_case_and_spaces() {
        assert_eq!(
            normalize_dn("CN=Finance, OU=Groups ,DC = corp,DC=example"),
            "cn=finance,ou=groups,dc=corp,dc=example"
        );
    }
}
