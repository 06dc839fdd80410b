//! The kailash-rs reference deployment.
//!
//! ```text
//! enterprise_gateway [--config PATH] [--listen HOST:PORT] [--data-dir DIR]
//! ```
//!
//! Without `--config` it runs the demo configuration built into the binary
//! (`examples/config/enterprise.toml`). Precedence for the listen address:
//! `--listen`, then `KAILASH_LISTEN`, then the file. `KAILASH_REDIS_URL`
//! moves all shared state to Redis. Logs go to stderr; `RUST_LOG` takes
//! `level` or `target=level,…` directives (default `info`). With
//! `--config`, SIGHUP reloads the `[access]` section from the file (a
//! refused policy is logged with its file and line; the one in force stays).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use kailash::GatewayBuilder;
use kailash::config::GatewayConfig;
use kailash::outbound::ConnectionPool;
use kailash_examples::{business, demo};

const DEMO_CONFIG: &str = include_str!("../../config/enterprise.toml");
const USAGE: &str =
    "usage: enterprise_gateway [--config PATH] [--listen HOST:PORT] [--data-dir DIR]

  --config PATH       TOML configuration (default: the built-in demo config)
  --listen HOST:PORT  address to listen on (overrides KAILASH_LISTEN and the file)
  --data-dir DIR      where the audit trail is written (default ./data, env KAILASH_DATA_DIR)
";

#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--config" => parsed.config = Some(PathBuf::from(value()?)),
            "--listen" => {
                let v = value()?;
                parsed.listen = Some(
                    v.parse()
                        .map_err(|_| format!("--listen: {v:?} is not HOST:PORT"))?,
                );
            }
            "--data-dir" => parsed.data_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

/// The reference binary's allocator (feature `mimalloc`, on by default):
/// measured faster than glibc's for the gateway's cross-thread frees.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logs go to stderr through a buffered writer thread: one `write` per
/// 20 ms instead of one per request line (stderr is unbuffered). The guard
/// writes what is left when `main` returns. Colours only on a terminal.
/// With `telemetry`, spans are also exported (OpenTelemetry), with their
/// own filter: the log level stays `RUST_LOG`'s.
fn init_logging(
    telemetry: Option<&Telemetry>,
    redact: bool,
) -> Option<kailash::log::LogWriterGuard> {
    use tracing_subscriber::filter::Targets;
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter: Targets = directives.parse().unwrap_or_else(|e| {
        eprintln!("RUST_LOG={directives:?} is not valid ({e}); using info");
        Targets::new().with_default(tracing::Level::INFO)
    });
    let mut builder = kailash::log::LogWriter::builder();
    if redact {
        // `[security] redact_logs`: on the writer thread, off the requests.
        builder = builder.redact_pii(kailash::pii::PiiDetector::all());
    }
    match builder.spawn(std::io::stderr()) {
        Ok((writer, guard)) => {
            install(move || writer.clone(), filter, telemetry);
            Some(guard)
        }
        Err(e) => {
            eprintln!("could not start the log writer thread ({e}); logging to stderr directly");
            install(std::io::stderr, filter, telemetry);
            None
        }
    }
}

/// The subscriber: the log lines through `writer`, filtered by `filter`;
/// with telemetry, the exporter's layer beside them with its own filter.
/// Without telemetry the filter is global (per-layer filtering costs the
/// registry work on every span, measured on the full stack).
fn install<W>(writer: W, filter: tracing_subscriber::filter::Targets, telemetry: Option<&Telemetry>)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use std::io::IsTerminal;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::prelude::*;
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    match telemetry {
        None => tracing_subscriber::registry().with(fmt).with(filter).init(),
        Some(t) => tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .with(otel_layer(t))
            .init(),
    }
}

#[cfg(feature = "otel")]
type Telemetry = kailash::telemetry::Telemetry;
/// Without the `otel` feature there is nothing to export.
#[cfg(not(feature = "otel"))]
#[derive(Debug)]
enum Telemetry {}

#[cfg(feature = "otel")]
fn otel_layer<S>(t: &Telemetry) -> kailash::telemetry::TelemetryLayer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    t.layer()
}

#[cfg(not(feature = "otel"))]
fn otel_layer(t: &Telemetry) -> tracing_subscriber::layer::Identity {
    match *t {}
}

/// Starts trace export when `[telemetry] endpoint` is set.
fn start_telemetry(
    config: &GatewayConfig,
    pool: &ConnectionPool,
) -> Result<Option<Telemetry>, String> {
    #[cfg(feature = "otel")]
    {
        Telemetry::from_config_with_pool(&config.telemetry, &config.gateway.title, Some(pool))
            .map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "otel"))]
    {
        // The config refuses an endpoint in a build without `otel`.
        let _ = (config, pool);
        Ok(None)
    }
}

/// Reloads `[access]` from `path` on every SIGHUP. Without a file (the
/// built-in demo config) SIGHUP is only logged, so it never stops the process.
#[cfg(unix)]
fn reload_on_sighup(
    path: Option<PathBuf>,
    access: kailash::access::AccessControl,
) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(path) = &path else {
                tracing::warn!(
                    "SIGHUP: the built-in config has no file to reload; start with --config FILE"
                );
                continue;
            };
            match kailash::config::reload_access(path, &access).await {
                Ok(()) => tracing::info!(path = %path.display(), "access policy reloaded"),
                Err(e) => tracing::error!("access policy reload refused: {e}"),
            }
        }
    });
    Ok(())
}

/// The configuration file (or the built-in demo), with the environment's
/// overrides and `--listen`; its text and origin for error locations.
fn load_config(args: &Args) -> Result<(GatewayConfig, String, String), String> {
    let (text, origin) = match &args.config {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            DEMO_CONFIG.to_owned(),
            "examples/config/enterprise.toml (built in)".to_owned(),
        ),
    };
    let mut config = GatewayConfig::from_toml_with_env(&text, &origin, std::env::vars())
        .map_err(|e| e.to_string())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    Ok((config, text, origin))
}

async fn run(
    args: Args,
    config: GatewayConfig,
    text: String,
    origin: String,
    pool: ConnectionPool,
) -> Result<(), String> {
    let data_dir = args
        .data_dir
        .or_else(|| std::env::var_os("KAILASH_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data"));

    let builder =
        match GatewayBuilder::from_config_with_backends_and_pool(&config, &data_dir, pool).await {
            Ok(b) => b,
            Err(kailash::GatewayError::Access(e)) => {
                return Err(kailash::config::locate_access_error(&text, &origin, &e));
            }
            Err(e) => return Err(e.to_string()),
        };
    #[cfg(unix)]
    if let Some(access) = builder.access_handle() {
        reload_on_sighup(args.config.clone(), access.clone())?;
    }
    // The demo's protected routes need roles and tenants to check against.
    let builder = if config.access.is_some() && !config.tenants.is_empty() {
        demo::with_demo_routes(builder).map_err(|e| e.to_string())?
    } else {
        builder
    };
    // Completed workflow runs count for their user's department, and
    // record their SLA compliance.
    let builder = if config.runtime.is_some() {
        business::with_business_metrics(builder, &config, business::RUN_SLA)
            .map_err(|e| e.to_string())?
    } else {
        builder
    };
    let gateway = builder.build().map_err(|e| e.to_string())?;
    tracing::info!(
        data_dir = %data_dir.display(),
        state = gateway.state().backend_name(),
        worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "reference deployment ready: GET /health/ready, /metrics, /openapi.json, /docs"
    );
    gateway.run().await.map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (config, text, origin) = match load_config(&args) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `[server] worker_threads` sizes the runtime, so it is built here
    // rather than by `#[tokio::main]`.
    let runtime = match config.server.runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(args, config, text, origin))
}

async fn serve(args: Args, config: GatewayConfig, text: String, origin: String) -> ExitCode {
    // One pool for every outbound call, trace export included
    // (`[outbound] connection_pool_size`).
    let pool = ConnectionPool::new(config.outbound.pool());
    let telemetry = match start_telemetry(&config, &pool) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _log = init_logging(telemetry.as_ref(), config.security.redact_logs);
    let outcome = run(args, config, text, origin, pool).await;
    #[cfg(feature = "otel")]
    if let Some(t) = telemetry {
        // Spans still buffered go out before the process ends.
        t.shutdown().await;
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<Args>, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags_in_both_forms() {
        let a = args(&[
            "--config",
            "x.toml",
            "--listen=127.0.0.1:9000",
            "--data-dir",
            "/tmp/d",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(a.config, Some(PathBuf::from("x.toml")));
        assert_eq!(a.listen.unwrap().port(), 9000);
        assert_eq!(a.data_dir, Some(PathBuf::from("/tmp/d")));
        assert!(args(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn refuses_bad_arguments() {
        assert!(args(&["--listen", "nowhere"]).is_err());
        assert!(args(&["--config"]).is_err());
        assert!(args(&["--verbose"]).is_err());
    }

    #[test]
    fn the_demo_config_is_valid() {
        let c = GatewayConfig::from_toml_str(DEMO_CONFIG, "demo").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8000");
        assert!(c.rate_limit.per_ip.is_some());
    }
}
