//! Descriptors from the server itself: gRPC server reflection (`grpc.reflection.v1`, then
//! `v1alpha` for older servers). Lists the services, fetches the files that define the ones the
//! checkout calls, then every file they import, into one [`DescriptorPool`]. The server is a
//! peer: file counts and sizes are bounded, and every answer is checked.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use prost::Message;
use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorProto;
use tonic::Code;

use super::schema::GrpcSchemaError;
use crate::checkout::CheckoutChannel;

/// Most descriptor files fetched for one checkout.
const MAX_FILES: usize = 256;
/// Most bytes of descriptors fetched for one checkout.
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// How long the whole exchange may take.
const DEADLINE: Duration = Duration::from_secs(15);

/// A question to the reflection service.
enum Ask<'a> {
    ListServices,
    Symbol(&'a str),
    File(&'a str),
}

/// Its answer.
enum Answer {
    Services(Vec<String>),
    Files(Vec<Vec<u8>>),
    /// The server's error answer (e.g. NOT_FOUND for an unknown symbol).
    Error(Code, String),
}

/// Generates one reflection question-and-answer over a version of the protocol (v1 and
/// v1alpha are the same messages in two packages).
macro_rules! ask_with {
    ($name:ident, $pb:path) => {
        async fn $name(channel: &CheckoutChannel, ask: &Ask<'_>) -> Result<Answer, tonic::Status> {
            use pb::server_reflection_request::MessageRequest;
            use pb::server_reflection_response::MessageResponse;
            use $pb as pb;
            let request = match ask {
                Ask::ListServices => MessageRequest::ListServices(String::new()),
                Ask::Symbol(symbol) => MessageRequest::FileContainingSymbol(symbol.to_string()),
                Ask::File(file) => MessageRequest::FileByFilename(file.to_string()),
            };
            let request = pb::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request),
            };
            let mut client =
                pb::server_reflection_client::ServerReflectionClient::new(channel.clone());
            let mut replies = client
                .server_reflection_info(tokio_stream::once(request))
                .await?
                .into_inner();
            let reply = replies.message().await?.ok_or_else(|| {
                tonic::Status::unknown("the reflection stream ended without an answer")
            })?;
            Ok(match reply.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    Answer::Services(list.service.into_iter().map(|s| s.name).collect())
                }
                Some(MessageResponse::FileDescriptorResponse(files)) => {
                    Answer::Files(files.file_descriptor_proto)
                }
                Some(MessageResponse::ErrorResponse(e)) => {
                    Answer::Error(Code::from(e.error_code), e.error_message)
                }
                _ => return Err(tonic::Status::unknown("an answer to another question")),
            })
        }
    };
}

ask_with!(ask_v1, tonic_reflection::pb::v1);
ask_with!(ask_v1alpha, tonic_reflection::pb::v1alpha);

#[derive(Clone, Copy)]
enum Version {
    V1,
    V1Alpha,
}

async fn ask(
    channel: &CheckoutChannel,
    version: Version,
    ask: &Ask<'_>,
) -> Result<Answer, tonic::Status> {
    match version {
        Version::V1 => ask_v1(channel, ask).await,
        Version::V1Alpha => ask_v1alpha(channel, ask).await,
    }
}

/// The descriptors of `services` (and everything they import) and the services the server
/// lists. A service the server does not know is left out; [`super::schema::Schema::method`]
/// then names what it offers.
pub async fn fetch(
    channel: &CheckoutChannel,
    target: &str,
    services: &[&str],
) -> Result<(DescriptorPool, Vec<String>), GrpcSchemaError> {
    let failed = |reason: String| GrpcSchemaError::Reflection {
        target: target.to_string(),
        reason,
    };
    tokio::time::timeout(DEADLINE, fetch_all(channel, target, services))
        .await
        .map_err(|_| failed(format!("no complete answer within {DEADLINE:?}")))?
}

async fn fetch_all(
    channel: &CheckoutChannel,
    target: &str,
    services: &[&str],
) -> Result<(DescriptorPool, Vec<String>), GrpcSchemaError> {
    let failed = |reason: String| GrpcSchemaError::Reflection {
        target: target.to_string(),
        reason,
    };
    let unavailable = || GrpcSchemaError::ReflectionUnavailable {
        target: target.to_string(),
    };
    let mut version = Version::V1;
    let listed = match ask(channel, version, &Ask::ListServices).await {
        Err(status) if status.code() == Code::Unimplemented => {
            version = Version::V1Alpha;
            ask(channel, version, &Ask::ListServices).await
        }
        other => other,
    };
    let offered = match listed {
        Ok(Answer::Services(names)) => names,
        Err(status) if status.code() == Code::Unimplemented => return Err(unavailable()),
        Err(status) => return Err(failed(format!("{} ({})", status.message(), status.code()))),
        Ok(Answer::Error(code, message)) => return Err(failed(format!("{message} ({code:?})"))),
        Ok(Answer::Files(_)) => return Err(failed("files instead of a service list".into())),
    };

    let mut files: Vec<FileDescriptorProto> = Vec::new();
    let mut have: HashSet<String> = HashSet::new();
    let mut wanted: VecDeque<String> = VecDeque::new();
    let mut bytes = 0usize;
    let mut take = |raw: Vec<Vec<u8>>,
                    files: &mut Vec<FileDescriptorProto>,
                    wanted: &mut VecDeque<String>,
                    have: &mut HashSet<String>|
     -> Result<(), GrpcSchemaError> {
        for encoded in raw {
            bytes = bytes.saturating_add(encoded.len());
            if bytes > MAX_BYTES || files.len() >= MAX_FILES {
                return Err(failed(format!(
                    "the descriptors exceed {MAX_FILES} files or {MAX_BYTES} bytes"
                )));
            }
            let file = FileDescriptorProto::decode(encoded.as_slice())
                .map_err(|e| failed(format!("an undecodable file descriptor: {e}")))?;
            if !have.insert(file.name().to_string()) {
                continue;
            }
            wanted.extend(
                file.dependency
                    .iter()
                    .filter(|d| !have.contains(*d))
                    .cloned(),
            );
            files.push(file);
        }
        Ok(())
    };

    for service in services {
        match ask(channel, version, &Ask::Symbol(service)).await {
            Ok(Answer::Files(raw)) => take(raw, &mut files, &mut wanted, &mut have)?,
            // Unknown here (an error answer, or a NOT_FOUND status from some servers): the
            // schema names what the server offers instead.
            Ok(Answer::Error(..)) => {}
            Err(status) if status.code() == Code::NotFound => {}
            Ok(Answer::Services(_)) => {
                return Err(failed("a service list instead of files".into()));
            }
            Err(status) => return Err(failed(format!("{} ({})", status.message(), status.code()))),
        }
    }
    while let Some(name) = wanted.pop_front() {
        if have.contains(&name) {
            continue;
        }
        match ask(channel, version, &Ask::File(&name)).await {
            Ok(Answer::Files(raw)) => take(raw, &mut files, &mut wanted, &mut have)?,
            Ok(Answer::Error(_, message)) => {
                return Err(failed(format!("it cannot give `{name}`: {message}")));
            }
            Ok(Answer::Services(_)) => {
                return Err(failed("a service list instead of files".into()));
            }
            Err(status) => return Err(failed(format!("{} ({})", status.message(), status.code()))),
        }
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(files)
        .map_err(|e| failed(format!("inconsistent descriptors: {e}")))?;
    Ok((pool, offered))
}
