//! Loading the TLS server configuration (rustls with aws-lc-rs).

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::GatewayError;
use crate::builder::TlsSettings;

pub(crate) fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, GatewayError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.cert)
        .map_err(|e| {
            GatewayError::Tls(format!(
                "cannot read certificates from {}: {e}",
                settings.cert.display()
            ))
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            GatewayError::Tls(format!(
                "bad certificate in {}: {e}",
                settings.cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(GatewayError::Tls(format!(
            "no certificate in {}",
            settings.cert.display()
        )));
    }
    // The key's content never appears in an error: only its path.
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|_| {
        GatewayError::Tls(format!(
            "no usable private key in {}",
            settings.key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if settings.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| GatewayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            GatewayError::Tls(format!(
                "certificate and key do not form a usable pair: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
