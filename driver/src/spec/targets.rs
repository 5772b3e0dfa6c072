//! Several targets: the replicas of one checkout a run spreads its connections over.
//!
//! A target given by name is resolved once, at the start of the run: when the name has several
//! addresses (a DNS round-robin, a scaled Compose service) every address becomes a replica.
//! Addresses of one family are taken: IPv4 when the name has any, else IPv6, so a host with an
//! A and an AAAA record (`localhost`: 127.0.0.1 and ::1) is one replica, not two. A name with
//! one such address stays as given, and so does an `https://` target (its certificate names
//! the host, not the addresses).

use std::net::{IpAddr, SocketAddr};

use crate::error::DriverError;
use crate::spec::{MAX_TARGETS, SpecError};

/// Every target of `urls` (normalized `scheme://host:port`) with names of several addresses
/// expanded into one target per address, duplicates dropped, order kept.
pub async fn resolve(urls: &[String]) -> Result<Vec<String>, DriverError> {
    resolve_with(urls, async |host: &str, port: u16| {
        tokio::net::lookup_host((host, port))
            .await
            .map(Iterator::collect)
    })
    .await
}

/// [`resolve`] with `lookup` as the resolver.
async fn resolve_with(
    urls: &[String],
    lookup: impl AsyncFn(&str, u16) -> std::io::Result<Vec<SocketAddr>>,
) -> Result<Vec<String>, DriverError> {
    let mut targets: Vec<String> = Vec::new();
    for url in urls {
        for target in expand(url, &lookup).await? {
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        if targets.len() > MAX_TARGETS {
            return Err(SpecError::Targets(targets.len()).into());
        }
    }
    if targets.len() > 1 {
        tracing::info!(replicas = targets.len(), targets = ?targets, "several targets");
    }
    Ok(targets)
}

/// `url` itself, or one `http://address:port` per address of its name.
async fn expand(
    url: &str,
    lookup: &impl AsyncFn(&str, u16) -> std::io::Result<Vec<SocketAddr>>,
) -> Result<Vec<String>, DriverError> {
    let invalid = |reason: String| DriverError::InvalidTarget {
        target: url.to_string(),
        reason,
    };
    let uri: tonic::transport::Uri = url
        .parse()
        .map_err(|e| invalid(format!("not a valid URL ({e})")))?;
    let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
        return Err(invalid("a host and a port are required".into()));
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if uri.scheme_str() != Some("http") || bare.parse::<IpAddr>().is_ok() {
        return Ok(vec![url.to_string()]);
    }
    let found = lookup(bare, port)
        .await
        .map_err(|e| invalid(format!("cannot resolve {bare} ({e})")))?;
    let addresses = one_family(found);
    if addresses.len() <= 1 {
        return Ok(vec![url.to_string()]);
    }
    Ok(addresses.iter().map(|a| format!("http://{a}")).collect())
}

/// The IPv4 addresses of `found` if there are any, else its IPv6 ones; no duplicates.
fn one_family(found: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let v4 = found.iter().any(SocketAddr::is_ipv4);
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for address in found {
        if address.is_ipv4() == v4 && !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn addresses_stay_as_given_and_duplicates_go() {
        let given = urls(&["http://127.0.0.1:1", "http://[::1]:2", "http://127.0.0.1:1"]);
        assert_eq!(
            resolve(&given).await.unwrap(),
            urls(&["http://127.0.0.1:1", "http://[::1]:2"])
        );
    }

    #[tokio::test]
    async fn localhost_is_one_replica_not_one_per_address() {
        let given = urls(&["http://localhost:7"]);
        assert_eq!(resolve(&given).await.unwrap(), given);
    }

    #[tokio::test]
    async fn too_many_targets_are_refused() {
        let given: Vec<String> = (0..=MAX_TARGETS)
            .map(|i| format!("http://127.0.0.1:{}", i + 1))
            .collect();
        assert!(matches!(
            resolve(&given).await,
            Err(DriverError::Spec(SpecError::Targets(_)))
        ));
    }

    #[tokio::test]
    async fn a_name_of_several_addresses_becomes_one_replica_each() {
        let lookup = async |host: &str, port: u16| -> std::io::Result<Vec<SocketAddr>> {
            match host {
                "shop" => Ok(["10.0.0.1", "10.0.0.2", "fd00::1", "10.0.0.1"]
                    .iter()
                    .map(|ip| SocketAddr::new(ip.parse().unwrap(), port))
                    .collect()),
                "one" => Ok(vec![SocketAddr::new("10.0.0.9".parse().unwrap(), port)]),
                _ => Err(std::io::Error::other("no such host")),
            }
        };
        let given = urls(&["http://shop:50051", "http://one:7", "https://shop:9"]);
        assert_eq!(
            resolve_with(&given, lookup).await.unwrap(),
            urls(&[
                "http://10.0.0.1:50051",
                "http://10.0.0.2:50051",
                "http://one:7",
                "https://shop:9"
            ])
        );
        let unknown = urls(&["http://nowhere:1"]);
        assert!(matches!(
            resolve_with(&unknown, lookup).await,
            Err(DriverError::InvalidTarget { .. })
        ));
    }

    #[test]
    fn one_family_prefers_ipv4_and_drops_duplicates() {
        let a: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5".parse().unwrap();
        let six: SocketAddr = "[fd00::1]:5".parse().unwrap();
        assert_eq!(one_family(vec![six, a, b, a]), vec![a, b]);
        assert_eq!(one_family(vec![six, six]), vec![six]);
    }
}
