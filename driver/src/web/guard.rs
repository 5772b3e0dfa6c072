//! Who may do what on the dashboard.
//!
//! - Viewing (GET) is open; nothing changes state on GET (the state-changing routes only
//!   accept POST: a GET there is 405).
//! - Every POST carries the per-process CSRF token embedded in the page, in the
//!   `x-csrf-token` header (403 without it): another site cannot read the page, and a
//!   cross-site form cannot set a header (a script that tries needs a CORS preflight, which
//!   this server never grants).
//! - When the listener is not loopback, a POST also needs the cluster token as
//!   `authorization: Bearer <token>` (401 without it).
//! - On a loopback listener, the `Host` must name loopback (421 otherwise), so a DNS
//!   rebinding page cannot reach the dashboard under its own name.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::distr::Alphanumeric;
use std::sync::Arc;
use tonic::metadata::MetadataMap;

use super::App;
use crate::cluster::auth::ClusterToken;

/// Header of the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The access rules of one dashboard.
#[derive(Debug, Clone)]
pub struct Access {
    /// Random per process, embedded in the page.
    csrf: String,
    /// Required on POST when `Some` (a listener beyond loopback).
    token: Option<ClusterToken>,
    /// The listener is loopback: the Host header must say so too.
    loopback: bool,
}

impl Access {
    /// Rules for a listener that is `loopback` or not; `token` is required on POST beyond
    /// loopback.
    pub fn new(loopback: bool, token: Option<ClusterToken>) -> Self {
        let csrf: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        Self {
            csrf,
            token: if loopback { None } else { token },
            loopback,
        }
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether starting and stopping runs needs the cluster token.
    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    /// Why a request may not go on, if it may not.
    fn refuse(&self, method: &Method, headers: &HeaderMap) -> Option<(StatusCode, &'static str)> {
        if self.loopback && !loopback_host(headers) {
            return Some((
                StatusCode::MISDIRECTED_REQUEST,
                "this dashboard answers only to localhost, 127.0.0.1 or [::1]",
            ));
        }
        if method == Method::GET || method == Method::HEAD {
            return None;
        }
        let csrf_ok = headers
            .get(CSRF_HEADER)
            .is_some_and(|v| same(v.as_bytes(), self.csrf.as_bytes()));
        if !csrf_ok {
            return Some((
                StatusCode::FORBIDDEN,
                "missing or wrong x-csrf-token header (reload the page)",
            ));
        }
        if let Some(token) = &self.token
            && token
                .check(&MetadataMap::from_headers(headers.clone()))
                .is_err()
        {
            return Some((
                StatusCode::UNAUTHORIZED,
                "this dashboard is served beyond loopback: give the cluster token",
            ));
        }
        None
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    std::hint::black_box(diff) == 0
}

/// Whether the Host header names a loopback host (any port).
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The middleware: refuses what [`Access`] forbids, and sets the headers every answer gets.
pub async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some((status, why)) = app.access.refuse(request.method(), request.headers()) {
        return (status, why).into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
        ));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn loopback_rules() {
        let access = Access::new(true, ClusterToken::new("secret").ok());
        assert!(!access.token_required(), "loopback needs no token");
        let csrf = access.csrf().to_string();
        for host in ["127.0.0.1:8089", "localhost:1", "[::1]:80", "LOCALHOST"] {
            let h = headers(&[("host", host)]);
            assert_eq!(access.refuse(&Method::GET, &h), None, "{host}");
        }
        let evil = headers(&[("host", "evil.example:8089"), (CSRF_HEADER, &csrf)]);
        assert_eq!(
            access.refuse(&Method::GET, &evil).map(|r| r.0),
            Some(StatusCode::MISDIRECTED_REQUEST)
        );
        let post = headers(&[("host", "127.0.0.1:1")]);
        assert_eq!(
            access.refuse(&Method::POST, &post).map(|r| r.0),
            Some(StatusCode::FORBIDDEN)
        );
        let wrong = headers(&[("host", "127.0.0.1:1"), (CSRF_HEADER, "nope")]);
        assert_eq!(
            access.refuse(&Method::POST, &wrong).map(|r| r.0),
            Some(StatusCode::FORBIDDEN)
        );
        let good = headers(&[("host", "127.0.0.1:1"), (CSRF_HEADER, &csrf)]);
        assert_eq!(access.refuse(&Method::POST, &good), None);
    }

    #[test]
    fn beyond_loopback_needs_the_token() {
        let access = Access::new(false, ClusterToken::new("secret").ok());
        assert!(access.token_required());
        let csrf = access.csrf().to_string();
        let any_host = headers(&[("host", "dash.example")]);
        assert_eq!(access.refuse(&Method::GET, &any_host), None);
        let no_token = headers(&[(CSRF_HEADER, &csrf)]);
        assert_eq!(
            access.refuse(&Method::POST, &no_token).map(|r| r.0),
            Some(StatusCode::UNAUTHORIZED)
        );
        let bad = headers(&[(CSRF_HEADER, &csrf), ("authorization", "Bearer secreT")]);
        assert_eq!(
            access.refuse(&Method::POST, &bad).map(|r| r.0),
            Some(StatusCode::UNAUTHORIZED)
        );
        let ok = headers(&[(CSRF_HEADER, &csrf), ("authorization", "Bearer secret")]);
        assert_eq!(access.refuse(&Method::POST, &ok), None);
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
