//! TLS certificates for tests: a throw-away CA and a server certificate it signed, for
//! `localhost` and `127.0.0.1`, written as PEM files a proxy and libpq can read.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::error::{HarnessError, Result};
use crate::scratch::ScratchDir;

/// The files of a test CA and a server certificate; removed when dropped.
#[derive(Debug)]
pub struct TestCertificates {
    dir: ScratchDir,
}

impl TestCertificates {
    /// Makes a CA and a server certificate signed by it.
    pub fn generate() -> Result<TestCertificates> {
        let failed = |reason: String| HarnessError::Proxy {
            action: "generate test certificates".to_string(),
            reason,
        };
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| failed(e.to_string()))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pgshard test CA");
        let ca_key = KeyPair::generate().map_err(|e| failed(e.to_string()))?;
        let ca =
            CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| failed(e.to_string()))?;
        let server_key = KeyPair::generate().map_err(|e| failed(e.to_string()))?;
        let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .and_then(|params| params.signed_by(&server_key, &ca))
            .map_err(|e| failed(e.to_string()))?;
        let dir = ScratchDir::new("tls").map_err(|source| HarnessError::Io {
            action: "create a directory for test certificates".to_string(),
            source,
        })?;
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server.pem()),
            ("server.key", server_key.serialize_pem()),
        ] {
            std::fs::write(dir.file(name), pem).map_err(|source| HarnessError::Io {
                action: format!("write {name}"),
                source,
            })?;
        }
        Ok(TestCertificates { dir })
    }

    /// The CA certificate, for `sslrootcert`.
    pub fn ca(&self) -> PathBuf {
        self.dir.file("ca.pem")
    }

    /// The server certificate, for `tls_certificate`.
    pub fn certificate(&self) -> PathBuf {
        self.dir.file("server.pem")
    }

    /// The server certificate's key, for `tls_private_key`.
    pub fn key(&self) -> PathBuf {
        self.dir.file("server.key")
    }
}
