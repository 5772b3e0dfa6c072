//! SCAFFOLDING until the grpc transport lands: the signatures the rest of the driver uses.

use std::sync::Arc;

use super::Reply;
use crate::error::DriverError;
use crate::spec::Connection;
use crate::spec::custom::{Call, CustomApi, ReplyStatus, Values};

/// One connection to a custom checkout over grpc.
#[derive(Debug, Clone)]
pub struct GrpcConnection {}

impl GrpcConnection {
    pub async fn connect(
        url: &str,
        _connection: &Connection,
        _api: &Arc<CustomApi>,
    ) -> Result<Self, DriverError> {
        Err(DriverError::Connect {
            target: url.to_string(),
            reason: "the grpc transport is not built yet".into(),
        })
    }

    pub async fn call(&mut self, _call: &Call, _values: &Values<'_>) -> Reply {
        Reply {
            status: ReplyStatus::Grpc(tonic::Code::Unimplemented),
            body: None,
        }
    }
}
