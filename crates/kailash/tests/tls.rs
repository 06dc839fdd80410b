//! HTTPS through rustls.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use kailash::{Gateway, TlsSettings};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use support::{request_on, start};
use tokio::net::TcpStream;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn settings(tls13_only: bool) -> TlsSettings {
    TlsSettings {
        cert: fixture("test-cert.pem"),
        key: fixture("test-key.pem"),
        tls13_only,
    }
}

fn client(versions: &[&'static rustls::SupportedProtocolVersion]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(fixture("test-ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn serves_https() {
    let gw = start(Gateway::builder().tls(settings(false))).await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = client(&[&rustls::version::TLS12])
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS 1.2 handshake");
    let r = request_on(tls, "GET /health/live HTTP/1.1\nHost: localhost", b"").await;
    assert_eq!(r.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn requests_on_the_tls_listener_are_secure() {
    // HTTPS required: this listener's TLS satisfies it, and its answers
    // carry HSTS and the security headers.
    let https = kailash_core::transport::HttpsPolicyLayer::new()
        .hsts(kailash_core::transport::Hsts::new(
            std::time::Duration::from_secs(3600),
        ))
        .unwrap();
    let gw = start(
        Gateway::builder()
            .tls(settings(false))
            .https_policy(Some(https)),
    )
    .await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = client(&[&rustls::version::TLS13])
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let r = request_on(
        tls,
        "POST /nowhere HTTP/1.1\nHost: localhost\nContent-Length: 0",
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.header("strict-transport-security"), Some("max-age=3600"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    gw.stop().await;
}

#[tokio::test]
async fn tls13_only_refuses_tls12() {
    let gw = start(Gateway::builder().tls(settings(true))).await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let refused = client(&[&rustls::version::TLS12])
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(refused.is_err(), "TLS 1.2 must be refused");

    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = client(&[&rustls::version::TLS13])
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS 1.3 handshake");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let r = request_on(tls, "GET /health/ready HTTP/1.1\nHost: localhost", b"").await;
    assert_eq!(r.status, 200);
    gw.stop().await;
}

#[test]
fn unreadable_or_mismatched_material_stops_the_build() {
    let missing = TlsSettings {
        cert: fixture("missing.pem"),
        ..settings(false)
    };
    let err = Gateway::builder()
        .tls(missing)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.pem"), "{err}");

    let key_as_cert = TlsSettings {
        cert: fixture("test-key.pem"),
        ..settings(false)
    };
    let err = Gateway::builder()
        .tls(key_as_cert)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("TLS:"), "{err}");

    let cert_as_key = TlsSettings {
        key: fixture("test-cert.pem"),
        ..settings(false)
    };
    let err = Gateway::builder()
        .tls(cert_as_key)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no usable private key"), "{err}");
    let key_text = std::fs::read_to_string(fixture("test-key.pem")).unwrap();
    let key_body = key_text.lines().nth(1).unwrap();
    assert!(
        !err.contains(key_body),
        "key material never appears in errors"
    );
}
