//! Building the state backend a config names.

use std::sync::Arc;

use kailash_core::clock::Clock;
use kailash_core::state::{MemoryState, SharedState, memory::MemoryLimits};

use crate::GatewayError;
use crate::config::StateConfig;

/// Memory, or Redis when `redis_url` is set (needs the `redis` feature).
pub(crate) async fn state_from_config(
    config: &StateConfig,
    clock: Arc<dyn Clock>,
) -> Result<SharedState, GatewayError> {
    match &config.redis_url {
        None => {
            let limits = MemoryLimits {
                max_rate_keys: config.max_rate_limit_keys,
                ..MemoryLimits::default()
            };
            let memory = Arc::new(MemoryState::with_limits(clock.clone(), limits));
            Ok(SharedState::from_backend(memory.clone(), clock, "memory").with_admit(memory))
        }
        #[cfg(feature = "redis")]
        Some(url) => {
            let mut options = kailash_redis::RedisOptions::default().with_key_prefix(config.key_prefix.clone());
            if let Some(path) = &config.redis_tls_ca {
                let pem = std::fs::read(path).map_err(|e| {
                    GatewayError::State(format!("state.redis_tls_ca: {}: {e}", path.display()))
                })?;
                options = options.with_tls_ca(pem);
            }
            let redis = kailash_redis::RedisState::connect(url, clock.clone(), options)
                .await
                .map_err(|e| GatewayError::State(e.to_string()))?;
            Ok(redis.into_shared())
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(GatewayError::State(
            "state.redis_url is set but this build has no Redis support (enable the `redis` feature)".into(),
        )),
    }
}

/// The authentication service a config's `[auth]` and `[[users]]` describe.
pub(crate) fn auth_from_config(
    section: &kailash_auth::spec::AuthSpec,
    users: &[kailash_auth::users::UserConfig],
    data_dir: &std::path::Path,
    state: SharedState,
    audit: Arc<dyn kailash_core::audit::AuditSink>,
) -> Result<kailash_auth::service::AuthService, GatewayError> {
    use kailash_auth::jwt::KeySet;
    use kailash_auth::service::AuthService;
    use kailash_auth::users::StaticUserStore;

    let err = |e: &dyn std::fmt::Display| GatewayError::Auth(e.to_string());
    let configured = StaticUserStore::new(users.to_vec()).map_err(|e| err(&e))?;
    let store: Arc<dyn kailash_auth::users::UserStore> = match &section.ldap {
        None => Arc::new(configured),
        Some(spec) => Arc::new(
            kailash_auth::users::ChainedUserStore::new()
                .then(Arc::new(configured))
                .then(ldap_store(spec)?),
        ),
    };
    let signer = signing_key(section, data_dir)?;
    let keys = Arc::new(KeySet::new(signer, state.clock.clone()));
    for path in &section.previous_signing_keys {
        let path = data_dir.join(path);
        let previous = previous_key(&path)?;
        keys.add_verifier(previous.verifying_key())
            .map_err(|e| GatewayError::Auth(format!("{}: {e}", path.display())))?;
    }

    let config = section.auth_config().map_err(|e| err(&e))?;
    Ok(AuthService::new(config, store, keys, state, audit))
}

/// The field keys `[security.field_encryption]` describes: the KEK
/// keyring read from its variable or file (errors name where, never the
/// content), the shared data-key set loaded from (or created in) `state`.
pub(crate) async fn field_keys(
    config: &crate::config::FieldEncryptionConfig,
    data_dir: &std::path::Path,
    state: SharedState,
) -> Result<Arc<kailash_core::field_encryption::FieldKeys>, GatewayError> {
    let err = |m: String| GatewayError::Security(format!("security.field_encryption: {m}"));
    let file = config.keyring_file.as_ref().map(|p| data_dir.join(p));
    let source =
        crate::config::alerting::AlertChannelConfig::secret(&config.keyring_env, &file, "keyring")
            .map_err(err)?
            .ok_or_else(|| err("set `keyring_env` or `keyring_file`".into()))?;
    let text = source.read().map_err(|m| err(format!("keyring: {m}")))?;
    let keyring =
        kailash_core::envelope::Keyring::parse(&text).map_err(|e| err(format!("keyring: {e}")))?;
    let keys =
        kailash_core::field_encryption::FieldKeys::load(state, Arc::new(keyring), config.options())
            .await
            .map_err(|e| err(e.to_string()))?;
    Ok(Arc::new(keys))
}

/// The directory `[auth.ldap]` describes, its service account's password
/// read from `bind_password_env` or `bind_password_file` (the error names
/// where it looked, never the value).
#[cfg(feature = "ldap")]
pub(crate) fn ldap_directory(
    spec: &kailash_auth::spec::LdapSpec,
) -> Result<kailash_auth::ldap::LdapDirectory, GatewayError> {
    let source = crate::config::alerting::AlertChannelConfig::secret(
        &spec.bind_password_env,
        &spec.bind_password_file,
        "bind_password",
    )
    .map_err(|e| GatewayError::Auth(format!("auth.ldap: {e}")))?
    .ok_or_else(|| {
        GatewayError::Auth("auth.ldap: set bind_password_env or bind_password_file".into())
    })?;
    let password = source
        .read()
        .map_err(|e| GatewayError::Auth(format!("auth.ldap.bind_password: {e}")))?;
    kailash_auth::ldap::LdapDirectory::new(spec, kailash_auth::password::Password::new(password))
        .map_err(|e| GatewayError::Auth(format!("auth.{e}")))
}

/// `[auth.ldap]`'s directory as a user store.
#[cfg(feature = "ldap")]
fn ldap_store(
    spec: &kailash_auth::spec::LdapSpec,
) -> Result<Arc<dyn kailash_auth::users::UserStore>, GatewayError> {
    Ok(Arc::new(ldap_directory(spec)?))
}

/// A build without the `ldap` feature refuses `[auth.ldap]`.
#[cfg(not(feature = "ldap"))]
fn ldap_store(
    _spec: &kailash_auth::spec::LdapSpec,
) -> Result<Arc<dyn kailash_auth::users::UserStore>, GatewayError> {
    Err(GatewayError::Auth(
        "auth.ldap is set but this build has no LDAP support (enable the `ldap` feature)".into(),
    ))
}

/// At start: a directory that refuses the service account stops the start
/// (a configuration error); one that cannot be reached is logged, and its
/// users' sign-ins fail with 503 until it answers (the other users and
/// every running session are unaffected).
#[cfg(feature = "ldap")]
pub(crate) async fn check_directory(
    section: Option<&kailash_auth::spec::AuthSpec>,
) -> Result<(), GatewayError> {
    let Some(spec) = section.and_then(|s| s.ldap.as_ref()) else {
        return Ok(());
    };
    match ldap_directory(spec)?.check().await {
        Ok(()) => Ok(()),
        Err(kailash_auth::ldap::LdapSetupError::Unreachable(e)) => {
            tracing::warn!(url = %spec.url, error = %e, "the LDAP directory cannot be reached; its users cannot sign in until it answers");
            Ok(())
        }
        Err(e) => Err(GatewayError::Auth(format!("auth.{e}"))),
    }
}

/// Loads the configured signing key, or the one generated earlier in the
/// data directory, or generates it there. The `kid` is derived from the key
/// itself, so every instance sharing the file agrees on it.
fn signing_key(
    section: &kailash_auth::spec::AuthSpec,
    data_dir: &std::path::Path,
) -> Result<kailash_auth::jwt::SigningKey, GatewayError> {
    use kailash_auth::jwt::{Algorithm, SigningKey};

    let alg = Algorithm::from_name(&section.algorithm).ok_or_else(|| {
        GatewayError::Auth(format!("unsupported algorithm {}", section.algorithm))
    })?;
    // Like the audit file and previous keys: relative paths are under the data directory.
    let path = match &section.signing_key {
        Some(p) => data_dir.join(p),
        None => data_dir
            .join("keys")
            .join(format!("signing-{}.pem", alg.as_str().to_ascii_lowercase())),
    };
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && section.signing_key.is_none() => {
            let generated = SigningKey::generate(alg, "generated")
                .map_err(|e| GatewayError::Auth(format!("cannot generate a signing key: {e}")))?;
            let pem = generated
                .to_pkcs8_pem()
                .ok_or_else(|| GatewayError::Auth("generated key has no PEM form".into()))?;
            write_private(&path, pem.expose())?;
            tracing::warn!(
                path = %path.display(),
                "generated a new signing key; every instance must share this file (or set auth.signing_key), or tokens from one will fail on another"
            );
            pem.expose().to_owned()
        }
        Err(e) => {
            return Err(GatewayError::Auth(format!(
                "cannot read signing key {}: {e}",
                path.display()
            )));
        }
    };
    SigningKey::from_pkcs8_pem(alg, kid_of(&pem), pem.as_bytes()).map_err(|_| {
        GatewayError::Auth(format!(
            "{} is not a PKCS#8 {} private key",
            path.display(),
            alg.as_str()
        ))
    })
}

/// The key id of a key file: the first 8 bytes of the SHA-256 of its PEM,
/// so every instance (and the same file after a rotation) agrees on it.
fn kid_of(pem: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pem.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An earlier signing key, whatever its algorithm.
fn previous_key(path: &std::path::Path) -> Result<kailash_auth::jwt::SigningKey, GatewayError> {
    use kailash_auth::jwt::{Algorithm, SigningKey};
    let pem = std::fs::read_to_string(path).map_err(|e| {
        GatewayError::Auth(format!(
            "cannot read previous signing key {}: {e}",
            path.display()
        ))
    })?;
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
        .into_iter()
        .find_map(|alg| SigningKey::from_pkcs8_pem(alg, kid_of(&pem), pem.as_bytes()).ok())
        .ok_or_else(|| {
            GatewayError::Auth(format!(
                "{} is not a PKCS#8 RS256, ES256 or EdDSA private key",
                path.display()
            ))
        })
}

/// Creates `path` readable by its owner only; never overwrites.
fn write_private(path: &std::path::Path, contents: &str) -> Result<(), GatewayError> {
    use std::io::Write as _;
    let fail =
        |e: std::io::Error| GatewayError::Auth(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(contents.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// The pool settings of one `[database.*]` server; the URL from its env
/// variable or file (the message never holds it).
#[cfg(feature = "postgres")]
fn endpoint_settings(
    name: &str,
    endpoint: &crate::config::DatabaseEndpoint,
) -> Result<kailash_postgres::DbSettings, GatewayError> {
    let db_err = |m: String| GatewayError::Database(format!("database.{name}: {m}"));
    let source = crate::config::alerting::AlertChannelConfig::secret(
        &endpoint.url_env,
        &endpoint.url_file,
        "url",
    )
    .map_err(db_err)?
    .ok_or_else(|| db_err("set `url_env` or `url_file`".into()))?;
    let mut settings = kailash_postgres::DbSettings::new(source.read().map_err(db_err)?);
    settings.ca_file = endpoint.ca_file.clone();
    settings.max_connections = endpoint.pool_size;
    settings.max_overflow = endpoint.max_overflow;
    settings.max_lifetime = endpoint.pool_recycle.map(|d| d.0);
    settings.connect_timeout = endpoint.connect_timeout.0;
    settings.statement_timeout = endpoint.statement_timeout.0;
    Ok(settings)
}

/// `[database]`'s primary, replica and analytics pools with their routing
/// (`None` without `[database.primary]`): an unreachable primary or a bad
/// URL stops the start; an unreachable replica shows in readiness.
#[cfg(feature = "postgres")]
pub(crate) async fn databases(
    config: &crate::config::GatewayConfig,
) -> Result<Option<kailash_postgres::routing::Databases>, GatewayError> {
    use kailash_postgres::routing::{Databases, RoutingSettings};
    let db = &config.database;
    let Some(primary) = &db.primary else {
        return Ok(None);
    };
    let mut settings = RoutingSettings::new(endpoint_settings("primary", primary)?);
    settings.replica = db
        .replica
        .as_ref()
        .map(|e| endpoint_settings("replica", e))
        .transpose()?;
    settings.analytics = db
        .analytics
        .as_ref()
        .map(|e| endpoint_settings("analytics", e))
        .transpose()?;
    settings.fallback_to_primary = db.fallback_to_primary;
    settings.max_replica_lag = db.max_replica_lag.0;
    Databases::connect(settings)
        .await
        .map(Some)
        .map_err(|e| GatewayError::Database(format!("database.primary: {e}")))
}

/// The PostgreSQL audit trail of `audit.sink = "postgres"` on the primary's
/// pool: creates its tables, opens the outage spool under `data_dir` and
/// replays what it holds.
#[cfg(feature = "postgres")]
pub(crate) async fn postgres_audit(
    config: &crate::config::GatewayConfig,
    data_dir: &std::path::Path,
    db: kailash_postgres::Database,
) -> Result<kailash_postgres::audit::PgAuditSink, GatewayError> {
    use kailash_postgres::audit::{CheckpointKey, PgAuditOptions, PgAuditSink};

    let db_err = |m: String| GatewayError::Database(m);
    let audit = &config.audit;
    let spool = data_dir.join(&audit.spool);
    let mut options = PgAuditOptions::new(spool);
    options.queue_capacity = audit.queue_capacity;
    options.enqueue_timeout = audit.enqueue_timeout.0;
    options.spool_options = audit.sink_options();
    options.checkpoint_every = audit.checkpoint_every;
    options.checkpoint_interval = audit.checkpoint_interval.0;
    // `audit.fsync` states the durability promise for either sink.
    options.synchronous_commit = audit.fsync == crate::config::FsyncMode::Batch;
    options.retention = Some(std::time::Duration::from_secs(
        u64::from(audit.retention_days) * 86_400,
    ));
    if let Some(path) = &audit.checkpoint_key_file {
        let path = data_dir.join(path);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            db_err(format!(
                "audit.checkpoint_key_file: {}: {}",
                path.display(),
                e.kind()
            ))
        })?;
        options.checkpoint_key = Some(CheckpointKey::from_pem(&text).map_err(|e| {
            db_err(format!(
                "audit.checkpoint_key_file: {}: {e}",
                path.display()
            ))
        })?);
    }
    let keyring_file = audit
        .personal_data_keyring_file
        .as_ref()
        .map(|p| data_dir.join(p));
    if let Some(source) = crate::config::alerting::AlertChannelConfig::secret(
        &audit.personal_data_keyring_env,
        &keyring_file,
        "personal_data_keyring",
    )
    .map_err(|m| db_err(format!("audit: {m}")))?
    {
        let text = source
            .read()
            .map_err(|m| db_err(format!("audit.personal_data_keyring: {m}")))?;
        let keyring = kailash_core::envelope::Keyring::parse(&text)
            .map_err(|e| db_err(format!("audit.personal_data_keyring: {e}")))?;
        options.personal_data = Some(std::sync::Arc::new(keyring));
    }
    PgAuditSink::open(db, options)
        .await
        .map_err(|e| db_err(format!("audit: {e}")))
}

/// The runtime's `database_query` node over `[database.tenants]`: each
/// statement runs in the database of the run's own tenant, resolved from
/// the URL template or the tenant's explicit URL (a pool per tenant,
/// created on first use, capped by an LRU). `analytics` queries run there
/// too (a tenant's database has no separate analytics role).
#[cfg(feature = "postgres")]
pub(crate) struct TenantDatabaseNodes(kailash_postgres::tenant_db::TenantDatabases);

#[cfg(feature = "postgres")]
#[async_trait::async_trait]
impl kailash_runtime::database::Database for TenantDatabaseNodes {
    async fn query(
        &self,
        tenant: &kailash_core::TenantId,
        sql: &str,
        params: &[serde_json::Value],
        _analytics: bool,
        limits: kailash_runtime::database::QueryLimits,
    ) -> Result<Vec<serde_json::Value>, kailash_runtime::database::DatabaseError> {
        use kailash_runtime::database::DatabaseError;
        let db = self
            .0
            .for_tenant(tenant)
            .map_err(|e| DatabaseError::new(e.to_string()))?;
        db.query_json(sql, params, limits.max_rows, limits.max_bytes)
            .await
            .map_err(|e| DatabaseError::new(e.to_string()))
    }
}

/// `[database.tenants]` as the runtime's database (no connection is made
/// until a tenant's first query).
#[cfg(feature = "postgres")]
pub(crate) fn tenant_databases(
    config: &crate::config::TenantDatabasesConfig,
) -> Result<TenantDatabaseNodes, GatewayError> {
    use kailash_postgres::DbSettings;
    use kailash_postgres::tenant_db::{TenantDatabases, TenantDbSettings};

    let db_err = |m: String| GatewayError::Database(format!("database.tenants: {m}"));
    let settings = |url: String| {
        let mut s = DbSettings::new(url);
        s.ca_file = config.ca_file.clone();
        s.max_connections = config.pool_size;
        s.connect_timeout = config.connect_timeout.0;
        s.statement_timeout = config.statement_timeout.0;
        s
    };
    let source = crate::config::alerting::AlertChannelConfig::secret(
        &config.url_template_env,
        &config.url_template_file,
        "url_template",
    )
    .map_err(db_err)?;
    let mut tenants = match source {
        Some(source) => {
            let template = source.read().map_err(db_err)?;
            TenantDbSettings::new(settings(template)).map_err(|_| {
                db_err("the URL template does not parse or has no `{tenant}`".into())
            })?
        }
        None => TenantDbSettings::explicit_only(),
    };
    tenants.max_pools = config.max_pools;
    for (id, var) in &config.urls_env {
        let tenant = kailash_core::TenantId::new(id)
            .map_err(|_| db_err(format!("urls_env: `{id}` is not a tenant id")))?;
        let url = crate::config::alerting::SecretSource::Env(var)
            .read()
            .map_err(|m| db_err(format!("urls_env.{id}: {m}")))?;
        tenants = tenants
            .with_tenant(tenant, settings(url))
            .map_err(|e| db_err(format!("urls_env.{id}: {e}")))?;
    }
    Ok(TenantDatabaseNodes(TenantDatabases::new(tenants)))
}
