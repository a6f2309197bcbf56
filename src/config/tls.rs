//! HTTPS on the listener: the server's certificate and key, and, with
//! `client_ca_file`, client certificates required and checked against that CA. Every
//! error names the key and the file, so `salve check` and the start say what to fix.

use super::TlsFiles;
use crate::model::InvalidSetting;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;

/// Reads the files and builds what the listener serves with.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, InvalidSetting> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let in_file = |key: &str, path: &Path, e: &dyn std::fmt::Display| {
        InvalidSetting::new(key, format!("{}: {e}", path.display()))
    };
    let chain = certificates("api.tls_cert_file", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| in_file("api.tls_key_file", &files.key, &e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| InvalidSetting::new("api.tls_cert_file", format!("TLS: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates("api.client_ca_file", path)? {
                roots
                    .add(ca)
                    .map_err(|e| in_file("api.client_ca_file", path, &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| in_file("api.client_ca_file", path, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        InvalidSetting::new(
            "api.tls_key_file",
            format!(
                "{} does not go with {}: {e}",
                files.key.display(),
                files.cert.display()
            ),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, InvalidSetting> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| InvalidSetting::new(key, format!("{}: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(InvalidSetting::new(
            key,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(chain)
}
