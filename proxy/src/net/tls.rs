//! TLS for clients: the certificate and key of `[proxy]`, loaded once at start-up.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::error::ProxyError;

/// The acceptor for `certificate` and `key` (PEM files), or why they cannot be used; the
/// error names the setting and the file.
pub fn acceptor(certificate: &Path, key: &Path) -> Result<TlsAcceptor, ProxyError> {
    let problem = |setting: &str, path: &Path, reason: String| {
        ProxyError::Config(format!("proxy.{setting}: {}: {reason}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| problem("tls_certificate", certificate, e.to_string()))?;
    if chain.is_empty() {
        return Err(problem(
            "tls_certificate",
            certificate,
            "no PEM certificate in the file".to_string(),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| problem("tls_private_key", key, e.to_string()))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, private_key)
        })
        .map_err(|e| problem("tls_private_key", key, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_setting_and_the_file() {
        let dir = std::env::temp_dir().join(format!("pgshard-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let missing = dir.join("missing.pem");

        let error = acceptor(&missing, &empty).err().unwrap().to_string();
        assert!(error.contains("proxy.tls_certificate") && error.contains("missing.pem"));
        let error = acceptor(&empty, &empty).err().unwrap().to_string();
        assert!(error.contains("proxy.tls_certificate") && error.contains("no PEM certificate"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
