//! TLS for `https://` targets, through tonic's rustls support: the CA to trust (or the system's
//! roots), a client identity for mutual TLS, an SNI / `:authority` override, and `--insecure`,
//! which checks the handshake's signatures but not who signed the certificate.

use std::sync::Arc;

use tokio_rustls::rustls::{
    self, DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Uri};

use super::error_chain;
use crate::error::DriverError;
use crate::spec::ClientTls;

/// `endpoint` (for the `https://` target `url`) with the TLS settings of `tls`.
pub(super) fn configure(
    endpoint: Endpoint,
    url: &str,
    tls: &ClientTls,
) -> Result<Endpoint, DriverError> {
    let invalid = |reason: String| DriverError::InvalidTarget {
        target: url.to_string(),
        reason,
    };
    let mut config = ClientTlsConfig::new();
    if let Some(name) = tls.server_name() {
        config = config.domain_name(name);
    }
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(&*cert.bytes, &*key.bytes));
    }
    let endpoint = match &tls.authority {
        Some(authority) => {
            let origin: Uri = format!("https://{authority}")
                .parse()
                .map_err(|e| invalid(format!("--authority {authority}: {e}")))?;
            endpoint.origin(origin)
        }
        None => endpoint,
    };
    let configured = if tls.insecure {
        endpoint.tls_config_with_verifier(config, Arc::new(NoVerification::new()))
    } else {
        config = match &tls.ca_cert {
            Some(ca) => config.ca_certificate(Certificate::from_pem(&*ca.bytes)),
            None => config.with_native_roots(),
        };
        endpoint.tls_config(config)
    };
    configured.map_err(|e| invalid(format!("TLS settings not usable: {}", error_chain(&e))))
}

/// Accepts any server certificate (`--insecure`); the handshake's signatures are still
/// checked, so the connection is encrypted, but with whoever answered.
#[derive(Debug)]
pub(super) struct NoVerification(Arc<CryptoProvider>);

impl NoVerification {
    pub(super) fn new() -> Self {
        Self(Arc::new(rustls::crypto::ring::default_provider()))
    }
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
