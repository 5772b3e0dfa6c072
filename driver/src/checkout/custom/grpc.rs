//! A custom checkout over gRPC: any unary method of the team's own proto, called with dynamic
//! messages. The methods are resolved once per run ([`schema`]: from `--proto` files compiled
//! in-process, or from server reflection, [`reflection`]) and shared by every connection; a call
//! renders its JSON template into a buffer the connection reuses, decodes it into the input
//! message, sends it with [`codec::DynamicCodec`] over the connection's channel (TLS and
//! metadata applied there) and turns the reply into JSON for the outcome rules.

mod codec;
mod protos;
mod reflection;
mod schema;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use prost_reflect::DynamicMessage;

use tokio::sync::OnceCell;
use tonic::Code;
use tonic::client::Grpc;

pub use schema::GrpcSchemaError;
use schema::{Method, Schema};

use super::Reply;
use crate::checkout::builtin::lean_for;
use crate::checkout::h2::{CallError, LeanClient};
use crate::checkout::{CONNECT_TIMEOUT, CheckoutChannel, connect_checkout, connect_checkout_lazy};
use crate::error::DriverError;
use crate::spec::Connection;
use crate::spec::custom::{Call, CustomApi, ReplyStatus, Transport, Values};

/// Largest reply read; a larger one is `RESOURCE_EXHAUSTED` (tonic refuses to decode it).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// One HTTP/2 connection to a custom gRPC checkout; clone it for each virtual user on it.
#[derive(Debug, Clone)]
pub struct GrpcConnection {
    /// Boxed: the client is large, and this connection sits in an enum with the HTTP one.
    grpc: Box<Grpc<CheckoutChannel>>,
    methods: Arc<Methods>,
    /// Over plaintext, purchases go over the lean `h2` client as the built-in contract's do
    /// (issue #14), with each method's URI made once; the tonic client above stays for TLS
    /// targets and `FLASHSALE_DRIVER_CLIENT=tonic`.
    lean: Option<Box<(LeanClient, Arc<[http::Uri]>)>>,
    /// The request JSON, rendered here so that a call does not allocate a new string.
    buffer: String,
}

/// The calls of one checkout, resolved.
#[derive(Debug)]
struct Methods {
    calls: Vec<Method>,
}

impl Methods {
    /// The method `target` names and its place in `calls`.
    fn get(&self, target: &str) -> Option<(usize, &Method)> {
        self.calls
            .iter()
            .enumerate()
            .find(|(_, m)| m.target == target)
    }
}

impl GrpcConnection {
    /// One connection to `url` (normalized http:// or https://), TLS and metadata as
    /// `connection` says; the checkout's methods resolved (once per `api`, shared by every
    /// connection of the run).
    pub async fn connect(
        url: &str,
        connection: &Connection,
        api: &Arc<CustomApi>,
    ) -> Result<Self, DriverError> {
        // Over plaintext the lean client carries the calls, dialled first (a dead target is
        // a connection error); tonic's channel is then opened only if a call needs it
        // (reflection on the run's first connection, a listing over the lean client's cap).
        let lean = if lean_for(url) {
            Some(LeanClient::connect(url, &connection.metadata, CONNECT_TIMEOUT).await?)
        } else {
            None
        };
        let channel = match lean {
            Some(_) => connect_checkout_lazy(url, connection)?,
            None => connect_checkout(url, connection).await?,
        };
        let methods = resolved(api, &channel, url).await?;
        let grpc = Box::new(Grpc::new(channel).max_decoding_message_size(MAX_REPLY_BYTES));
        let lean = match lean {
            Some(client) => {
                let uris = methods
                    .calls
                    .iter()
                    .map(|m| client.uri(m.path.as_str()))
                    .collect::<Result<Arc<[_]>, _>>()?;
                Some(Box::new((client, uris)))
            }
            None => None,
        };
        Ok(Self {
            grpc,
            methods,
            lean,
            buffer: String::new(),
        })
    }

    /// Sends `call` with its data template rendered from `values`: the reply's status and its
    /// JSON (fields by proto name, defaults included, enums by name). Never panics; a transport
    /// failure is its gRPC status. A call this connection was not resolved for, or data that
    /// does not fit the input message, is refused without sending anything (`UNIMPLEMENTED`,
    /// `INVALID_ARGUMENT`).
    /// `timeout` is sent as the call's `grpc-timeout` over the lean client (the caller
    /// enforces it).
    pub async fn call(&mut self, call: &Call, values: &Values<'_>, timeout: Duration) -> Reply {
        self.call_capped(call, values, MAX_REPLY_BYTES, timeout)
            .await
    }

    /// [`Self::call`] reading a reply of up to `cap` bytes (the order listing's may be large);
    /// a cap other than [`MAX_REPLY_BYTES`] goes over tonic's client, cloned for this call.
    pub async fn call_capped(
        &mut self,
        call: &Call,
        values: &Values<'_>,
        cap: usize,
        timeout: Duration,
    ) -> Reply {
        let Some((index, method)) = self.methods.get(&call.target) else {
            tracing::warn!(call = %call.target, "a gRPC call the connection was not set up for");
            return status_only(Code::Unimplemented);
        };
        self.buffer.clear();
        match &call.body {
            Some(template) => template.render_into(values, &mut self.buffer),
            None => self.buffer.push_str("{}"),
        }
        let request = match method.request(&self.buffer) {
            Ok(request) => request,
            Err(reason) => {
                tracing::debug!(call = %call.target, %reason, "request data does not fit");
                return status_only(Code::InvalidArgument);
            }
        };
        if let Some(lean) = self.lean.as_mut().filter(|_| cap == MAX_REPLY_BYTES) {
            let (client, uris) = &mut **lean;
            let output = &method.output;
            let decode = |bytes: &[u8]| DynamicMessage::decode(output.clone(), bytes);
            return match client
                .unary_with(&uris[index], &request, timeout, decode)
                .await
            {
                Ok(reply) => Reply {
                    status: ReplyStatus::Grpc(Code::Ok),
                    body: schema::reply_json(&reply),
                },
                Err(CallError::Status(code)) => status_only(code),
            };
        }
        let mut capped;
        let grpc = if cap == MAX_REPLY_BYTES {
            &mut *self.grpc
        } else {
            capped = (*self.grpc).clone().max_decoding_message_size(cap);
            &mut capped
        };
        if grpc.ready().await.is_err() {
            // Nothing was sent: the connection is gone.
            return status_only(Code::Unavailable);
        }
        let codec = codec::DynamicCodec::new(method.output.clone());
        match grpc
            .unary(tonic::Request::new(request), method.path.clone(), codec)
            .await
        {
            Ok(reply) => Reply {
                status: ReplyStatus::Grpc(Code::Ok),
                body: schema::reply_json(reply.get_ref()),
            },
            Err(status) => status_only(reply_code(&status)),
        }
    }
}

/// The code a failed call is reported as: tonic's refusal to read a reply over
/// its cap (`OUT_OF_RANGE`, "decoded message length too large") is
/// `RESOURCE_EXHAUSTED`; anything else is the status the server or the transport gave.
fn reply_code(status: &tonic::Status) -> Code {
    if status.code() == Code::OutOfRange
        && status
            .message()
            .contains("decoded message length too large")
    {
        return Code::ResourceExhausted;
    }
    status.code()
}

fn status_only(code: Code) -> Reply {
    Reply {
        status: ReplyStatus::Grpc(code),
        body: None,
    }
}

/// The services the server at `url` lists through server reflection (v1, else v1alpha).
pub async fn offered_services(
    channel: &CheckoutChannel,
    url: &str,
) -> Result<Vec<String>, GrpcSchemaError> {
    reflection::fetch(channel, url, &[])
        .await
        .map(|(_, offered)| offered)
}

/// Resolutions per checkout description, so that the connections of a run resolve once.
type Cache = Mutex<Vec<(Weak<CustomApi>, Arc<OnceCell<Arc<Methods>>>)>>;
static RESOLVED: Cache = Mutex::new(Vec::new());

/// The methods of `api`, resolved by the first connection of the run that gets here (with
/// reflection: over `channel`, from `url`); a failed resolution is retried by the next.
async fn resolved(
    api: &Arc<CustomApi>,
    channel: &CheckoutChannel,
    url: &str,
) -> Result<Arc<Methods>, DriverError> {
    let cell = {
        let mut cache = RESOLVED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.retain(|(api, _)| api.strong_count() > 0);
        let key = Arc::downgrade(api);
        match cache.iter().find(|(k, _)| Weak::ptr_eq(k, &key)) {
            Some((_, cell)) => cell.clone(),
            None => {
                let cell = Arc::new(OnceCell::new());
                cache.push((key, cell.clone()));
                cell
            }
        }
    };
    let methods = cell
        .get_or_try_init(|| async { resolve(api, channel, url).await.map(Arc::new) })
        .await?;
    Ok(methods.clone())
}

/// Resolves every call of `api` and checks its data template against the input message.
async fn resolve(
    api: &CustomApi,
    channel: &CheckoutChannel,
    url: &str,
) -> Result<Methods, GrpcSchemaError> {
    let calls: Vec<&Call> = [
        Some(&api.purchase),
        Some(&api.stock_call),
        api.reset.as_ref(),
        api.orders.as_ref().map(|o| &o.call),
    ]
    .into_iter()
    .flatten()
    .collect();
    let schema = match &api.transport {
        Transport::Grpc(options) if !options.protos.is_empty() => {
            Schema::from_protos(&options.protos, &options.import_paths)?
        }
        _ => {
            let mut services = Vec::new();
            for call in &calls {
                let service = schema::service_of(&call.target)?;
                if !services.contains(&service) {
                    services.push(service);
                }
            }
            let (pool, offered) = reflection::fetch(channel, url, &services).await?;
            Schema::from_reflection(pool, offered, url)
        }
    };
    let mut resolved: Vec<Method> = Vec::with_capacity(calls.len());
    for call in calls {
        if resolved.iter().any(|m| m.target == call.target) {
            continue;
        }
        let method = schema.method(&call.target)?;
        check_data(&method, calls_with_target(api, &call.target))?;
        resolved.push(method);
    }
    Ok(Methods { calls: resolved })
}

/// Every call of `api` to `target` (the purchase and a control call may share a method with
/// different data).
fn calls_with_target<'a>(api: &'a CustomApi, target: &'a str) -> impl Iterator<Item = &'a Call> {
    [
        Some(&api.purchase),
        Some(&api.stock_call),
        api.reset.as_ref(),
        api.orders.as_ref().map(|o| &o.call),
    ]
    .into_iter()
    .flatten()
    .filter(move |c| c.target == target)
}

fn check_data<'a>(
    method: &Method,
    calls: impl Iterator<Item = &'a Call>,
) -> Result<(), GrpcSchemaError> {
    for call in calls {
        let json = call
            .body
            .as_ref()
            .map_or_else(|| "{}".to_string(), |t| t.render(&Values::SAMPLE));
        method.check_request(&json)?;
    }
    Ok(())
}
