//! `driver probe`: one `grpc.health.v1.Health/Check` call, for container healthchecks in
//! images that hold nothing but our binaries.

use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::checkout::{connect, normalize_target};
use crate::error::DriverError;

/// Asks the health service of `target` about `service` (empty: the whole server), giving up
/// after `timeout`; `Ok(true)` when SERVING.
pub async fn probe(target: &str, service: &str, timeout: Duration) -> Result<bool, DriverError> {
    let url = normalize_target(target)?;
    let check = async {
        let mut client = HealthClient::new(connect(&url).await?);
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
