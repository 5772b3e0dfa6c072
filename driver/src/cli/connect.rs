//! Flags of how the driver connects to the checkout: TLS for `https://` targets and metadata
//! (`-H`) on every call. Shared by a run, `compare` and `probe`.

use std::path::PathBuf;

use clap::Args;

use crate::error::DriverError;
use crate::spec::connection::{Pem, parse_authority, parse_entry};
use crate::spec::{ClientTls, Connection, Metadata};

/// TLS and metadata flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// PEM file of the CA certificate(s) that signed the server's certificate (https://
    /// targets) [default: the system's roots].
    #[arg(long, value_name = "FILE", env = "FLASHSALE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,

    /// Do not verify the server's certificate (https:// targets): the traffic is encrypted,
    /// but to whoever answers. For testing only; the driver warns about it.
    #[arg(long, conflicts_with = "ca_cert")]
    pub insecure: bool,

    /// PEM file of the client certificate chain for mutual TLS (with --key).
    #[arg(
        long,
        value_name = "FILE",
        requires = "key",
        env = "FLASHSALE_CLIENT_CERT"
    )]
    pub cert: Option<PathBuf>,

    /// PEM file of the client's private key for mutual TLS (with --cert).
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert",
        env = "FLASHSALE_CLIENT_KEY"
    )]
    pub key: Option<PathBuf>,

    /// Server name to ask for (SNI), check the certificate against and send as :authority
    /// [default: the target's host].
    #[arg(long, value_name = "NAME", value_parser = authority)]
    pub authority: Option<String>,

    /// Metadata `key: value` sent on every call, purchases and control calls alike
    /// (repeatable), as grpcurl and ghz do. An `authorization` given here goes to the
    /// checkout; on control calls --admin-token's replaces it.
    #[arg(short = 'H', long = "metadata", value_name = "'KEY: VALUE'", value_parser = metadata_entry)]
    pub metadata: Vec<String>,
}

impl ConnectArgs {
    /// True when any TLS flag is given.
    fn any_tls(&self) -> bool {
        self.ca_cert.is_some()
            || self.insecure
            || self.cert.is_some()
            || self.key.is_some()
            || self.authority.is_some()
    }

    /// True when the flags ask for anything beyond a plaintext connection without metadata.
    pub fn any(&self) -> bool {
        self.any_tls() || !self.metadata.is_empty()
    }

    /// The connection these flags describe for `url` (normalized; `None`: the embedded
    /// server). Reads and checks the PEM files now, before anything is sent.
    pub fn to_connection(&self, targets: &[String]) -> Result<Connection, DriverError> {
        let https = targets.first().is_some_and(|u| u.starts_with("https://"));
        let tls = if self.any_tls() || https {
            let identity = match (&self.cert, &self.key) {
                (Some(cert), Some(key)) => Some((
                    Pem::certificates("--cert", cert)?,
                    Pem::private_key("--key", key)?,
                )),
                _ => None,
            };
            Some(ClientTls {
                ca_cert: self
                    .ca_cert
                    .as_deref()
                    .map(|p| Pem::certificates("--ca-cert", p))
                    .transpose()?,
                identity,
                insecure: self.insecure,
                authority: self.authority.clone(),
            })
        } else {
            None
        };
        let connection = Connection {
            custom: None,
            tls,
            metadata: Metadata::parse(&self.metadata)?,
        };
        for url in targets {
            connection.check_target(url)?;
        }
        match targets.first() {
            Some(_) => {}
            None if self.any_tls() => {
                return Err(crate::spec::SpecError::TlsWithoutTarget.into());
            }
            None => {}
        }
        if connection.insecure() {
            tracing::warn!(
                "--insecure: the server's certificate is NOT verified; anyone on the path can \
                 answer for the checkout"
            );
        }
        Ok(connection)
    }
}

fn authority(raw: &str) -> Result<String, String> {
    parse_authority(raw).map_err(|e| e.to_string())
}

fn metadata_entry(raw: &str) -> Result<String, String> {
    parse_entry(raw)
        .map(|_| raw.to_string())
        .map_err(|e| e.to_string())
}
