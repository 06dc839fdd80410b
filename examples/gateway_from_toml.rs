//! The whole gateway from a TOML file: authentication, tenancy, access
//! control, rate limits, health, metrics, OpenAPI — whatever the file
//! configures (default: the demo, `config/enterprise.toml`). Environment
//! overrides apply (`KAILASH_SERVER__LISTEN=127.0.0.1:0`).
//!
//! ```text
//! cargo run -p kailash-examples --example gateway_from_toml -- examples/config/enterprise.toml
//! curl -s localhost:8000/auth/login -H 'content-type: application/json' \
//!   -d '{"username":"bob","password":"Bob-Demo-Passw0rd!"}'          # a token pair
//! ```

use kailash::{GatewayBuilder, config::GatewayConfig, shutdown_signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/config/enterprise.toml").into());
    let config = GatewayConfig::load(&path)?;
    let gateway = GatewayBuilder::from_config_with_backends(&config, "data".as_ref())
        .await?
        .build()?;
    let listener = tokio::net::TcpListener::bind(gateway.listen_addr()).await?;
    println!("listening on http://{}", listener.local_addr()?);
    gateway.serve(listener, shutdown_signal()).await?;
    Ok(())
}
