//! The TLS identity a door serves with: a certificate chain and its private
//! key in PEM files named by a pair of settings (`query.pg_tls_cert` /
//! `query.pg_tls_key`, `query.flight_tls_cert` / `query.flight_tls_key`),
//! read and checked when the door starts, so a bad file fails the start
//! rather than the first connection.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use crate::service::QueryError;

/// A door's certificate and key as read from their files.
pub(crate) struct Identity {
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
    /// The same, checked by rustls (on ring, named rather than taken from
    /// the process: it links two providers, ring and aws-lc-rs through the
    /// AWS SDK).
    pub(crate) config: Arc<rustls::ServerConfig>,
}

/// The identity `query.<door>_tls_cert` and `query.<door>_tls_key` name, or
/// `None` when neither is set.
pub(crate) fn identity(door: &str, cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Result<Option<Identity>, QueryError> {
    let (cert, key) = match (cert, key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => return Ok(None),
        _ => return Err(QueryError::user(format!("query.{door}_tls_cert and query.{door}_tls_key go together: set both or neither"))),
    };
    let read = |name: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| QueryError::user(format!("query.{door}_tls_{name} {}: {e}", path.display())))
    };
    let (cert_pem, key_pem) = (read("cert", cert)?, read("key", key)?);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| QueryError::user(format!("query.{door}_tls_cert {}: {e}", cert.display())))?;
    let private =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| QueryError::user(format!("query.{door}_tls_key {}: {e}", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, private))
        .map_err(|e| QueryError::user(format!("query.{door}_tls_cert / query.{door}_tls_key: {e}")))?;
    Ok(Some(Identity { cert_pem, key_pem, config: Arc::new(config) }))
}
