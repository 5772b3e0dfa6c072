//! Connections to a checkout of the team's own ([`crate::spec::custom`]): purchases rendered
//! from its templates and read by its rules, and the stock and reset calls around a run. The
//! transports ([`grpc`]: any unary method through dynamic messages; [`http`]: HTTP/JSON) only
//! send a call and hand back its status and JSON body.

pub mod grpc;
pub mod http;
pub mod orders;

use std::sync::Arc;
use std::time::Duration;

use crate::checkout::book::BookState;
use crate::error::DriverError;
use crate::outcome::Outcome;
use crate::spec::Connection;
use crate::spec::custom::{Call, CustomApi, ReplyStatus, Transport, Values};
use grpc::GrpcConnection;
use http::HttpConnection;

/// What a call came to: its status and its JSON body (`None`: none, or not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: ReplyStatus,
    pub body: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
enum Transported {
    Grpc(GrpcConnection),
    Http(HttpConnection),
}

/// One connection to a custom checkout; cheap to clone for each virtual user on it.
#[derive(Debug, Clone)]
pub struct CustomConnection {
    api: Arc<CustomApi>,
    transport: Transported,
}

impl CustomConnection {
    /// Opens one connection to `url` as `connection` says.
    pub async fn connect(
        url: &str,
        connection: &Connection,
        api: &Arc<CustomApi>,
    ) -> Result<Self, DriverError> {
        let transport = match api.transport {
            Transport::Grpc(_) => {
                Transported::Grpc(GrpcConnection::connect(url, connection, api).await?)
            }
            Transport::Http(_) => {
                Transported::Http(HttpConnection::connect(url, connection, api).await?)
            }
        };
        Ok(Self {
            api: api.clone(),
            transport,
        })
    }

    pub fn api(&self) -> &CustomApi {
        &self.api
    }

    /// Sends `call` with `values`; `None` when `timeout` passed first.
    pub async fn call(
        &mut self,
        call: &Call,
        values: &Values<'_>,
        timeout: Duration,
    ) -> Option<Reply> {
        let sent = async {
            match &mut self.transport {
                Transported::Grpc(c) => c.call(call, values, timeout).await,
                Transported::Http(c) => c.call(call, values).await,
            }
        };
        tokio::time::timeout(timeout, sent).await.ok()
    }

    /// Lists the checkout's orders with the spec's listing call (once, after the run settled)
    /// and reads them into a book, with the run's user `prefix`; at most
    /// [`orders::listing_limit`]`(acknowledged)` orders and [`orders::MAX_ORDERS_REPLY_BYTES`]
    /// of reply. A spec without a listing (or without request ids in it) gives
    /// [`BookState::Unavailable`]; a listing that fails, [`BookState::Failed`], with the reason.
    pub async fn orders(
        &mut self,
        prefix: &str,
        acknowledged: u64,
        timeout: Duration,
    ) -> BookState {
        let api = self.api.clone();
        let Some(spec) = &api.orders else {
            return BookState::Unavailable(
                "the checkout spec names no call that lists orders ([orders], --orders-url or --orders-call)".into(),
            );
        };
        if spec.request_id.is_none() {
            return BookState::Unavailable(
                "the order listing has no request_id field ([orders] request_id, --orders-request-id): its orders cannot be matched to this run's attempts".into(),
            );
        }
        let cap = orders::MAX_ORDERS_REPLY_BYTES;
        let sent = async {
            match &mut self.transport {
                Transported::Grpc(c) => {
                    c.call_capped(&spec.call, &Values::SAMPLE, cap, timeout)
                        .await
                }
                Transported::Http(c) => c.call_capped(&spec.call, &Values::SAMPLE, cap).await,
            }
        };
        let Ok(reply) = tokio::time::timeout(timeout, sent).await else {
            return BookState::Failed(format!(
                "the order listing gave no answer within {timeout:?}"
            ));
        };
        if reply.status == ReplyStatus::Grpc(tonic::Code::ResourceExhausted) {
            return BookState::Failed(format!(
                "the order listing's reply is larger than {cap} bytes"
            ));
        }
        if !reply.status.is_success() {
            return BookState::Failed(format!(
                "the order listing answered {}",
                describe(reply.status)
            ));
        }
        match &reply.body {
            Some(body) => {
                orders::read_listing(spec, body, prefix, orders::listing_limit(acknowledged))
            }
            None => BookState::Failed("the order listing's reply is not JSON".into()),
        }
    }

    /// One purchase and what it came to, by the checkout's rules.
    pub async fn purchase(&mut self, values: &Values<'_>, timeout: Duration) -> Outcome {
        let api = self.api.clone();
        match self.call(&api.purchase, values, timeout).await {
            None => Outcome::Timeout,
            Some(reply) => api.rules.classify(
                reply.status,
                reply.body.as_ref(),
                values.quantity,
                values.request_id,
            ),
        }
    }

    /// The stock the checkout reports now.
    pub async fn stock(&mut self, timeout: Duration) -> Result<i64, String> {
        let api = self.api.clone();
        let reply = self
            .call(&api.stock_call, &Values::SAMPLE, timeout)
            .await
            .ok_or_else(|| format!("no answer within {timeout:?}"))?;
        if !reply.status.is_success() {
            return Err(format!("it answered {}", describe(reply.status)));
        }
        reply
            .body
            .as_ref()
            .and_then(|body| api.stock.get_i64(body))
            .ok_or_else(|| {
                format!(
                    "its reply has no integer at `{}`: {}",
                    api.stock,
                    reply
                        .body
                        .map_or("no JSON body".into(), |b| clip(&b.to_string()))
                )
            })
    }

    /// Restocks to `stock` with the reset call (the caller checks it has one).
    pub async fn reset(&mut self, stock: i64, timeout: Duration) -> Result<(), String> {
        let api = self.api.clone();
        let Some(call) = &api.reset else {
            return Err("the checkout spec has no reset call".into());
        };
        let values = Values {
            stock,
            ..Values::SAMPLE
        };
        let reply = self
            .call(call, &values, timeout)
            .await
            .ok_or_else(|| format!("no answer within {timeout:?}"))?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(format!("it answered {}", describe(reply.status)))
        }
    }
}

fn describe(status: ReplyStatus) -> String {
    match status {
        ReplyStatus::Grpc(code) => crate::outcome::code_name(code as i32).to_string(),
        ReplyStatus::Http(status) => format!("HTTP {status}"),
    }
}

/// At most 200 characters of `text`.
fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}
