//! TLS to the nodes: one rustls client configuration from `[proxy] server_tls_mode` and
//! `server_tls_ca`, used by the control connections here and by the data plane's server
//! connections, so both are encrypted and checked alike.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use pgshard_config::ServerTlsMode;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

/// How to encrypt connections to the nodes; `None` of it means plaintext.
#[derive(Clone)]
pub struct NodeTls {
    pub mode: ServerTlsMode,
    config: Arc<ClientConfig>,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTls").field("mode", &self.mode).finish()
    }
}

impl NodeTls {
    /// The TLS settings for `mode`, with the CA certificates of `ca` for `verify-full`;
    /// `Ok(None)` for `disable`. Errors name the setting and the file.
    pub fn from_settings(
        mode: ServerTlsMode,
        ca: Option<&Path>,
    ) -> Result<Option<NodeTls>, String> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("proxy.server_tls_mode: {e}"))?;
        let config = match mode {
            ServerTlsMode::Disable => return Ok(None),
            ServerTlsMode::Prefer | ServerTlsMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth(),
            ServerTlsMode::VerifyFull => {
                let Some(ca) = ca else {
                    return Err(
                        "proxy.server_tls_mode: verify-full needs proxy.server_tls_ca".into(),
                    );
                };
                let problem =
                    |reason: String| format!("proxy.server_tls_ca: {}: {reason}", ca.display());
                let mut roots = RootCertStore::empty();
                for certificate in
                    CertificateDer::pem_file_iter(ca).map_err(|e| problem(e.to_string()))?
                {
                    let certificate = certificate.map_err(|e| problem(e.to_string()))?;
                    roots.add(certificate).map_err(|e| problem(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(problem("no PEM certificate in the file".to_string()));
                }
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| problem(e.to_string()))?;
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            }
        };
        Ok(Some(NodeTls {
            mode,
            config: Arc::new(config),
        }))
    }

    /// Whether a server that answers an SSLRequest with `N` must be refused.
    pub fn required(&self) -> bool {
        self.mode >= ServerTlsMode::Require
    }

    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.config.clone())
    }

    /// The name the server's certificate must carry: the host of `addr`'s `host:port`.
    pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
        ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host} is not a name TLS can check: {e}"))
    }
}

/// For `prefer` and `require`, as libpq's: the connection is encrypted, the server's
/// certificate taken as it comes; the handshake's signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<tokio_rustls::rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
