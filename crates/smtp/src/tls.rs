//! Loading the server certificate and key for `STARTTLS`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or is not valid PEM.
    #[error("reading certificates from {path}: {source}")]
    Certificates {
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate found in {0}")]
    NoCertificate(PathBuf),
    /// The key file could not be read or holds no PEM private key.
    #[error("reading the private key from {path}: {source}")]
    PrivateKey {
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    /// rustls refused the certificate chain or the key (e.g. they do not match).
    #[error("invalid certificate or key: {0}")]
    Config(#[from] rustls::Error),
}

/// Loads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
/// SEC1) into a rustls server configuration using the aws-lc-rs provider, TLS 1.2 and 1.3.
pub fn load_tls(cert_pem: &Path, key_pem: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certificates_error = |source| TlsError::Certificates { path: cert_pem.to_owned(), source };
    let certificates = CertificateDer::pem_file_iter(cert_pem)
        .map_err(certificates_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(certificates_error)?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate(cert_pem.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_pem)
        .map_err(|source| TlsError::PrivateKey { path: key_pem.to_owned(), source })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates, key)?;
    Ok(Arc::new(config))
}
