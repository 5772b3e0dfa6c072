//! The description of a custom checkout as a TOML spec file (`--checkout FILE`), the form the
//! command-line flags are folded into, and its compilation into a [`CustomApi`]:
//!
//! ```toml
//! [purchase]                 # gRPC: `call` and `data`; HTTP: `url` (+ `method`) and `body`
//! call = "shop.v1.Orders/PlaceOrder"
//! data = '{"customer":"{{user}}","qty":{{quantity}},"idempotency_key":"{{request_id}}"}'
//! [stock]
//! call = "shop.v1.Inventory/GetInventory"
//! data = '{"sku":"A1"}'
//! field = "available"
//! [reset]                    # optional: without it, run with --no-reset
//! call = "shop.v1.Inventory/Restock"
//! data = '{"sku":"A1","quantity":{{stock}}}'
//! [outcome]
//! purchased = 'reply.status == "CONFIRMED"'
//! sold_out = "code == FAILED_PRECONDITION"
//! order_id = "reply.order_ref"
//! [orders]                   # optional: the listing the audit reconciles against
//! call = "shop.v1.Orders/ListOrders"
//! list = "orders"
//! order_id = "order_ref"
//! quantity = "qty"
//! request_id = "idempotency_key"
//! [grpc]                     # optional: descriptors from files instead of reflection
//! proto = ["shop.proto"]
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::orders::OrdersFile;
use super::{
    Call, CustomApi, CustomError, Escape, FieldPath, GrpcOptions, HttpOptions, OutcomeRules, Rule,
    Template, Transport,
};

/// Largest spec file read, in bytes.
pub const MAX_SPEC_FILE_BYTES: u64 = 256 * 1024;

/// One call as written: gRPC `call` + `data`, or HTTP `url` (+ `method`) + `body`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallFile {
    /// gRPC method, `package.Service/Method`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// HTTP path and query (or a whole URL, whose origin then is the default target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP method [default: POST, GET for the stock].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// JSON body template (gRPC: the request message in proto3 JSON).
    #[serde(alias = "data", skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Stock only: where the stock is in the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The `[outcome]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchased: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sold_out: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_reached: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_after: Option<String>,
}

/// The `[grpc]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proto: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_path: Vec<PathBuf>,
}

/// The `[http]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    /// `"1.1"` (keep-alive, the default) or `"2"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A whole spec file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFile {
    #[serde(default)]
    pub purchase: CallFile,
    #[serde(default)]
    pub stock: CallFile,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<CallFile>,
    #[serde(default)]
    pub outcome: OutcomeFile,
    /// How to list the checkout's orders, if it can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<OrdersFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpFile>,
}

impl CustomFile {
    /// Reads and parses `path` (at most [`MAX_SPEC_FILE_BYTES`]); relative `.proto` paths are
    /// taken from the file's folder.
    pub fn read(path: &Path) -> Result<Self, CustomError> {
        let fail = |reason: String| CustomError::File {
            path: path.to_path_buf(),
            reason,
        };
        // Read through `take`: a device (`/dev/zero`) or a growing file reports no size.
        let mut bytes = Vec::new();
        let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let read = std::io::Read::read_to_end(
            &mut std::io::Read::take(file, MAX_SPEC_FILE_BYTES + 1),
            &mut bytes,
        );
        if bytes.len() as u64 > MAX_SPEC_FILE_BYTES {
            return Err(fail(format!(
                "larger than the {MAX_SPEC_FILE_BYTES}-byte cap (MAX_SPEC_FILE_BYTES)"
            )));
        }
        read.map_err(|e| fail(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
        let mut file = Self::parse(&text).map_err(|e| fail(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(grpc) = &mut file.grpc {
            for p in grpc.proto.iter_mut().chain(grpc.import_path.iter_mut()) {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(file)
    }

    /// Parses spec text.
    pub fn parse(text: &str) -> Result<Self, CustomError> {
        toml::from_str(text).map_err(|e| CustomError::Spec(e.message().to_string()))
    }

    /// Whether anything describes a custom checkout at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Checks and compiles the description.
    pub fn compile(&self) -> Result<CustomApi, CustomError> {
        let spec = |m: &str| CustomError::Spec(m.to_string());
        let orders_call = self.orders.as_ref().map(OrdersFile::as_call);
        let calls = [
            Some(&self.purchase),
            Some(&self.stock),
            self.reset.as_ref(),
            orders_call.as_ref(),
        ];
        let grpc = calls.iter().flatten().any(|c| c.call.is_some()) || self.grpc.is_some();
        let http = calls.iter().flatten().any(|c| c.url.is_some()) || self.http.is_some();
        let transport = match (grpc, http) {
            (true, true) => {
                return Err(spec(
                    "it mixes gRPC (call, --call, [grpc]) and HTTP (url, --http-post, [http]); a checkout speaks one",
                ));
            }
            (false, false) => {
                return Err(spec(
                    "no purchase call: give --call (gRPC) or --http-post (HTTP), or [purchase] in --checkout",
                ));
            }
            (true, false) => {
                let g = self.grpc.clone().unwrap_or_default();
                Transport::Grpc(GrpcOptions {
                    protos: g.proto,
                    import_paths: g.import_path,
                })
            }
            (false, true) => {
                let http2 = match self.http.as_ref().and_then(|h| h.version.as_deref()) {
                    None | Some("1.1") => false,
                    Some("2") => true,
                    Some(other) => {
                        return Err(spec(&format!(
                            "HTTP version `{other}`: use \"1.1\" or \"2\""
                        )));
                    }
                };
                Transport::Http(HttpOptions { http2 })
            }
        };
        let is_grpc = matches!(transport, Transport::Grpc(_));
        let mut origin = None;
        let purchase = compile_call("purchase", &self.purchase, is_grpc, "POST", &mut origin)?;
        let stock_call = compile_call("stock", &self.stock, is_grpc, "GET", &mut origin)?;
        let reset = self
            .reset
            .as_ref()
            .map(|r| compile_call("reset", r, is_grpc, "POST", &mut origin))
            .transpose()?;
        let orders = match (&self.orders, &orders_call) {
            (Some(table), Some(call)) => Some(table.compile(
                compile_call("orders", call, is_grpc, "GET", &mut origin)?,
                self.outcome.order_id.is_some(),
            )?),
            _ => None,
        };
        let stock = FieldPath::parse(self.stock.field.as_deref().ok_or_else(|| {
            spec("where the stock is in the stock call's reply: give --stock-field (or field in [stock])")
        })?)?;
        let o = &self.outcome;
        let rule =
            |what, raw: &Option<String>| raw.as_deref().map(|r| Rule::parse(what, r)).transpose();
        let rules = OutcomeRules {
            purchased: rule("--purchased", &o.purchased)?,
            sold_out: rule("--sold-out", &o.sold_out)?.ok_or_else(|| {
                spec("how a sold-out reply looks: give --sold-out, e.g. 'code == FAILED_PRECONDITION' or 'code == 409'")
            })?,
            limit_reached: rule("--limit-reached", &o.limit_reached)?,
            order_id: o.order_id.as_deref().map(FieldPath::parse).transpose()?,
            stock_after: o.stock_after.as_deref().map(FieldPath::parse).transpose()?,
        };
        let name = if is_grpc {
            purchase.target.clone()
        } else {
            format!(
                "{} {}",
                purchase.target,
                self.purchase.url.as_deref().unwrap_or_default()
            )
        };
        let source = toml::to_string(self).map_err(|e| spec(&e.to_string()))?;
        Ok(CustomApi {
            name,
            rules,
            purchase,
            stock_call,
            stock,
            reset,
            orders,
            transport,
            origin,
            source,
        })
    }
}

/// One call: gRPC method and data, or HTTP method, URL and body. A whole URL's origin
/// (`http://host:port`) becomes `origin`; every call must then share it.
fn compile_call(
    which: &'static str,
    call: &CallFile,
    grpc: bool,
    default_method: &str,
    origin: &mut Option<String>,
) -> Result<Call, CustomError> {
    let spec = |m: String| CustomError::Spec(m);
    let body = call
        .body
        .as_deref()
        .map(|b| Template::json(which, b))
        .transpose()?;
    if grpc {
        let method = call.call.as_deref().ok_or_else(|| {
            spec(format!(
                "the {which} call has no gRPC method (--{}call)",
                flag_prefix(which)
            ))
        })?;
        check_method(method)?;
        if call.url.is_some() || call.method.is_some() {
            return Err(spec(format!(
                "the {which} call mixes a gRPC method with HTTP settings"
            )));
        }
        return Ok(Call {
            target: method.trim_start_matches('/').to_string(),
            path: None,
            body,
        });
    }
    let url = call
        .url
        .as_deref()
        .ok_or_else(|| spec(format!("the {which} call has no URL")))?;
    let path = match url.split_once("://") {
        Some((scheme, rest)) => {
            if scheme != "http" && scheme != "https" {
                return Err(spec(format!("{url}: only http:// and https:// URLs")));
            }
            let cut = rest.find('/').unwrap_or(rest.len());
            let this = format!("{scheme}://{}", &rest[..cut]);
            match origin {
                Some(seen) if *seen != this => {
                    return Err(spec(format!(
                        "the calls go to different servers ({seen} and {this}); use paths and --target"
                    )));
                }
                _ => *origin = Some(this),
            }
            if cut == rest.len() { "/" } else { &rest[cut..] }
        }
        None if url.starts_with('/') => url,
        None => {
            return Err(spec(format!(
                "{url}: give a path such as /api/v1/checkout or a whole http:// URL"
            )));
        }
    };
    let method = call
        .method
        .as_deref()
        .unwrap_or(default_method)
        .to_ascii_uppercase();
    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
        return Err(spec(format!(
            "HTTP method `{method}`: use GET, POST, PUT, PATCH or DELETE"
        )));
    }
    Ok(Call {
        target: method,
        path: Some(Template::parse(which, path, Escape::Url)?),
        body,
    })
}

fn flag_prefix(which: &str) -> &'static str {
    match which {
        "stock" => "stock-",
        "reset" => "reset-",
        "orders" => "orders-",
        _ => "",
    }
}

/// `package.Service/Method` (a leading `/` is allowed).
fn check_method(method: &str) -> Result<(), CustomError> {
    let m = method.trim_start_matches('/');
    let ok = m.split_once('/').is_some_and(|(service, name)| {
        service.contains('.')
            && !name.is_empty()
            && !name.contains('/')
            && m.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/'))
    });
    if ok {
        Ok(())
    } else {
        Err(CustomError::Spec(format!(
            "`{method}` is not a gRPC method such as shop.v1.Orders/PlaceOrder"
        )))
    }
}

#[cfg(test)]
mod tests;
