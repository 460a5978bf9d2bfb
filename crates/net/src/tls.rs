//! TLS for every listener: a PEM certificate chain and key, loaded once into a rustls server
//! configuration that the Queue REST listener uses now and the Service Bus listeners will use
//! too (`--tls-cert`/`--tls-key`, as Azurite's `--cert`/`--key`).
//!
//! rustls with the ring provider: the Rust client already links both, so TLS costs the server
//! no new C build and no OpenSSL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
pub use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the certificate {path}: {reason}", path = .0.display(), reason = .1)]
    Cert(PathBuf, String),
    #[error("reading the private key {path}: {reason}", path = .0.display(), reason = .1)]
    Key(PathBuf, String),
    #[error("the certificate and key do not work together: {0}")]
    Config(String),
}

/// The ALPN protocols an HTTP listener offers: HTTP/1.1 only (the SDKs all speak it).
pub const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];

/// Loads `cert` (a PEM chain, leaf first) and `key` (PKCS#8, PKCS#1 or SEC1 PEM).
pub fn load(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Cert(cert.to_owned(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert(cert.to_owned(), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Cert(
            cert.to_owned(),
            "no CERTIFICATE block in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Key(key.to_owned(), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

pub fn acceptor(config: Arc<ServerConfig>) -> TlsAcceptor {
    TlsAcceptor::from(config)
}
