//! `driver probe`: one `grpc.health.v1.Health/Check` call, for container healthchecks in
//! images that hold nothing but our binaries.

use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::checkout::{connect_checkout, normalize_direct_target};
use crate::error::DriverError;
use crate::spec::Connection;

/// Asks the health service of `target` (`http://` or `https://`, connected as `connection`
/// says) about `service` (empty: the whole server), giving up after `timeout`; `Ok(true)` when
/// SERVING.
pub async fn probe(
    target: &str,
    connection: &Connection,
    service: &str,
    timeout: Duration,
) -> Result<bool, DriverError> {
    let url = normalize_direct_target(target)?;
    connection.check_target(&url)?;
    let check = async {
        let mut client = HealthClient::new(connect_checkout(&url, connection).await?);
        let reply = client
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .map_err(|status| DriverError::Rpc {
                call: "Health/Check",
                target: url.clone(),
                status: Box::new(status),
            })?;
        Ok(reply.into_inner().status == ServingStatus::Serving as i32)
    };
    tokio::time::timeout(timeout, check)
        .await
        .map_err(|_| DriverError::HealthCheckTimeout {
            target: url.clone(),
            after: timeout,
        })?
}
