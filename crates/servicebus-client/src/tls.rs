//! TLS for both protocols: the web's roots (webpki-roots, as reqwest uses), plus the PEM
//! certificates named by `HEMATITE_CA_FILE` or `SSL_CERT_FILE`, so a development CA from
//! `hematite dev-cert` is trusted without installing it system-wide.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::Error;

/// The extra CA file a user named, if any.
pub(crate) fn extra_ca_file() -> Option<String> {
    ["HEMATITE_CA_FILE", "SSL_CERT_FILE"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
}

pub(crate) fn extra_cas() -> Result<Vec<CertificateDer<'static>>, Error> {
    let Some(path) = extra_ca_file() else {
        return Ok(Vec::new());
    };
    CertificateDer::pem_file_iter(&path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Config(format!("reading CA certificates from {path}: {e}")))
}

pub(crate) fn client_config() -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_cas()? {
        roots
            .add(cert)
            .map_err(|e| Error::Config(format!("a CA certificate is not usable: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::transport)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
