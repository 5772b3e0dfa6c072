//! The cluster token: a secret shared by the coordinator, its workers and the clients that
//! submit runs. Sent as `authorization: Bearer <token>` metadata on `Join`, `SubmitRun` and
//! `CancelRun`; the coordinator answers `UNAUTHENTICATED` to a call without it or with a wrong
//! one (gRPC health stays open). Never printed by `Debug`.

use std::fmt;

use flashsale_server::hardening::AdminToken;
use rand::Rng;
use rand::distr::Alphanumeric;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Environment variable of `--token` on every cluster command.
pub const TOKEN_ENV: &str = "FLASHSALE_CLUSTER_TOKEN";

/// Length of a generated token (alphanumeric: ~190 bits).
const GENERATED_LEN: usize = 32;

/// A valid cluster token: 1 to 1024 visible ASCII characters (what a header value may hold).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterToken(AdminToken);

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the cluster token must be 1 to 1024 visible ASCII characters")]
    Malformed,
}

impl ClusterToken {
    pub fn new(raw: &str) -> Result<Self, TokenError> {
        AdminToken::new(raw)
            .map(Self)
            .map_err(|_| TokenError::Malformed)
    }

    /// A fresh random token.
    pub fn generate() -> Self {
        let raw: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(GENERATED_LEN)
            .map(char::from)
            .collect();
        Self::new(&raw).expect("alphanumeric is a valid token")
    }

    /// The secret itself (to print it once, or pass it on).
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// Adds `authorization: Bearer <token>` to a request.
    pub fn attach<T>(&self, request: &mut tonic::Request<T>) {
        flashsale_server::admin::attach(request.metadata_mut(), &self.0);
    }

    /// Checks a call's metadata: `UNAUTHENTICATED` unless it carries this token.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(header) = metadata.get("authorization") else {
            return Err(Status::unauthenticated(
                "this coordinator needs its cluster token: pass --token or set FLASHSALE_CLUSTER_TOKEN",
            ));
        };
        let presented = header.as_bytes().strip_prefix(b"Bearer ").unwrap_or(b"");
        if constant_time_eq(presented, self.expose().as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("wrong cluster token"))
        }
    }
}

impl fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterToken(<redacted>)")
    }
}

/// Adds `token`, if any, to `request` (a client without a token sends none and is refused).
pub fn attach<T>(
    token: Option<&ClusterToken>,
    mut request: tonic::Request<T>,
) -> tonic::Request<T> {
    if let Some(token) = token {
        token.attach(&mut request);
    }
    request
}

/// Compares without returning early on the first difference (the time depends only on the
/// lengths).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(token: Option<&str>) -> tonic::Request<()> {
        attach(
            token.map(|t| ClusterToken::new(t).unwrap()).as_ref(),
            tonic::Request::new(()),
        )
    }

    #[test]
    fn checks_the_bearer_token() {
        let token = ClusterToken::new("s3cret").unwrap();
        assert!(token.check(call(Some("s3cret")).metadata()).is_ok());
        for wrong in [None, Some("s3cre"), Some("s3cret2"), Some("S3cret")] {
            let err = token.check(call(wrong).metadata()).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{wrong:?}");
        }
        let mut raw = tonic::Request::new(());
        raw.metadata_mut()
            .insert("authorization", "s3cret".parse().unwrap());
        assert!(token.check(raw.metadata()).is_err());
    }

    #[test]
    fn generated_tokens_are_valid_and_differ() {
        let (a, b) = (ClusterToken::generate(), ClusterToken::generate());
        assert_eq!(a.expose().len(), GENERATED_LEN);
        assert_ne!(a, b);
        assert!(ClusterToken::new(a.expose()).is_ok());
        assert!(ClusterToken::new(" ").is_err());
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
