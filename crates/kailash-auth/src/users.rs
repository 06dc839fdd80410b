//! Who can log in: the [`UserStore`] trait and a store built from
//! configuration.
//!
//! The reference deployment reads its users from the config file
//! ([`UserConfig`]); a directory (LDAP, `crate::ldap` with the `ldap`
//! feature) implements the same trait, and [`ChainedUserStore`] asks
//! several in order. A user's [`Credential`] says who checks the password:
//! the service, against an argon2id hash, or the directory the record came
//! from. Usernames are looked up normalised
//! ([`crate::lockout::normalize_username`]), so `Alice`
//! and `alice` are one user.
//!
//! ```
//! use kailash_auth::users::{StaticUserStore, UserConfig, UserStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let config: UserConfig = serde_json::from_value(serde_json::json!({
//!     "username": "Bob",
//!     "tenant": "acme",
//!     "roles": ["business_user"],
//!     "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GDPpk",
//!     "attributes": { "department": "sales" }
//! })).unwrap();
//! let store = StaticUserStore::new(vec![config])?;
//! let bob = store.find_by_username("bob").await?.unwrap();
//! assert_eq!(bob.subject, "bob");
//! # Ok::<(), kailash_auth::users::UserStoreError>(())
//! # }).unwrap();
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use kailash_core::{AttributeValue, Principal, TenantId};
use serde::Deserialize;

use crate::lockout::normalize_username;
use crate::password::{Password, PasswordHash};
use crate::totp::TotpSecret;

/// A user as the login code needs it.
#[derive(Clone)]
pub struct UserRecord {
    /// Stable id, the `sub` of tokens.
    pub subject: String,
    /// Normalised username.
    pub username: String,
    /// The user's tenant.
    pub tenant: Option<TenantId>,
    /// Roles.
    pub roles: Vec<String>,
    /// Attributes for attribute-based access control.
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Who checks the password.
    pub credential: Credential,
    /// Whether the account may log in.
    pub active: bool,
    /// A TOTP secret enrolled out of band (configuration), if any.
    pub totp_secret: Option<TotpSecret>,
}

impl UserRecord {
    /// A principal for this user, without session or token ids.
    pub fn principal_builder(&self) -> kailash_core::PrincipalBuilder {
        let mut b = Principal::builder(self.subject.clone()).roles(self.roles.iter().cloned());
        if let Some(t) = &self.tenant {
            b = b.tenant(t.clone());
        }
        for (k, v) in &self.attributes {
            b = b.attribute(k.clone(), v.clone());
        }
        b
    }
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("subject", &self.subject)
            .field("tenant", &self.tenant)
            .field("roles", &self.roles)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// Who checks a user's password.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credential {
    /// The service, against this argon2id hash (from configuration, or set
    /// through the API).
    Hash(PasswordHash),
    /// The directory the record came from (an LDAP bind as the user): the
    /// service never holds a hash, and the password cannot be changed
    /// through the API.
    Directory(DirectoryCredential),
    /// An identity provider (OpenID Connect, SAML) by its configured name:
    /// the user signs in only through it, never with a password here.
    External(String),
}

impl Credential {
    /// The hash, for a user whose password the service checks.
    pub fn hash(&self) -> Option<&PasswordHash> {
        match self {
            Credential::Hash(h) => Some(h),
            Credential::Directory(_) | Credential::External(_) => None,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Hash(_) => f.write_str("Hash(..)"),
            Credential::Directory(d) => f.debug_tuple("Directory").field(&d.name).finish(),
            Credential::External(p) => f.debug_tuple("External").field(p).finish(),
        }
    }
}

/// A password check a directory performs for one of its users.
#[async_trait]
pub trait DirectoryBind: Send + Sync + 'static {
    /// Whether `password` is `name`'s (for LDAP: whether a simple bind as
    /// the DN `name` succeeds). `Ok(false)` for a wrong password or an
    /// account the directory refuses; [`UserStoreError::Unavailable`] when
    /// the directory cannot answer in time, so the login fails closed.
    async fn verify(&self, name: &str, password: &Password) -> Result<bool, UserStoreError>;
}

/// The directory that checks a user's password, and the name it knows the
/// user by (an LDAP DN).
#[derive(Clone)]
pub struct DirectoryCredential {
    directory: Arc<dyn DirectoryBind>,
    name: String,
}

impl DirectoryCredential {
    /// `directory` checks passwords of the user it knows as `name`.
    pub fn new(directory: Arc<dyn DirectoryBind>, name: impl Into<String>) -> Self {
        Self {
            directory,
            name: name.into(),
        }
    }

    /// The name the directory knows the user by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks the directory whether `password` is the user's.
    pub async fn verify(&self, password: &Password) -> Result<bool, UserStoreError> {
        self.directory.verify(&self.name, password).await
    }
}

/// Why a user lookup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserStoreError {
    /// The directory cannot be reached.
    #[error("user directory unavailable: {0}")]
    Unavailable(String),
    /// The configured users are invalid.
    #[error("user {username:?}: {message}")]
    Invalid {
        /// The offending username.
        username: String,
        /// What is wrong.
        message: String,
    },
}

/// A directory of users.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// The user with this normalised username.
    async fn find_by_username(&self, username: &str) -> Result<Option<UserRecord>, UserStoreError>;

    /// The user with this subject.
    async fn find_by_subject(&self, subject: &str) -> Result<Option<UserRecord>, UserStoreError>;
}

/// One user in the configuration file (`[[users]]`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name (normalised when loaded).
    pub username: String,
    /// Stable id; defaults to the normalised username.
    #[serde(default)]
    pub subject: Option<String>,
    /// Tenant id.
    #[serde(default)]
    pub tenant: Option<TenantId>,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// argon2id PHC string (`$argon2id$v=19$…`); never a plain password.
    pub password_hash: String,
    /// Whether the account may log in (default true).
    #[serde(default = "yes")]
    pub active: bool,
    /// A TOTP secret (base32) enrolled out of band.
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// Attributes (department, clearance, location, …).
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
}

fn yes() -> bool {
    true
}

/// Users held in memory, from configuration.
#[derive(Debug, Default)]
pub struct StaticUserStore {
    by_username: HashMap<String, UserRecord>,
    by_subject: HashMap<String, String>,
}

impl StaticUserStore {
    /// Validates and indexes `users`: hashes must be argon2id PHC strings,
    /// TOTP secrets valid base32, usernames and subjects unique.
    pub fn new(users: Vec<UserConfig>) -> Result<Self, UserStoreError> {
        let mut store = Self::default();
        for u in users {
            let username = normalize_username(&u.username);
            let invalid = |message: &str| UserStoreError::Invalid {
                username: username.clone(),
                message: message.to_owned(),
            };
            if username.is_empty() {
                return Err(invalid("empty username"));
            }
            let password_hash = PasswordHash::parse(&u.password_hash)
                .map_err(|_| invalid("password_hash is not an argon2id PHC string"))?;
            let totp_secret = u
                .totp_secret
                .as_deref()
                .map(TotpSecret::from_base32)
                .transpose()
                .map_err(|_| invalid("totp_secret is not a valid base32 secret"))?;
            let subject = u.subject.clone().unwrap_or_else(|| username.clone());
            if subject.starts_with(crate::service::EXTERNAL_SUBJECT_PREFIX) {
                return Err(invalid(
                    "subjects starting with `ext:` belong to single sign-on users",
                ));
            }
            if store.by_subject.contains_key(&subject) {
                return Err(invalid("duplicate subject"));
            }
            if store.by_username.contains_key(&username) {
                return Err(invalid("duplicate username"));
            }
            store.by_subject.insert(subject.clone(), username.clone());
            store.by_username.insert(
                username.clone(),
                UserRecord {
                    subject,
                    username,
                    tenant: u.tenant,
                    roles: u.roles,
                    attributes: u.attributes,
                    credential: Credential::Hash(password_hash),
                    active: u.active,
                    totp_secret,
                },
            );
        }
        Ok(store)
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.by_username.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_username.is_empty()
    }
}

#[async_trait]
impl UserStore for StaticUserStore {
    async fn find_by_username(&self, username: &str) -> Result<Option<UserRecord>, UserStoreError> {
        Ok(self.by_username.get(username).cloned())
    }

    async fn find_by_subject(&self, subject: &str) -> Result<Option<UserRecord>, UserStoreError> {
        Ok(self
            .by_subject
            .get(subject)
            .and_then(|u| self.by_username.get(u))
            .cloned())
    }
}

/// Several stores asked in order: the first that knows a username (or
/// subject) answers, so configured users shadow a directory's users of the
/// same name. A store that fails stops the lookup with its error (the
/// login fails closed rather than asking the next).
#[derive(Clone, Default)]
pub struct ChainedUserStore {
    stores: Vec<Arc<dyn UserStore>>,
}

impl ChainedUserStore {
    /// No stores yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks `store` after those already added.
    pub fn then(mut self, store: Arc<dyn UserStore>) -> Self {
        self.stores.push(store);
        self
    }
}

impl fmt::Debug for ChainedUserStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainedUserStore")
            .field("stores", &self.stores.len())
            .finish()
    }
}

#[async_trait]
impl UserStore for ChainedUserStore {
    async fn find_by_username(&self, username: &str) -> Result<Option<UserRecord>, UserStoreError> {
        for store in &self.stores {
            if let Some(user) = store.find_by_username(username).await? {
                return Ok(Some(user));
            }
        }
        Ok(None)
    }

    async fn find_by_subject(&self, subject: &str) -> Result<Option<UserRecord>, UserStoreError> {
        for store in &self.stores {
            if let Some(user) = store.find_by_subject(subject).await? {
                return Ok(Some(user));
            }
        }
        Ok(None)
    }
}

/// Inserts `value` at a dotted name (`location.country` → a `location`
/// map holding `country`).
pub(crate) fn insert_dotted(
    attributes: &mut BTreeMap<String, AttributeValue>,
    name: &str,
    value: AttributeValue,
) {
    match name.split_once('.') {
        None => {
            attributes.insert(name.to_owned(), value);
        }
        Some((head, rest)) => {
            let slot = attributes
                .entry(head.to_owned())
                .or_insert_with(|| AttributeValue::Map(BTreeMap::new()));
            if !matches!(slot, AttributeValue::Map(_)) {
                *slot = AttributeValue::Map(BTreeMap::new());
            }
            if let AttributeValue::Map(inner) = slot {
                insert_dotted(inner, rest, value);
            }
        }
    }
}
