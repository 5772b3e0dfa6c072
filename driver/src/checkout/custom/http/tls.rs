//! The rustls client configuration of an `https://` HTTP checkout, from the same settings as the
//! gRPC side ([`ClientTls`]): the CA to trust (or the system's roots), a client identity for
//! mutual TLS, the name to verify and send as SNI, and `--insecure` (the gRPC side's verifier,
//! which still checks the handshake's signatures). ALPN offers exactly the protocol the client
//! will speak: `h2` or `http/1.1`.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::checkout::tls::NoVerification;
use crate::error::DriverError;
use crate::spec::ClientTls;

/// What the dialer needs to open TLS connections to one target.
#[derive(Clone)]
pub(super) struct Tls {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

/// The TLS settings of `tls` for the `https://` target `url` whose host is `host`.
pub(super) fn configure(
    url: &str,
    host: &str,
    tls: &ClientTls,
    http2: bool,
) -> Result<Tls, DriverError> {
    let invalid = |reason: String| DriverError::InvalidTarget {
        target: url.to_string(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS settings not usable: {e}")))?;
    let builder = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification::new()))
    } else {
        builder.with_root_certificates(roots(tls).map_err(&invalid)?)
    };
    let mut config = match &tls.identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(&cert.bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("--cert {}: {e}", cert.path.display())))?;
            let key = PrivateKeyDer::from_pem_slice(&key.bytes)
                .map_err(|e| invalid(format!("--key {}: {e}", key.path.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("--cert/--key not usable: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let name = tls.server_name().unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| invalid(format!("`{name}` is not a TLS server name: {e}")))?;
    Ok(Tls {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
    })
}

/// The certificates to trust: `--ca-cert`, else the system's roots.
fn roots(tls: &ClientTls) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_cert {
        Some(ca) => {
            for cert in CertificateDer::pem_slice_iter(&ca.bytes) {
                let cert = cert.map_err(|e| format!("--ca-cert {}: {e}", ca.path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("--ca-cert {}: {e}", ca.path.display()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(
                    "no trusted certificates: the system has no CA roots; give --ca-cert".into(),
                );
            }
        }
    }
    Ok(roots)
}
