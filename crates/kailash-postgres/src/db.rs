//! Connecting: a pool of `tokio-postgres` connections (deadpool), TLS
//! through rustls on aws-lc-rs, errors that never carry the URL.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;

/// How to reach a PostgreSQL server and how many connections to keep.
///
/// The URL is a libpq connection string (`postgres://user:pass@host:5432/db?sslmode=require`
/// or `host=… user=…`). `sslmode=prefer` (libpq's default) tries TLS and
/// falls back to plain text; `require` insists on TLS. The server's
/// certificate is always checked against the system's roots and
/// [`ca_file`](Self::ca_file) when TLS is used. The URL never appears in
/// errors, logs or `Debug` output: it may carry a password.
#[derive(Clone)]
pub struct DbSettings {
    url: String,
    /// Extra trusted CA certificates (PEM), for a server with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Connections kept at most (default 16).
    pub max_connections: usize,
    /// Longest wait for a connection, a TCP connect and TLS handshake
    /// included (default 5 s).
    pub connect_timeout: Duration,
    /// `statement_timeout` of every connection (default 30 s): a query the
    /// server runs longer is cancelled.
    pub statement_timeout: Duration,
    /// Connections opened beyond `max_connections` under load (the seed's
    /// `max_overflow`, default 0): the pool grows to
    /// `max_connections + max_overflow`, and idle connections past
    /// `max_connections` are closed by the pool's upkeep (every second).
    pub max_overflow: usize,
    /// Idle connections older than this are closed and replaced on demand
    /// (the seed's `pool_recycle`; default none): behind a load balancer
    /// or after a failover, connections do not live forever.
    pub max_lifetime: Option<Duration>,
    /// Every transaction is read-only (`default_transaction_read_only`):
    /// for replica and analytics pools, and for reads sent to the primary.
    pub read_only: bool,
}

impl std::fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSettings")
            .field("url", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("max_overflow", &self.max_overflow)
            .field("max_lifetime", &self.max_lifetime)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl DbSettings {
    /// The URL (never log it: it may carry a password).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The same settings for another URL.
    pub(crate) fn with_url(&self, url: String) -> Self {
        Self {
            url,
            ..self.clone()
        }
    }

    /// Whether the URL parses as a connection string naming a host.
    pub(crate) fn validate(&self) -> Result<(), DbError> {
        let config = tokio_postgres::Config::from_str(&self.url).map_err(|_| DbError::BadUrl)?;
        if config.get_hosts().is_empty() {
            return Err(DbError::BadUrl);
        }
        Ok(())
    }

    /// Settings for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_file: None,
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            max_overflow: 0,
            max_lifetime: None,
            read_only: false,
        }
    }
}

/// Why the database could not be used. Messages never contain the URL
/// or a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The URL does not parse as a PostgreSQL connection string.
    #[error("the database URL is not a valid PostgreSQL connection string")]
    BadUrl,
    /// TLS could not be set up (no usable roots, an unreadable CA file).
    #[error("database TLS: {0}")]
    Tls(String),
    /// No connection could be made in time or the server refused it.
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
    /// A statement failed.
    #[error("database error: {0}")]
    Query(String),
    /// Stored data is not what this version wrote.
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
}

impl DbError {
    /// A statement's failure, with the server's message (which names the
    /// statement's problem, never the connection's secrets).
    pub(crate) fn query(e: &tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => Self::Query(format!("{}: {}", db.code().code(), db.message())),
            None if e.is_closed() => Self::Unreachable("the connection closed".into()),
            None => Self::Unreachable(connection_phrase(e)),
        }
    }

    /// Whether retrying later may help (the server is away), as opposed
    /// to a statement the server refused.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }
}

/// A short, secret-free description of a connection failure.
fn connection_phrase(e: &tokio_postgres::Error) -> String {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            // A TLS failure arrives as an I/O error around rustls' own,
            // which names the problem ("invalid peer certificate:
            // UnknownIssuer") and never a secret.
            return match io.get_ref() {
                Some(inner) if inner.is::<rustls::Error>() => format!(
                    "TLS: {inner} (trust the server's CA with a CA file, or set sslmode=disable on a trusted network)"
                ),
                _ => io.kind().to_string(),
            };
        }
        source = s.source();
    }
    // tokio-postgres' own messages ("db error", "error connecting to
    // server", "timeout") carry no configuration.
    let text = e.to_string();
    text.split(':')
        .next()
        .unwrap_or("connection failed")
        .to_owned()
}

/// A pool of connections to one PostgreSQL server; cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    connect_timeout: Duration,
    /// For connections outside the pool ([`listen`](Self::listen)).
    settings: Arc<DbSettings>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("Database")
            .field("size", &status.size)
            .field("available", &status.available)
            .finish_non_exhaustive()
    }
}

/// A connection taken from the pool; back to the pool when dropped.
pub type Connection = deadpool_postgres::Object;

fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, DbError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| DbError::Tls(format!("{}: {e}", path.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| DbError::Tls(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(DbError::Tls(format!(
                "{}: no certificate in the file",
                path.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| DbError::Tls(format!("{}: {e}", path.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(DbError::Tls("no trusted root certificates".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Database {
    /// Builds the pool and opens one connection, so a bad URL, a wrong
    /// password or an unreachable server stops the start with a clear
    /// message.
    pub async fn connect(settings: &DbSettings) -> Result<Self, DbError> {
        let db = Self::lazy(settings)?;
        drop(db.get().await?);
        Ok(db)
    }

    /// Builds the pool without connecting (the first use connects).
    pub fn lazy(settings: &DbSettings) -> Result<Self, DbError> {
        let config = Self::config(settings)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Disable {
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                settings.ca_file.as_deref(),
            )?);
            Manager::from_config(config, tls, manager_config)
        };
        let keep = settings.max_connections.max(1);
        let pool = Pool::builder(manager)
            .max_size(keep.saturating_add(settings.max_overflow))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| DbError::Unreachable(e.to_string()))?;
        if settings.max_overflow > 0 || settings.max_lifetime.is_some() {
            // Upkeep needs a runtime; a pool built outside one is kept as is.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(upkeep(pool.weak(), keep, settings.max_lifetime));
            }
        }
        Ok(Self {
            pool,
            connect_timeout: settings.connect_timeout,
            settings: Arc::new(settings.clone()),
        })
    }

    /// The connection config of `settings` (timeouts and options applied).
    fn config(settings: &DbSettings) -> Result<tokio_postgres::Config, DbError> {
        let mut config =
            tokio_postgres::Config::from_str(&settings.url).map_err(|_| DbError::BadUrl)?;
        if config.get_hosts().is_empty() {
            return Err(DbError::BadUrl);
        }
        config.connect_timeout(settings.connect_timeout);
        let timeout_ms = settings.statement_timeout.as_millis().max(1);
        let read_only = if settings.read_only {
            " -c default_transaction_read_only=on"
        } else {
            ""
        };
        let options = format!(
            "{} -c statement_timeout={timeout_ms}{read_only}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim());
        if config.get_application_name().is_none() {
            config.application_name("kailash");
        }
        Ok(config)
    }

    /// Listens on the notification channel `channel` (an SQL identifier
    /// chosen by the code, never by input) on a connection of its own,
    /// outside the pool. The listener ends (`recv` gives `None`) when that
    /// connection does; listen again to resume, and reload what may have
    /// changed meanwhile.
    pub async fn listen(&self, channel: &'static str) -> Result<Listener, DbError> {
        if !channel.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(DbError::Query(format!("invalid channel name {channel:?}")));
        }
        let config = Self::config(&self.settings)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let client = if config.get_ssl_mode() == SslMode::Disable {
            let (client, conn) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| DbError::query(&e))?;
            tokio::spawn(forward(conn, tx));
            client
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                self.settings.ca_file.as_deref(),
            )?);
            let (client, conn) = config.connect(tls).await.map_err(|e| DbError::query(&e))?;
            tokio::spawn(forward(conn, tx));
            client
        };
        client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(|e| DbError::query(&e))?;
        Ok(Listener {
            rx,
            _client: client,
        })
    }

    /// A connection from the pool, waiting at most the connect timeout.
    pub async fn get(&self) -> Result<Connection, DbError> {
        use deadpool_postgres::PoolError;
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => DbError::Unreachable(format!(
                "no connection within {} ms",
                self.connect_timeout.as_millis()
            )),
            PoolError::Backend(e) => DbError::query(&e),
            PoolError::Closed => DbError::Unreachable("the pool is closed".into()),
            other => DbError::Unreachable(other.to_string()),
        })
    }

    /// Runs `SELECT 1` (for readiness).
    pub async fn ping(&self) -> Result<(), DbError> {
        let conn = self.get().await?;
        conn.simple_query("SELECT 1")
            .await
            .map_err(|e| DbError::query(&e))?;
        Ok(())
    }

    /// Connections open and idle.
    pub fn status(&self) -> (usize, usize) {
        let s = self.pool.status();
        (s.size, s.available)
    }

    /// The pool's size, idle connections, waiting callers and cap.
    pub fn pool_status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            open: s.size,
            idle: s.available,
            waiting: s.waiting,
            max: s.max_size,
        }
    }
}

/// Notifications of one channel ([`Database::listen`]).
pub struct Listener {
    rx: tokio::sync::mpsc::Receiver<String>,
    _client: tokio_postgres::Client,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

impl Listener {
    /// The next notification's payload; `None` once the connection ended.
    pub async fn recv(&mut self) -> Option<String> {
        self.rx.recv().await
    }

    /// A notification already received, without waiting.
    pub fn try_recv(&mut self) -> Option<String> {
        self.rx.try_recv().ok()
    }
}

async fn forward<S, T>(
    mut conn: tokio_postgres::Connection<S, T>,
    tx: tokio::sync::mpsc::Sender<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio_postgres::AsyncMessage;
    loop {
        match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(n))) => {
                // A full queue means a reload is pending anyway.
                let _ = tx.try_send(n.payload().to_owned());
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}

/// A pool's occupancy ([`Database::pool_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Connections open.
    pub open: usize,
    /// Of those, idle.
    pub idle: usize,
    /// Callers waiting for a connection (saturation).
    pub waiting: usize,
    /// The most connections the pool opens.
    pub max: usize,
}

/// Every second: idle connections past their lifetime, and idle overflow
/// connections beyond `keep`, are closed. Ends with the pool.
async fn upkeep(pool: deadpool_postgres::WeakPool, keep: usize, max_lifetime: Option<Duration>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_closed() {
            return;
        }
        let s = pool.status();
        let in_use = s.size.saturating_sub(s.available);
        let mut idle_kept = keep.saturating_sub(in_use);
        pool.retain(|_, metrics| {
            if max_lifetime.is_some_and(|max| metrics.age() >= max) {
                return false;
            }
            if idle_kept == 0 {
                return false;
            }
            idle_kept -= 1;
            true
        });
    }
}
