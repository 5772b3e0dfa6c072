//! `driver probe`: one `grpc.health.v1.Health/Check` call, for container healthchecks in
//! images that hold nothing but our binaries.

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::cli::ProbeArgs;
use crate::client::{connect, normalize_target};
use crate::error::DriverError;

/// Asks the target's health service about `args.service`; `Ok(true)` when SERVING.
pub async fn probe(args: &ProbeArgs) -> Result<bool, DriverError> {
    let url = normalize_target(&args.target)?;
    let check = async {
        let mut client = HealthClient::new(connect(&url).await?);
        let reply = client
            .check(HealthCheckRequest {
                service: args.service.clone(),
            })
            .await
            .map_err(|status| DriverError::Rpc {
                call: "Health/Check",
                target: url.clone(),
                status: Box::new(status),
            })?;
        Ok(reply.into_inner().status == ServingStatus::Serving as i32)
    };
    tokio::time::timeout(args.timeout, check)
        .await
        .map_err(|_| DriverError::Invalid(format!("health check of {url} timed out")))?
}
