//! `rediss://`: the backend against a throwaway `redis-server` that speaks
//! TLS only, with a throwaway CA and server certificate made by `openssl`
//! in the test setup.
//!
//! Needs `openssl` and a `redis-server` built with TLS on the `PATH`;
//! without them the tests print "skipped" (and fail under `CI=true`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kailash_core::clock::{Clock, SystemClock};
use kailash_core::state::{Namespace, SharedState, StateError, StateKey};
use kailash_redis::{RedisOptions, RedisState, check_url};
use tokio::net::TcpStream;

const NS: Namespace = Namespace::new("tls");

/// Prints why a test is skipped; under `CI=true` fails instead, since a
/// skipped TLS test would pass without testing anything.
fn skip(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {why}: failing instead of skipping"
    );
    eprintln!("skipped: {why}");
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = SystemClock.now().as_nanosecond();
        let dir = std::env::temp_dir().join(format!(
            "kailash-redis-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes `<name>-ca.pem` and, signed by it, `<name>-cert.pem` /
/// `<name>-key.pem` for `localhost` and `127.0.0.1`. `false` when openssl
/// is missing or failed.
fn make_ca_and_leaf(dir: &Path, name: &str) -> bool {
    let ca = format!("{name}-ca.pem");
    let ca_key = format!("{name}-ca-key.pem");
    let key = format!("{name}-key.pem");
    let csr = format!("{name}.csr");
    let cert = format!("{name}-cert.pem");
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    let p256 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca_args = vec!["req", "-x509"];
    ca_args.extend(p256);
    ca_args.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        "/CN=kailash-redis throwaway test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    let mut leaf_args = vec!["req"];
    leaf_args.extend(p256);
    leaf_args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
    openssl(dir, &ca_args)
        && openssl(dir, &leaf_args)
        && openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
                "-out",
                &cert,
            ],
        )
}

/// A `redis-server` listening with TLS only; stopped (by its own child
/// handle) when dropped.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl TlsRedis {
    async fn start() -> Option<Self> {
        let dir = TempDir::new("tls");
        if !make_ca_and_leaf(&dir.0, "server") || !make_ca_and_leaf(&dir.0, "other") {
            skip("openssl could not make the test certificates");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spawned = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1", "--tls-port"])
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(dir.0.join("server-cert.pem"))
            .arg("--tls-key-file")
            .arg(dir.0.join("server-key.pem"))
            .arg("--tls-ca-cert-file")
            .arg(dir.0.join("server-ca.pem"))
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = spawned else {
            skip("no redis-server on the PATH");
            return None;
        };
        let mut redis = Self { child, port, dir };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(redis);
            }
            if let Ok(Some(_)) = redis.child.try_wait() {
                skip("this redis-server cannot serve TLS");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen on port {port}");
    }

    fn pem(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.0.join(file)).unwrap()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options() -> RedisOptions {
    RedisOptions::default()
        .with_key_prefix("kailash-tls-test:")
        .with_connection_timeout(Duration::from_secs(2))
        .with_require_connection(true)
}

async fn connect(url: &str, options: RedisOptions) -> Result<SharedState, StateError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    RedisState::connect(url, clock, options)
        .await
        .map(RedisState::into_shared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_pubsub_over_tls_with_a_verified_certificate() {
    let Some(redis) = TlsRedis::start().await else {
        return;
    };
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("rediss://{host}:{}/0", redis.port);
        let state = match connect(&url, options().with_tls_ca(redis.pem("server-ca.pem"))).await {
            Ok(state) => state,
            Err(err) => panic!("{url}: {err}"),
        };
        let key = StateKey::global(NS, host);
        state
            .kv
            .set(
                &key,
                Bytes::from_static(b"secret"),
                Some(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        assert_eq!(
            state.kv.get(&key).await.unwrap(),
            Some(Bytes::from_static(b"secret"))
        );
        // Pub/sub has its own connection: it speaks TLS too.
        let topic = StateKey::global(NS, &format!("topic-{host}"));
        let mut sub = state.pubsub.subscribe(&topic).await.unwrap();
        state
            .pubsub
            .publish(&topic, Bytes::from_static(b"hello"))
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
            Ok(Ok(msg)) => assert_eq!(msg, Bytes::from_static(b"hello")),
            other => panic!("no message over TLS: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unverifiable_server_is_unavailable_never_trusted() {
    let Some(redis) = TlsRedis::start().await else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    // Another CA than the one that signed the server's certificate.
    let wrong_ca = connect(&url, options().with_tls_ca(redis.pem("other-ca.pem"))).await;
    assert!(
        matches!(wrong_ca, Err(StateError::Unavailable(_))),
        "{wrong_ca:?}"
    );
    // No CA: the system trust store does not know the throwaway CA.
    let system = connect(&url, options()).await;
    assert!(
        matches!(system, Err(StateError::Unavailable(_))),
        "{system:?}"
    );
    // The plain protocol against the TLS port does not get through either.
    let plain = connect(&format!("redis://127.0.0.1:{}", redis.port), options()).await;
    assert!(plain.is_err(), "plain Redis protocol on a TLS port");
}

#[tokio::test]
async fn tls_settings_are_checked_before_connecting() {
    let ca = TempDir::new("ca");
    if !make_ca_and_leaf(&ca.0, "x") {
        skip("openssl could not make a test CA");
        return;
    }
    let pem = std::fs::read(ca.0.join("x-ca.pem")).unwrap();
    let lazy = || options().with_require_connection(false);
    // Certificate verification cannot be switched off.
    assert!(check_url("rediss://127.0.0.1:1/#insecure").is_err());
    assert!(matches!(
        connect("rediss://127.0.0.1:1/#insecure", lazy()).await,
        Err(StateError::InvalidArgument(_))
    ));
    // A CA for a URL without TLS is a mistake, not something to ignore.
    assert!(matches!(
        connect("redis://127.0.0.1:1", lazy().with_tls_ca(pem.clone())).await,
        Err(StateError::InvalidArgument(_))
    ));
    // A CA that is not PEM certificates.
    for junk in [&b"not a certificate"[..], b""] {
        assert!(matches!(
            connect("rediss://127.0.0.1:1", lazy().with_tls_ca(junk.to_vec())).await,
            Err(StateError::InvalidArgument(_))
        ));
    }
    // A good CA and URL give a (lazy) backend.
    assert!(
        connect("rediss://127.0.0.1:1", lazy().with_tls_ca(pem))
            .await
            .is_ok()
    );
}
