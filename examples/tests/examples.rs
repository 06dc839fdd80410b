//! Every small example of `examples/` run the way its README line says:
//! the binary `cargo test` built (target/<profile>/examples/<name>) is
//! started on an ephemeral port, and the test makes the requests the line
//! promises — the refusals included.

#[path = "../../crates/kailash/tests/support/mod.rs"]
mod support;

#[path = "examples/access_policy.rs"]
mod access_policy;
#[path = "examples/gateway_from_toml.rs"]
mod gateway_from_toml;
#[path = "examples/grpc_tonic.rs"]
mod grpc_tonic;
#[path = "examples/jwt_auth_axum.rs"]
mod jwt_auth_axum;
#[cfg(feature = "otel")]
#[path = "examples/metrics_otel.rs"]
mod metrics_otel;
#[path = "examples/plain_hyper.rs"]
mod plain_hyper;
#[path = "examples/rate_limited_axum.rs"]
mod rate_limited_axum;
#[path = "examples/realtime_broadcast.rs"]
mod realtime_broadcast;
#[cfg(feature = "redis")]
#[path = "examples/redis_rate_limit.rs"]
mod redis_rate_limit;
#[path = "examples/tenant_subdomain.rs"]
mod tenant_subdomain;
#[path = "examples/workflow_runtime.rs"]
mod workflow_runtime;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long an example may take to start (the gateway hashes passwords
/// and loads its policy in a debug build).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running example; killed when dropped.
pub struct Example {
    child: Child,
    /// The address it printed after `listening on`.
    pub addr: SocketAddr,
    /// Its stdout lines up to that one.
    pub lines: Vec<String>,
}

/// The path of the example binary `name`, next to this test's `deps/`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; `cargo test` builds the examples before the tests (not with `--test examples` alone)",
                path.display()
            )
        });
    // `cargo test --test examples` does not rebuild the examples: refuse to
    // test an old binary rather than pass on it.
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("{name}.rs"));
    let edited = std::fs::metadata(&source).and_then(|m| m.modified());
    assert!(
        edited.is_ok_and(|edited| edited <= built),
        "{} is older than {}: run `cargo test` without `--test` so cargo rebuilds the examples",
        path.display(),
        source.display()
    );
    path
}

impl Example {
    /// Starts example `name` with `args` and `env`, and waits for its
    /// `listening on <addr>` line.
    pub fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> Example {
        Self::start_in(name, args, env, &std::env::temp_dir())
    }

    /// [`start`](Self::start) in working directory `dir`.
    pub fn start_in(name: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Example {
        let child = Command::new(binary(name))
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        // Owned from here on, so a failed start is killed and reaped (Drop).
        let mut example = Example {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines: Vec::new(),
        };
        let stdout = example.child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Drains stdout for the example's whole life, so it never blocks
        // or fails writing, whether or not anyone still listens.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        loop {
            let Ok(line) = rx.recv_timeout(START_TIMEOUT) else {
                panic!(
                    "{name} printed no `listening on` line; it printed {:?}",
                    example.lines
                )
            };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let addr = addr.trim_start_matches("http://").trim_end_matches('/');
                example.addr = addr
                    .parse()
                    .unwrap_or_else(|e| panic!("{name}: {addr:?}: {e}"));
                return example;
            }
            example.lines.push(line);
        }
    }

    /// The token it printed for `user` (`token <user>: <jwt>`).
    pub fn token(&self, user: &str) -> String {
        let prefix = format!("token {user}: ");
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no token for {user} in {:?}", self.lines))
            .to_owned()
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What an example that ran to its end did.
pub struct Ran {
    /// Whether it exited with success.
    pub ok: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs example `name` to its end.
pub fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let out = Command::new(binary(name))
        .args(args)
        .current_dir(std::env::temp_dir())
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `GET path` with an optional bearer token and extra header lines.
pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>, extra: &str) -> support::Resp {
    let mut head = format!("GET {path} HTTP/1.1\nHost: localhost");
    if let Some(t) = token {
        head.push_str(&format!("\nAuthorization: Bearer {t}"));
    }
    if !extra.is_empty() {
        head.push('\n');
        head.push_str(extra);
    }
    support::request(addr, &head, b"").await
}
