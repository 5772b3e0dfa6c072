//! Admin authorisation: the gRPC methods that change or reveal the whole sale (`Reset`,
//! `ListOrders`) require `authorization: Bearer <token>` when the server has an admin token.
//! Checked by [`crate::guard`] on the request path, before the service sees the call, so the
//! service code knows nothing of it. A missing or malformed header answers `UNAUTHENTICATED`,
//! a wrong token `PERMISSION_DENIED`; either way nothing changes.

use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::hardening::AdminToken;

/// gRPC paths that need the admin token.
pub const ADMIN_PATHS: &[&str] = &[
    "/flashsale.v1.Checkout/Reset",
    "/flashsale.v1.Checkout/ListOrders",
];

/// Why an admin call was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminError {
    #[error("{0} is an admin call: send `authorization: Bearer <admin token>`")]
    Missing(String),
    #[error("the authorization header must be `Bearer <admin token>`")]
    Malformed,
    #[error("the admin token is not valid")]
    Wrong,
}

impl From<AdminError> for Status {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Missing(_) | AdminError::Malformed => {
                Status::unauthenticated(err.to_string())
            }
            AdminError::Wrong => Status::permission_denied(err.to_string()),
        }
    }
}

/// Whether `path` is an admin call.
pub fn is_admin(path: &str) -> bool {
    ADMIN_PATHS.contains(&path)
}

/// Checks the call to `path` against `token` (`None`: no token configured, everything passes).
pub fn authorize(
    token: Option<&AdminToken>,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<(), AdminError> {
    let Some(token) = token else {
        return Ok(());
    };
    if !is_admin(path) {
        return Ok(());
    }
    let header = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| AdminError::Missing(path.to_string()))?;
    let presented = header
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .ok_or(AdminError::Malformed)?;
    if token.matches(presented) {
        Ok(())
    } else {
        Err(AdminError::Wrong)
    }
}

/// Adds `authorization: Bearer <token>` to a request's metadata (for clients).
pub fn attach(metadata: &mut MetadataMap, token: &AdminToken) {
    if let Ok(value) = format!("Bearer {}", token.expose()).parse() {
        metadata.insert("authorization", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(a) = auth {
            h.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn checks() {
        let token = AdminToken::new("s3cret").unwrap();
        let reset = ADMIN_PATHS[0];
        assert!(authorize(None, reset, &headers(None)).is_ok());
        assert!(
            authorize(
                Some(&token),
                "/flashsale.v1.Checkout/GetStock",
                &headers(None)
            )
            .is_ok()
        );
        assert!(matches!(
            authorize(Some(&token), reset, &headers(None)),
            Err(AdminError::Missing(_))
        ));
        assert_eq!(
            authorize(Some(&token), reset, &headers(Some("s3cret"))),
            Err(AdminError::Malformed)
        );
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Bearer S3cret", "Bearer "] {
            assert_eq!(
                authorize(Some(&token), reset, &headers(Some(wrong))),
                Err(AdminError::Wrong)
            );
        }
        assert!(authorize(Some(&token), reset, &headers(Some("Bearer s3cret"))).is_ok());
    }
}
