//! TLS for the server: `--tls-cert` and `--tls-key` serve every service (checkout, health,
//! reflection) over TLS; `--client-ca` also requires each client to present a certificate
//! that CA signed (mutual TLS). The files are read and checked before the server starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Largest PEM file read.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {flag} {}: {source}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {} is larger than {MAX_PEM_BYTES} bytes", path.display())]
    TooLarge { flag: &'static str, path: PathBuf },
    #[error("{flag} {} is not valid PEM: {reason}", path.display())]
    InvalidPem {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// The server's TLS flags; without `--tls-cert` it serves plaintext.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct TlsConfig {
    /// PEM file of the server's certificate chain: serve TLS (with --tls-key).
    #[arg(
        long,
        env = "FLASHSALE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM file of the server's private key (with --tls-cert).
    #[arg(
        long,
        env = "FLASHSALE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// PEM file of the CA that signs client certificates: require one from every client
    /// (mutual TLS; needs --tls-cert).
    #[arg(
        long,
        env = "FLASHSALE_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub client_ca: Option<PathBuf>,
}

impl TlsConfig {
    /// True when the server serves TLS.
    pub fn enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// Reads and checks the files: `None` for plaintext. `handshake_timeout` bounds each TLS
    /// handshake.
    pub fn load(&self, handshake_timeout: Duration) -> Result<Option<ServerTlsConfig>, TlsError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let cert = read_certificates("--tls-cert", cert)?;
        let key = read_key("--tls-key", key)?;
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .timeout(handshake_timeout);
        if let Some(ca) = &self.client_ca {
            config =
                config.client_ca_root(Certificate::from_pem(read_certificates("--client-ca", ca)?));
        }
        Ok(Some(config))
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let err = |source| TlsError::Read {
        flag,
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(err)?
        .take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            flag,
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn invalid(flag: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::InvalidPem {
        flag,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The file's bytes, once they proved to hold at least one readable certificate (`flag` names
/// the file in errors). The driver reads its client-side PEM files with it too.
pub fn read_certificates(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = read(flag, path)?;
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        cert.map_err(|e| invalid(flag, path, e.to_string()))?;
        count += 1;
    }
    if count == 0 {
        return Err(invalid(flag, path, "no CERTIFICATE block in it"));
    }
    Ok(bytes)
}

/// The file's bytes, once they proved to hold a private key.
pub fn read_key(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = read(flag, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| invalid(flag, path, e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        tls: TlsConfig,
    }

    #[test]
    fn flags_come_in_pairs() {
        assert!(!Cli::try_parse_from(["s"]).unwrap().tls.enabled());
        assert!(Cli::try_parse_from(["s", "--tls-cert", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["s", "--tls-key", "k.pem"]).is_err());
        assert!(Cli::try_parse_from(["s", "--client-ca", "ca.pem"]).is_err());
        let cli = Cli::try_parse_from(["s", "--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert!(cli.tls.enabled());
    }

    #[test]
    fn unreadable_or_invalid_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("fs-server-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN NOTHING-----\n").unwrap();
        let config = |cert: &Path, key: &Path| TlsConfig {
            tls_cert: Some(cert.to_path_buf()),
            tls_key: Some(key.to_path_buf()),
            client_ca: None,
        };
        let missing = dir.join("missing.pem");
        let timeout = Duration::from_secs(1);
        assert!(matches!(
            config(&missing, &garbage).load(timeout),
            Err(TlsError::Read {
                flag: "--tls-cert",
                ..
            })
        ));
        let err = config(&garbage, &garbage).load(timeout).unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::InvalidPem {
                    flag: "--tls-cert",
                    ..
                }
            ),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
