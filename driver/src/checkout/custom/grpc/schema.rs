//! The methods a custom gRPC checkout calls, resolved once: where the message types come from
//! (`--proto` files compiled in-process with `protox`, or server reflection: [`super::reflection`]),
//! each call's method checked (it exists, it is unary, its data template fits its input message),
//! and the conversions a call makes (JSON text to a request message, a reply to JSON).

use std::path::{Path, PathBuf};

use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
};
use serde_json::Value;
use tonic::codegen::http::uri::PathAndQuery;

/// Why a custom gRPC checkout cannot be called.
#[derive(Debug, thiserror::Error)]
pub enum GrpcSchemaError {
    #[error("cannot compile --proto {files}: {reason}")]
    Proto { files: String, reason: String },
    #[error(
        "{target} does not offer server reflection (neither grpc.reflection.v1 nor v1alpha): \
         give the service's .proto files with --proto"
    )]
    ReflectionUnavailable { target: String },
    #[error("server reflection on {target} failed: {reason}")]
    Reflection { target: String, reason: String },
    #[error("`{call}` is not a gRPC method: write it as package.Service/Method")]
    BadMethodName { call: String },
    #[error("service `{service}` is unknown to {source_name}; it offers: {offered}")]
    UnknownService {
        service: String,
        source_name: String,
        offered: String,
    },
    #[error("service `{service}` has no method `{method}`; its methods: {offered}")]
    UnknownMethod {
        service: String,
        method: String,
        offered: String,
    },
    #[error("{call} is a streaming method; a checkout call must be unary (one request, one reply)")]
    Streaming { call: String },
    #[error("the data of {call} does not fit its input message {message}: {reason}")]
    Data {
        call: String,
        message: String,
        reason: String,
    },
}

/// Where the message types came from, for error messages.
#[derive(Debug, Clone)]
pub enum Source {
    Protos(String),
    Reflection(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Protos(files) => write!(f, "--proto {files}"),
            Source::Reflection(target) => write!(f, "the server reflection of {target}"),
        }
    }
}

/// The descriptors of a checkout's services, and the services it says it offers.
#[derive(Debug, Clone)]
pub struct Schema {
    pool: DescriptorPool,
    offered: Vec<String>,
    source: Source,
}

/// One unary method, ready to call.
#[derive(Debug, Clone)]
pub struct Method {
    /// `package.Service/Method` as given.
    pub target: String,
    /// `/package.Service/Method`, the HTTP/2 path.
    pub path: PathAndQuery,
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
}

/// Replies as JSON: fields by their proto names (`order_ref`, as in the `.proto` and in
/// `--data`), fields at their default value included (a stock of 0 is `"available": "0"`, not
/// missing), enums by name, 64-bit integers as strings (the proto3 JSON mapping).
const REPLY_JSON: SerializeOptions = SerializeOptions::new()
    .use_proto_field_name(true)
    .skip_default_fields(false);

/// Requests: unknown fields are an error (a typo in `--data` is caught before the run).
const REQUEST_JSON: DeserializeOptions = DeserializeOptions::new().deny_unknown_fields(true);

impl Schema {
    /// Compiles `protos` (each found under its own folder or one of `import_paths`; the
    /// well-known `google/protobuf/*.proto` are built in).
    pub fn from_protos(
        protos: &[PathBuf],
        import_paths: &[PathBuf],
    ) -> Result<Self, GrpcSchemaError> {
        let files = protos
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let failed = |reason: String| GrpcSchemaError::Proto {
            files: files.clone(),
            reason,
        };
        if protos.is_empty() {
            return Err(failed("no file given".into()));
        }
        let mut includes: Vec<PathBuf> = import_paths.to_vec();
        for proto in protos {
            let parent = proto.parent().filter(|p| !p.as_os_str().is_empty());
            let folder = parent.unwrap_or(Path::new(".")).to_path_buf();
            if !includes.contains(&folder) {
                includes.push(folder);
            }
        }
        // Every file read under a size cap (`protos::MAX_PROTO_BYTES`).
        let mut compiler = protox::Compiler::with_file_resolver(super::protos::resolver(&includes));
        compiler.include_imports(true);
        compiler
            .open_files(protos)
            .map_err(|e| failed(e.to_string()))?;
        let pool = compiler.descriptor_pool();
        let offered = pool.services().map(|s| s.full_name().to_string()).collect();
        Ok(Self {
            pool,
            offered,
            source: Source::Protos(files),
        })
    }

    /// Descriptors fetched through reflection, with the services the server listed.
    pub fn from_reflection(pool: DescriptorPool, offered: Vec<String>, target: &str) -> Self {
        Self {
            pool,
            offered,
            source: Source::Reflection(target.to_string()),
        }
    }

    /// The unary method `call` (`package.Service/Method`; `package.Service.Method` too).
    pub fn method(&self, call: &str) -> Result<Method, GrpcSchemaError> {
        let (service_name, method_name) = split_call(call)?;
        let service = self.pool.get_service_by_name(service_name).ok_or_else(|| {
            GrpcSchemaError::UnknownService {
                service: service_name.to_string(),
                source_name: self.source.to_string(),
                offered: listing(self.offered.iter().cloned()),
            }
        })?;
        let method = service
            .methods()
            .find(|m| m.name() == method_name)
            .ok_or_else(|| GrpcSchemaError::UnknownMethod {
                service: service_name.to_string(),
                method: method_name.to_string(),
                offered: listing(service.methods().map(|m| m.name().to_string())),
            })?;
        if method.is_client_streaming() || method.is_server_streaming() {
            return Err(GrpcSchemaError::Streaming {
                call: call.to_string(),
            });
        }
        let path = format!("/{service_name}/{method_name}")
            .parse::<PathAndQuery>()
            .map_err(|_| GrpcSchemaError::BadMethodName {
                call: call.to_string(),
            })?;
        Ok(Method {
            target: call.to_string(),
            path,
            input: method.input(),
            output: method.output(),
        })
    }
}

impl Method {
    /// The request message `json` describes.
    pub fn request(&self, json: &str) -> Result<DynamicMessage, String> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let message = DynamicMessage::deserialize_with_options(
            self.input.clone(),
            &mut deserializer,
            &REQUEST_JSON,
        )
        .map_err(|e| e.to_string())?;
        deserializer.end().map_err(|e| e.to_string())?;
        Ok(message)
    }

    /// Checks that `json` (a data template rendered with sample values) fits the input message.
    pub fn check_request(&self, json: &str) -> Result<(), GrpcSchemaError> {
        self.request(json)
            .map(drop)
            .map_err(|reason| GrpcSchemaError::Data {
                call: self.target.clone(),
                message: self.input.full_name().to_string(),
                reason,
            })
    }
}

/// A reply as JSON (see [`REPLY_JSON`]); `None` if it cannot be expressed (never for a decoded
/// message, but nothing here may panic).
pub fn reply_json(reply: &DynamicMessage) -> Option<Value> {
    reply
        .serialize_with_options(serde_json::value::Serializer, &REPLY_JSON)
        .ok()
}

/// The service names the calls need (for reflection).
pub fn service_of(call: &str) -> Result<&str, GrpcSchemaError> {
    split_call(call).map(|(service, _)| service)
}

fn split_call(call: &str) -> Result<(&str, &str), GrpcSchemaError> {
    let bad = || GrpcSchemaError::BadMethodName {
        call: call.to_string(),
    };
    let trimmed = call.trim().trim_start_matches('/');
    let (service, method) = trimmed
        .rsplit_once('/')
        .or_else(|| trimmed.rsplit_once('.'))
        .ok_or_else(bad)?;
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    if !ident(service) || !ident(method) || method.contains('.') {
        return Err(bad());
    }
    Ok((service, method))
}

/// At most 30 names, sorted, comma-separated (`none` for none).
fn listing(names: impl Iterator<Item = String>) -> String {
    let mut names: Vec<String> = names.collect();
    if names.is_empty() {
        return "none".into();
    }
    names.sort();
    let more = names.len().saturating_sub(30);
    names.truncate(30);
    let mut text = names.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> Schema {
        let proto = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/shop/shop.proto"
        ));
        Schema::from_protos(&[proto], &[]).expect("shop.proto compiles")
    }

    #[test]
    fn method_names() {
        assert_eq!(
            split_call("shop.v1.Orders/PlaceOrder").unwrap(),
            ("shop.v1.Orders", "PlaceOrder")
        );
        assert_eq!(
            split_call("/shop.v1.Orders/PlaceOrder").unwrap(),
            ("shop.v1.Orders", "PlaceOrder")
        );
        assert_eq!(
            split_call("shop.v1.Orders.PlaceOrder").unwrap(),
            ("shop.v1.Orders", "PlaceOrder")
        );
        for bad in [
            "",
            "PlaceOrder",
            "shop.v1.Orders/",
            "/x",
            "a b/C",
            "a/b/c",
            "1a/B",
        ] {
            assert!(split_call(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_and_converts_from_a_proto_file() {
        let schema = shop();
        let method = schema.method("shop.v1.Orders/PlaceOrder").unwrap();
        assert_eq!(method.path.as_str(), "/shop.v1.Orders/PlaceOrder");
        let request = method
            .request(r#"{"customer":"c","qty":2,"idempotencyKey":"k"}"#)
            .unwrap();
        assert_eq!(
            reply_json(&request),
            Some(serde_json::json!({"customer":"c","sku":"","qty":2,"idempotency_key":"k"}))
        );
        assert!(method.request(r#"{"qty":-1}"#).is_err());
        assert!(method.request(r#"{"qty":1} trailing"#).is_err());
        let err = method
            .check_request(r#"{"quantity":1}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shop.v1.OrderRequest") && err.contains("quantity"),
            "{err}"
        );
        let err = schema.method("shop.v1.Orders/WatchOrders").unwrap_err();
        assert!(matches!(err, GrpcSchemaError::Streaming { .. }), "{err}");
        let err = schema.method("shop.v1.Nope/X").unwrap_err().to_string();
        assert!(
            err.contains("--proto") && err.contains("shop.v1.Orders"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_proto_file_is_named() {
        let err = Schema::from_protos(&[PathBuf::from("/nonexistent/x.proto")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/x.proto"), "{err}");
        assert!(Schema::from_protos(&[], &[]).is_err());
    }

    #[test]
    fn dev_zero_as_a_proto_is_refused_at_the_cap_without_its_content() {
        let err = Schema::from_protos(&[PathBuf::from("/dev/zero")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/zero: larger than the 4 MiB cap (MAX_PROTO_BYTES)"),
            "{err}"
        );
        assert!(!err.contains('\0'), "{err}");
    }

    #[test]
    fn listings_are_sorted_and_bounded() {
        assert_eq!(
            listing(["b".to_string(), "a".to_string()].into_iter()),
            "a, b"
        );
        assert_eq!(listing(std::iter::empty()), "none");
        let many = listing((0..40).map(|i| format!("s{i:02}")));
        assert!(many.ends_with("and 10 more"), "{many}");
    }
}
