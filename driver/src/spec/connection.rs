//! How connections to the checkout are made: the client's TLS settings (CA, client identity,
//! verification, authority) and the metadata sent on every call. Files are read and checked
//! when the spec is built, before anything is sent anywhere.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::codegen::http::{HeaderMap, HeaderName, HeaderValue};

/// Longest metadata entry accepted on the command line (key, separator and value), in bytes.
pub const MAX_METADATA_ENTRY_BYTES: usize = 8 * 1024;
/// Most metadata entries.
pub const MAX_METADATA_ENTRIES: usize = 64;

/// Headers the transport or the gRPC protocol sets itself; a `-H` may not replace them.
const RESERVED_KEYS: &[&str] = &[
    "content-type",
    "te",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "user-agent",
];

/// Why connection settings are refused.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// A PEM file that cannot be read or does not hold what it should (the server's check).
    #[error(transparent)]
    Pem(#[from] flashsale_server::tls::TlsError),
    #[error("invalid metadata `{entry}`: {reason}")]
    InvalidMetadata { entry: String, reason: String },
    #[error("at most {MAX_METADATA_ENTRIES} metadata entries are allowed")]
    TooManyMetadata,
    #[error("invalid --authority `{authority}`: {reason}")]
    InvalidAuthority { authority: String, reason: String },
    #[error("{0}")]
    Unusable(String),
}

/// A PEM file as read when the spec was built. Its contents stay out of `Debug` (a key).
#[derive(Clone)]
pub struct Pem {
    pub path: PathBuf,
    pub bytes: Arc<[u8]>,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pem").field(&self.path).finish()
    }
}

impl Pem {
    fn new(path: &Path, bytes: Vec<u8>) -> Self {
        Self {
            path: path.to_path_buf(),
            bytes: bytes.into(),
        }
    }

    /// Reads `path` and checks that it holds at least one certificate, all of them readable.
    pub fn certificates(what: &'static str, path: &Path) -> Result<Self, ConnectionError> {
        let bytes = flashsale_server::tls::read_certificates(what, path)?;
        Ok(Self::new(path, bytes))
    }

    /// Reads `path` and checks that it holds a private key.
    pub fn private_key(what: &'static str, path: &Path) -> Result<Self, ConnectionError> {
        let bytes = flashsale_server::tls::read_key(what, path)?;
        Ok(Self::new(path, bytes))
    }
}

/// The client's TLS settings for an `https://` target.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA certificates to trust instead of the system's roots.
    pub ca_cert: Option<Pem>,
    /// Client certificate chain and key for mutual TLS.
    pub identity: Option<(Pem, Pem)>,
    /// Do not verify the server's certificate at all.
    pub insecure: bool,
    /// Name sent as SNI, checked against the certificate and sent as `:authority`
    /// (default: the target's host).
    pub authority: Option<String>,
}

impl ClientTls {
    /// The host part of [`ClientTls::authority`] (no port, no brackets), the name TLS checks.
    pub fn server_name(&self) -> Option<&str> {
        let authority = self.authority.as_deref()?;
        Some(authority_host(authority))
    }
}

/// The host of an authority `host[:port]` or `[v6]:port`.
fn authority_host(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Checks an `--authority`: a URI authority without user info.
pub fn parse_authority(raw: &str) -> Result<String, ConnectionError> {
    let invalid = |reason: &str| ConnectionError::InvalidAuthority {
        authority: raw.to_string(),
        reason: reason.to_string(),
    };
    let parsed: tonic::codegen::http::uri::Authority =
        raw.parse().map_err(|e| invalid(&format!("{e}")))?;
    if raw.contains('@') {
        return Err(invalid("user info is not allowed"));
    }
    if parsed.host().is_empty() {
        return Err(invalid("it has no host"));
    }
    Ok(raw.to_string())
}

/// Metadata (HTTP/2 headers) sent on every call, in the order given. Values stay out of
/// `Debug` (an `authorization` token).
#[derive(Clone, Default)]
pub struct Metadata {
    /// Entries grouped by key, keys in first-seen order.
    groups: Arc<[(HeaderName, Vec<HeaderValue>)]>,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.groups.iter().map(|(k, _)| k.as_str()))
            .finish()
    }
}

impl Metadata {
    /// Metadata from `key: value` entries (as given to `-H`).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, ConnectionError> {
        if entries.len() > MAX_METADATA_ENTRIES {
            return Err(ConnectionError::TooManyMetadata);
        }
        let mut groups: Vec<(HeaderName, Vec<HeaderValue>)> = Vec::new();
        for entry in entries {
            let (key, value) = parse_entry(entry.as_ref())?;
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(value),
                None => groups.push((key, vec![value])),
            }
        }
        Ok(Self {
            groups: groups.into(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The keys, in first-seen order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|(k, _)| k.as_str())
    }

    /// Adds the entries to `headers`, except the keys a call already set itself (the admin
    /// token's `authorization` on control calls, the deadline): those it keeps.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (key, values) in self.groups.iter() {
            if headers.contains_key(key) {
                continue;
            }
            for value in values {
                headers.append(key.clone(), value.clone());
            }
        }
    }
}

/// One `key: value` entry, checked as grpcurl and ghz would take it.
pub fn parse_entry(raw: &str) -> Result<(HeaderName, HeaderValue), ConnectionError> {
    let invalid = |reason: &str| ConnectionError::InvalidMetadata {
        // The value may be a secret: only the key is repeated.
        entry: raw.split(':').next().unwrap_or_default().trim().to_string(),
        reason: reason.to_string(),
    };
    if raw.len() > MAX_METADATA_ENTRY_BYTES {
        return Err(invalid(&format!(
            "longer than {MAX_METADATA_ENTRY_BYTES} bytes"
        )));
    }
    let Some((key, value)) = raw.split_once(':') else {
        return Err(invalid("expected `key: value`"));
    };
    let key = key.trim().to_ascii_lowercase();
    if key.is_empty() {
        return Err(invalid("the key is empty"));
    }
    if key.starts_with("grpc-") {
        return Err(invalid("grpc-* keys are reserved for the gRPC protocol"));
    }
    if RESERVED_KEYS.contains(&key.as_str()) {
        return Err(invalid("the transport sets this header itself"));
    }
    if key.ends_with("-bin") {
        return Err(invalid("binary (-bin) metadata is not supported"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    {
        return Err(invalid(
            "a key may hold only letters, digits, '-', '_' and '.'",
        ));
    }
    let name = HeaderName::from_bytes(key.as_bytes()).map_err(|e| invalid(&e.to_string()))?;
    let value = value.trim();
    if !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(invalid("a value may hold only printable ASCII"));
    }
    let value = HeaderValue::from_str(value).map_err(|e| invalid(&e.to_string()))?;
    Ok((name, value))
}

/// How the driver connects to the checkout: TLS (for `https://` targets) and metadata.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// `Some` for an `https://` target.
    pub tls: Option<ClientTls>,
    /// Sent on every call to the checkout: purchases and control calls.
    pub metadata: Metadata,
    /// A checkout of the team's own, instead of `flashsale.v1.Checkout`.
    pub custom: Option<Arc<crate::spec::custom::CustomApi>>,
}

impl Connection {
    /// Checks that these settings fit `url` (normalized): TLS settings only with `https://`.
    pub fn check_target(&self, url: &str) -> Result<(), ConnectionError> {
        let https = url.starts_with("https://");
        match (&self.tls, https) {
            (Some(_), false) => Err(ConnectionError::Unusable(format!(
                "TLS settings (--ca-cert, --cert, --key, --insecure, --authority) need an \
                 https:// target, not {url}"
            ))),
            _ => Ok(()),
        }
    }

    /// True when the server's certificate will not be verified.
    pub fn insecure(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.insecure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_entries() {
        let m = Metadata::parse(&["Authorization: Bearer abc", "x-tenant:one", "x-tenant: two"])
            .unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["authorization", "x-tenant"]);
        assert!(!format!("{m:?}").contains("abc"));
        let mut headers = HeaderMap::new();
        m.apply(&mut headers);
        assert_eq!(headers["authorization"], "Bearer abc");
        let tenants: Vec<_> = headers.get_all("x-tenant").iter().collect();
        assert_eq!(tenants, ["one", "two"]);
        // A key the call set itself is kept.
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer admin"));
        m.apply(&mut headers);
        assert_eq!(headers.get_all("authorization").iter().count(), 1);
        assert_eq!(headers["authorization"], "Bearer admin");
        for bad in [
            "novalue",
            ": v",
            "bad key: v",
            "k\u{e9}y: v",
            "grpc-timeout: 1S",
            "content-type: text/plain",
            "te: trailers",
            "x-data-bin: AAAA",
            "key: caf\u{e9}",
            "key: a\tb",
        ] {
            let err = parse_entry(bad).unwrap_err();
            assert!(
                matches!(err, ConnectionError::InvalidMetadata { .. }),
                "{bad}"
            );
        }
        let secret = parse_entry("x-token secret-value").unwrap_err().to_string();
        assert!(secret.contains("expected `key: value`"), "{secret}");
        let too_many: Vec<String> = (0..=MAX_METADATA_ENTRIES)
            .map(|i| format!("k{i}: v"))
            .collect();
        assert!(Metadata::parse(&too_many).is_err());
        // An empty value is allowed (grpcurl sends it too).
        assert!(parse_entry("x-empty:").is_ok());
    }

    #[test]
    fn authorities() {
        for good in ["example.com", "example.com:443", "[::1]:8443", "127.0.0.1"] {
            assert!(parse_authority(good).is_ok(), "{good}");
        }
        for bad in ["", "user@host", "a b", "host:port/x"] {
            assert!(parse_authority(bad).is_err(), "{bad}");
        }
        let tls = |a: &str| ClientTls {
            authority: Some(a.into()),
            ..ClientTls::default()
        };
        assert_eq!(tls("example.com:443").server_name(), Some("example.com"));
        assert_eq!(tls("[::1]:8443").server_name(), Some("::1"));
        assert_eq!(tls("localhost").server_name(), Some("localhost"));
    }

    #[test]
    fn pem_files_are_checked() {
        let dir = std::env::temp_dir().join(format!("fs-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a pem file").unwrap();
        let missing = dir.join("missing.pem");
        assert!(matches!(
            Pem::certificates("--ca-cert", &missing),
            Err(ConnectionError::Pem(
                flashsale_server::tls::TlsError::Read { .. }
            ))
        ));
        assert!(matches!(
            Pem::certificates("--ca-cert", &garbage),
            Err(ConnectionError::Pem(
                flashsale_server::tls::TlsError::InvalidPem { .. }
            ))
        ));
        assert!(matches!(
            Pem::private_key("--key", &garbage),
            Err(ConnectionError::Pem(
                flashsale_server::tls::TlsError::InvalidPem { .. }
            ))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_needs_https() {
        let conn = Connection {
            tls: Some(ClientTls::default()),
            ..Connection::default()
        };
        assert!(conn.check_target("http://x:1").is_err());
        assert!(conn.check_target("https://x:1").is_ok());
        assert!(Connection::default().check_target("https://x:1").is_ok());
    }
}
