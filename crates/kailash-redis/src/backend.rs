//! [`RedisState`]: the six primitives on one Redis, tied together.
//!
//! This file holds the type and its construction; each primitive lives in
//! its own module (`kv`, `counters`, `rate`, `sets`, `pubsub`, `log`), the round
//! trips in `connection`, the key layout in `keys`.

use std::sync::Arc;

use kailash_core::clock::Clock;
use kailash_core::state::{KeyValueStore, SharedState, StateError, StateKey};
use redis::Value;
use tokio::sync::watch;

use crate::connection::{Connection, Sentinel};
use crate::keys::{self, Space};
use crate::options::RedisOptions;
use crate::pubsub::Hub;
use crate::topology::{SentinelTarget, Target};

/// All six state primitives on Redis (one server, the primary Sentinel
/// names, or a Redis Cluster), shared by every gateway instance that
/// connects with the same key prefix.
///
/// Cheap to clone (the clones share the connections). See the
/// [crate documentation](crate) for the key layout, clock semantics and
/// behaviour while Redis is down.
#[derive(Clone)]
pub struct RedisState {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Connection,
    clock: Arc<dyn Clock>,
    prefix: String,
    /// Keys carry a hash tag (Redis Cluster).
    cluster: bool,
    hub: Arc<Hub>,
    /// Dropped with the last clone; stops the pub/sub background task.
    _shutdown: watch::Sender<()>,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.inner.prefix)
            .field("op_timeout", &self.inner.conn.op_timeout())
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Creates the backend for the Redis at `url`
    /// (`redis://[user:pass@]host[:port][/db]`, `redis+unix:///path`, or
    /// `rediss://…` for TLS), or for the Redis Cluster whose seed nodes
    /// `redis+cluster://[user:pass@]host:port[,host:port…]` names
    /// (`rediss+cluster://` for TLS; see the crate documentation's
    /// *Redis Cluster* section for the key layout), or for the primary
    /// Redis Sentinel names:
    /// `redis+sentinel://[user:pass@]host:port[,host:port…]/<master>[/<db>]`
    /// (`rediss+sentinel://` for TLS).
    ///
    /// TLS uses rustls with the aws-lc-rs provider (installed as the
    /// process default when none is), TLS 1.2 or 1.3, and always verifies
    /// the server certificate and name: against
    /// [`RedisOptions::tls_ca`] when set, else the system trust store
    /// (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured). A `#insecure` URL,
    /// which would skip verification, is refused.
    ///
    /// Opening the connection is lazy and self-healing: unless
    /// [`RedisOptions::require_connection`] is set, this returns `Ok` even when
    /// Redis is down (after logging a warning), every operation then fails
    /// with [`StateError::Unavailable`] within
    /// `connection_timeout + response_timeout`, and the backend reconnects by
    /// itself once Redis answers again.
    ///
    /// Fails with [`StateError::InvalidArgument`] for a malformed URL (or a
    /// [`tls_ca`](RedisOptions::tls_ca) that is not PEM certificates, or is
    /// set for a URL without TLS), and with
    /// [`StateError::Unavailable`] when `require_connection` is set and Redis
    /// does not answer a `PING`. A cluster and Sentinel are the exceptions
    /// to laziness: routing needs the cluster's slot map, and a Sentinel URL
    /// must name a master the sentinels know, so when none of the seed nodes
    /// or sentinels answers within `connection_timeout + response_timeout`
    /// this fails with [`StateError::Unavailable`] whatever
    /// `require_connection` says (and with
    /// [`StateError::InvalidArgument`] for a master name no sentinel
    /// monitors). Must
    /// be called inside a Tokio runtime.
    pub async fn connect(
        url: &str,
        clock: Arc<dyn Clock>,
        options: RedisOptions,
    ) -> Result<Self, StateError> {
        let options = options.normalized();
        let (conn, pubsub_clients, cluster) = match Target::parse(url)? {
            Target::Node(info) => {
                let client = client(*info, &options)?;
                let conn = Connection::lazy(client.clone(), &options)?;
                (conn, vec![client], false)
            }
            Target::Sentinel(target) => {
                let master = target.master.clone();
                let sentinel = Sentinel::new(sentinel_client(*target, &options)?, master, &options);
                (
                    Connection::sentinel(sentinel, &options).await?,
                    Vec::new(),
                    false,
                )
            }
            Target::Cluster(seeds) => {
                if options.key_prefix.contains(['{', '}']) {
                    return Err(StateError::InvalidArgument(
                        "a key prefix for Redis Cluster must not contain { or }: the backend puts each key's hash tag in braces",
                    ));
                }
                let clients = seeds
                    .iter()
                    .map(|seed| client(seed.clone(), &options))
                    .collect::<Result<Vec<_>, _>>()?;
                let conn = Connection::cluster(cluster_client(seeds, &options)?, &options).await?;
                (conn, clients, true)
            }
        };
        let (shutdown, shutdown_rx) = watch::channel(());
        let hub = Hub::new(
            pubsub_clients,
            conn.sentinel_resolver(),
            &options,
            shutdown_rx,
        );
        let state = Self {
            inner: Arc::new(Inner {
                conn,
                clock,
                prefix: options.key_prefix.clone(),
                cluster,
                hub,
                _shutdown: shutdown,
            }),
        };
        // On failure the connection has already logged that Redis is unreachable.
        if let Err(err) = KeyValueStore::ping(&state).await
            && options.require_connection
        {
            return Err(err);
        }
        Ok(state)
    }

    /// Whether this backend speaks to a Redis Cluster
    /// (a `redis+cluster://` URL).
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    /// Bundles this backend as a [`SharedState`] (backend name `"redis"`).
    pub fn into_shared(self) -> SharedState {
        let clock = self.inner.clock.clone();
        let backend = Arc::new(self);
        SharedState::from_backend(backend.clone(), clock, "redis").with_admit(backend)
    }

    /// A [`SharedState`] over a clone of this backend.
    pub fn shared(&self) -> SharedState {
        self.clone().into_shared()
    }

    /// The Redis key (or channel) of `key` in `space`.
    pub(crate) fn key(&self, space: Space, key: &StateKey) -> String {
        keys::redis_key(&self.inner.prefix, space, key, self.inner.cluster)
    }

    /// The prefix every key of `space` starts with.
    pub(crate) fn space_prefix(&self, space: Space) -> String {
        let mut s = self.inner.prefix.clone();
        s.push_str(space.tag());
        s
    }

    /// The injected clock: every deadline is computed from it, never from
    /// Redis's clock.
    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// [`clock`](Self::clock)'s now in milliseconds since the epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_millis()
    }

    /// The pub/sub connection and its topics.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// The longest any one operation may take.
    pub(crate) fn op_timeout(&self) -> std::time::Duration {
        self.inner.conn.op_timeout()
    }

    /// Invokes a script with one key and the given arguments.
    pub(crate) async fn script(
        &self,
        script: &'static redis::Script,
        key: &str,
        args: &[&[u8]],
    ) -> Result<Value, StateError> {
        self.inner.conn.script(script, key, args).await
    }

    /// Invokes a prepared script invocation (several keys).
    pub(crate) async fn invoke(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<Value, StateError> {
        self.inner.conn.invoke(invocation).await
    }

    /// Runs one plain command.
    pub(crate) async fn command<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StateError> {
        self.inner.conn.command(cmd).await
    }

    /// Runs one plain command on the primary serving `slot`.
    pub(crate) async fn command_at_slot<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        slot: u16,
    ) -> Result<T, StateError> {
        self.inner.conn.command_at_slot(cmd, slot).await
    }
}

/// Checks a Redis URL exactly as [`RedisState::connect`] parses it, without
/// dialling: for configuration checks before a start.
///
/// The error never echoes the URL, which may carry a password.
///
/// ```
/// use kailash_redis::check_url;
///
/// assert!(check_url("redis://:s3cret@cache.internal:6379/0").is_ok());
/// assert!(check_url("rediss://cache.internal:6380").is_ok());
/// assert!(check_url("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7000").is_ok());
/// assert!(check_url("redis://:pa?ss@cache").is_err());
/// // Certificate verification cannot be switched off.
/// assert!(check_url("rediss://cache.internal:6380/#insecure").is_err());
/// ```
pub fn check_url(url: &str) -> Result<(), StateError> {
    Target::parse(url).map(drop)
}

fn client(
    info: redis::ConnectionInfo,
    options: &RedisOptions,
) -> Result<redis::Client, StateError> {
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    if tls {
        install_crypto_provider();
    }
    let client = match (&options.tls_ca, tls) {
        (None, _) => redis::Client::open(info),
        (Some(_), false) => {
            return Err(StateError::InvalidArgument(
                "a TLS CA is set but the Redis URL is not rediss://",
            ));
        }
        (Some(pem), true) => {
            check_ca(pem)?;
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )
        }
    };
    client.map_err(|_| StateError::InvalidArgument("invalid Redis URL or TLS settings"))
}

/// The cluster client for `seeds`, with the same timeouts and TLS trust as
/// one server.
fn cluster_client(
    seeds: Vec<redis::ConnectionInfo>,
    options: &RedisOptions,
) -> Result<redis::cluster::ClusterClient, StateError> {
    let tls = seeds
        .iter()
        .any(|s| matches!(s.addr(), redis::ConnectionAddr::TcpTls { .. }));
    let mut builder = redis::cluster::ClusterClientBuilder::new(seeds)
        .connection_timeout(options.connection_timeout)
        .response_timeout(options.response_timeout);
    match (&options.tls_ca, tls) {
        (None, _) => {}
        (Some(_), false) => {
            return Err(StateError::InvalidArgument(
                "a TLS CA is set but the Redis URL is not rediss+cluster://",
            ));
        }
        (Some(pem), true) => {
            check_ca(pem)?;
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            });
        }
    }
    builder
        .build()
        .map_err(|_| StateError::InvalidArgument("invalid Redis Cluster URL or TLS settings"))
}

/// The Sentinel client for `target`: the servers' database and
/// credentials, TLS to sentinels and servers alike with the same trust.
fn sentinel_client(
    target: SentinelTarget,
    options: &RedisOptions,
) -> Result<redis::sentinel::SentinelClient, StateError> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let SentinelTarget {
        sentinels,
        master,
        redis,
        tls,
    } = target;
    let invalid = |_| StateError::InvalidArgument("invalid Redis Sentinel URL or TLS settings");
    let mut builder = SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)
        .map_err(invalid)?
        .set_client_to_redis_db(redis.db());
    if let Some(username) = redis.username() {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = redis.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    match (&options.tls_ca, tls) {
        (None, false) => {}
        (Some(_), false) => {
            return Err(StateError::InvalidArgument(
                "a TLS CA is set but the Redis URL is not rediss+sentinel://",
            ));
        }
        (ca, true) => {
            install_crypto_provider();
            builder = builder
                .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
            if let Some(pem) = ca {
                check_ca(pem)?;
                let certs = || redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                };
                builder = builder
                    .set_client_to_redis_certificates(certs())
                    .set_client_to_sentinel_certificates(certs());
            }
        }
    }
    builder.build().map_err(invalid)
}

/// The CA must be at least one PEM certificate, all readable.
fn check_ca(pem: &[u8]) -> Result<(), StateError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|_| StateError::InvalidArgument("the Redis TLS CA is not readable PEM"))?;
        count += 1;
    }
    if count == 0 {
        return Err(StateError::InvalidArgument(
            "the Redis TLS CA holds no PEM certificate",
        ));
    }
    Ok(())
}

/// The redis crate builds its rustls config from the process-default
/// provider: make it aws-lc-rs (the workspace's one crypto backend) unless
/// the application installed one already.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is set.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}
