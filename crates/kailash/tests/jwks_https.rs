//! A downstream service verifies the gateway's tokens with keys fetched
//! from the gateway's `/.well-known/jwks.json` over HTTPS.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use kailash::GatewayBuilder;
use kailash::auth::jwt::{RemoteKeySet, TokenType, Verifier};
use kailash::clock::SystemClock;
use kailash::config::GatewayConfig;
use kailash::jwks::{HttpsJwksSource, JwksUrlError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::{request_on, start_gateway};
use tokio::net::TcpStream;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn test_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("test-ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

#[tokio::test]
async fn a_service_verifies_gateway_tokens_from_its_jwks_url() {
    let demo = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway.toml"),
    )
    .unwrap();
    let vars = vec![
        (
            "KAILASH_SERVER__TLS__CERT".to_owned(),
            fixture("test-cert.pem").display().to_string(),
        ),
        (
            "KAILASH_SERVER__TLS__KEY".to_owned(),
            fixture("test-key.pem").display().to_string(),
        ),
    ];
    let config = GatewayConfig::from_toml_with_env(&demo, "gateway.toml", vars).unwrap();
    let data = std::env::temp_dir().join(format!("kailash-jwks-{}", std::process::id()));
    let gateway = GatewayBuilder::from_config_with_backends(&config, &data)
        .await
        .unwrap()
        .build()
        .unwrap();
    assert!(gateway.is_tls());
    let gw = start_gateway(gateway).await;

    // Log in over TLS.
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(test_roots())
    .with_no_client_auth();
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let body = br#"{"username":"bob","password":"Bob-Demo-Passw0rd!"}"#;
    let head = format!(
        "POST /auth/login HTTP/1.1\nHost: localhost\nContent-Type: application/json\nContent-Length: {}",
        body.len()
    );
    let login = request_on(tls, &head, body).await;
    assert_eq!(login.status, 200, "{}", login.text());
    let token = login.json()["access_token"].as_str().unwrap().to_owned();

    // The downstream service knows only the URL and the CA.
    let url = format!("https://localhost:{}/.well-known/jwks.json", gw.addr.port());
    let source = HttpsJwksSource::with_roots(&url, test_roots()).unwrap();
    let keys = RemoteKeySet::load(Arc::new(source), Arc::new(SystemClock))
        .await
        .unwrap();
    let verifier = Verifier::builder(Arc::new(keys), "kailash-demo", "kailash-api")
        .token_type(TokenType::Access)
        .build();
    let claims = verifier.verify(&token).await.unwrap();
    assert_eq!(claims.sub, "bob");
    assert!(verifier.verify(&format!("{token}x")).await.is_err());

    // The system roots do not know the test CA: the fetch fails, nothing is trusted.
    if let Ok(untrusting) = HttpsJwksSource::new(&url) {
        assert!(
            RemoteKeySet::load(Arc::new(untrusting), Arc::new(SystemClock))
                .await
                .is_err()
        );
    }
    gw.stop().await;
    std::fs::remove_dir_all(data).ok();
}

#[test]
fn only_https_urls_are_accepted() {
    for bad in [
        "http://localhost/.well-known/jwks.json",
        "localhost/jwks",
        "https:///nohost",
        "ftp://x/y",
    ] {
        assert!(
            matches!(
                HttpsJwksSource::with_roots(bad, test_roots()),
                Err(JwksUrlError::NotHttps)
            ),
            "{bad}"
        );
    }
}
