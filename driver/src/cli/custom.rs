//! Flags that describe a checkout of the team's own instead of `flashsale.v1.Checkout`: a spec
//! file (`--checkout`) and flags that fill in or override it ([`crate::spec::custom`]).

use std::path::PathBuf;

use clap::Args;

use crate::spec::custom::file::{CallFile, GrpcFile, HttpFile};
use crate::spec::custom::{CustomApi, CustomError, CustomFile, OrdersFile};

/// A checkout of your own (see docs/custom.md).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Your own checkout (instead of flashsale.v1.Checkout)")]
pub struct CustomArgs {
    /// TOML spec of the checkout (calls, rules, stock); the flags below fill in or override it.
    #[arg(long, value_name = "FILE.toml")]
    pub checkout: Option<PathBuf>,

    /// gRPC purchase method, e.g. shop.v1.Orders/PlaceOrder (descriptors from server
    /// reflection, or --proto).
    #[arg(long, value_name = "PKG.SERVICE/METHOD")]
    pub call: Option<String>,

    /// HTTP purchase: POST to this path (joined to --target) or whole URL (then its origin is
    /// the default target).
    #[arg(long, value_name = "PATH|URL")]
    pub http_post: Option<String>,

    /// Purchase body, JSON with {{user}}, {{quantity}}, {{request_id}}, {{round}} (strings are
    /// JSON-escaped: put them in quotes), e.g.
    /// '{"customer":"{{user}}","qty":{{quantity}},"idempotency_key":"{{request_id}}"}'.
    #[arg(long, alias = "body", value_name = "JSON")]
    pub data: Option<String>,

    /// gRPC method that reads the stock.
    #[arg(long, value_name = "PKG.SERVICE/METHOD")]
    pub stock_call: Option<String>,

    /// HTTP: GET this path or URL to read the stock.
    #[arg(long, value_name = "PATH|URL")]
    pub stock_url: Option<String>,

    /// Body of the stock call (JSON).
    #[arg(long, alias = "stock-body", value_name = "JSON")]
    pub stock_data: Option<String>,

    /// Where the stock is in the stock call's reply, e.g. available or reply.item.stock.
    #[arg(long, value_name = "PATH")]
    pub stock_field: Option<String>,

    /// gRPC method that restocks before the run (body from --reset-data with {{stock}}).
    #[arg(long, value_name = "PKG.SERVICE/METHOD")]
    pub reset_call: Option<String>,

    /// HTTP: POST to this path or URL to restock before the run.
    #[arg(long, value_name = "PATH|URL")]
    pub reset_url: Option<String>,

    /// Body of the reset call, JSON with {{stock}}, e.g. '{"stock":{{stock}}}'.
    #[arg(long, alias = "reset-body", value_name = "JSON")]
    pub reset_data: Option<String>,

    /// Rule of a purchase that went through, e.g. 'reply.status == "CONFIRMED"' [default: the
    /// call succeeded: gRPC OK or HTTP 2xx]. Conditions: `code == NAME|NUMBER`,
    /// `reply.FIELD == JSON`, `!=`, joined by `&&`.
    #[arg(long, value_name = "RULE")]
    pub purchased: Option<String>,

    /// Rule of a sold-out answer, e.g. 'code == FAILED_PRECONDITION' or 'code == 409'
    /// (checked before --purchased).
    #[arg(long, value_name = "RULE")]
    pub sold_out: Option<String>,

    /// Rule of a per-customer-limit refusal.
    #[arg(long, value_name = "RULE")]
    pub limit_reached: Option<String>,

    /// Where a purchase's order id is in its reply [default: purchases are told apart by their
    /// request ids].
    #[arg(long, value_name = "PATH")]
    pub order_id_field: Option<String>,

    /// Where the stock left after a call is in its reply, if it says.
    #[arg(long, value_name = "PATH")]
    pub stock_after_field: Option<String>,

    /// gRPC method that lists the checkout's orders after the run (the audit then reconciles
    /// against it order by order; see docs/custom.md).
    #[arg(long, value_name = "PKG.SERVICE/METHOD")]
    pub orders_call: Option<String>,

    /// HTTP: GET this path or URL to list the checkout's orders after the run.
    #[arg(long, value_name = "PATH|URL")]
    pub orders_url: Option<String>,

    /// Body of the listing call (JSON).
    #[arg(long, alias = "orders-body", value_name = "JSON")]
    pub orders_data: Option<String>,

    /// Where the array of orders is in the listing's reply ("." : the reply is the array).
    #[arg(long, value_name = "PATH")]
    pub orders_list: Option<String>,

    /// Where an order's id is in each element of the listing.
    #[arg(long, value_name = "PATH")]
    pub orders_order_id: Option<String>,

    /// Where an order's user is in each element of the listing.
    #[arg(long, value_name = "PATH")]
    pub orders_user: Option<String>,

    /// Where an order's quantity is in each element of the listing.
    #[arg(long, value_name = "PATH")]
    pub orders_quantity: Option<String>,

    /// Where an order's request id ({{request_id}} of the purchase) is in each element.
    #[arg(long, value_name = "PATH")]
    pub orders_request_id: Option<String>,

    /// .proto file declaring the gRPC methods (repeatable), compiled in-process; without it,
    /// the server's reflection service is asked.
    #[arg(long, value_name = "FILE")]
    pub proto: Vec<PathBuf>,

    /// Folder where imports of --proto files are found (repeatable).
    #[arg(long, value_name = "DIR")]
    pub import_path: Vec<PathBuf>,

    /// HTTP/2 instead of HTTP/1.1 keep-alive for an HTTP checkout.
    #[arg(long)]
    pub http2: bool,
}

impl CustomArgs {
    /// The checkout these flags describe, `None` when they describe none.
    pub fn to_api(&self) -> Result<Option<CustomApi>, CustomError> {
        let mut file = match &self.checkout {
            Some(path) => CustomFile::read(path)?,
            None => CustomFile::default(),
        };
        let set = |slot: &mut Option<String>, flag: &Option<String>| {
            if let Some(value) = flag {
                *slot = Some(value.clone());
            }
        };
        call_flags(&mut file.purchase, &self.call, &self.http_post, &self.data);
        call_flags(
            &mut file.stock,
            &self.stock_call,
            &self.stock_url,
            &self.stock_data,
        );
        set(&mut file.stock.field, &self.stock_field);
        if self.reset_call.is_some() || self.reset_url.is_some() || self.reset_data.is_some() {
            let reset = file.reset.get_or_insert_with(CallFile::default);
            call_flags(reset, &self.reset_call, &self.reset_url, &self.reset_data);
        }
        let o = &mut file.outcome;
        set(&mut o.purchased, &self.purchased);
        set(&mut o.sold_out, &self.sold_out);
        set(&mut o.limit_reached, &self.limit_reached);
        set(&mut o.order_id, &self.order_id_field);
        set(&mut o.stock_after, &self.stock_after_field);
        self.orders_flags(&mut file);
        if !self.proto.is_empty() || !self.import_path.is_empty() {
            let grpc = file.grpc.get_or_insert_with(GrpcFile::default);
            grpc.proto.extend(self.proto.iter().cloned());
            grpc.import_path.extend(self.import_path.iter().cloned());
        }
        if self.http2 {
            file.http.get_or_insert_with(HttpFile::default).version = Some("2".into());
        }
        if file.is_empty() {
            return Ok(None);
        }
        file.compile().map(Some)
    }
}

impl CustomArgs {
    /// Folds the `--orders-*` flags into the `[orders]` table.
    fn orders_flags(&self, file: &mut CustomFile) {
        let flags = [
            &self.orders_call,
            &self.orders_url,
            &self.orders_data,
            &self.orders_list,
            &self.orders_order_id,
            &self.orders_user,
            &self.orders_quantity,
            &self.orders_request_id,
        ];
        if flags.iter().all(|f| f.is_none()) {
            return;
        }
        let orders = file.orders.get_or_insert_with(OrdersFile::default);
        for (slot, flag) in [
            (&mut orders.call, &self.orders_call),
            (&mut orders.url, &self.orders_url),
            (&mut orders.body, &self.orders_data),
            (&mut orders.list, &self.orders_list),
            (&mut orders.order_id, &self.orders_order_id),
            (&mut orders.user, &self.orders_user),
            (&mut orders.quantity, &self.orders_quantity),
            (&mut orders.request_id, &self.orders_request_id),
        ] {
            if let Some(value) = flag {
                *slot = Some(value.clone());
            }
        }
    }
}

/// Fills `call` from a gRPC method, an HTTP URL and a body given as flags.
fn call_flags(
    call: &mut CallFile,
    method: &Option<String>,
    url: &Option<String>,
    body: &Option<String>,
) {
    if let Some(method) = method {
        call.call = Some(method.clone());
    }
    if let Some(url) = url {
        call.url = Some(url.clone());
    }
    if let Some(body) = body {
        call.body = Some(body.clone());
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::Cli;
    use clap::Parser;

    fn spec_error(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(std::iter::once("driver").chain(args.iter().copied()))
            .expect("the flags parse");
        cli.run.to_spec().unwrap_err().to_string()
    }

    const GRPC: [&str; 8] = [
        "--call",
        "shop.v1.Orders/PlaceOrder",
        "--stock-call",
        "shop.v1.Inventory/Get",
        "--stock-field",
        "available",
        "--sold-out",
        "code == FAILED_PRECONDITION",
    ];

    #[test]
    fn a_custom_checkout_needs_no_mode_but_a_target_and_a_reset() {
        let with = |extra: &[&'static str]| [&GRPC[..], extra].concat();
        let ok = Cli::try_parse_from(std::iter::once("driver").chain(with(&[
            "--target",
            "x:1",
            "--no-reset",
        ])))
        .unwrap();
        let spec = ok.run.to_spec().unwrap();
        assert_eq!(spec.label(), "custom");
        let api = spec.connection.custom.as_ref().unwrap();
        assert_eq!(api.name, "shop.v1.Orders/PlaceOrder");
        assert!(spec_error(&with(&["--no-reset"])).contains("needs --target"));
        assert!(spec_error(&with(&["--target", "x:1"])).contains("no reset call"));
        assert!(
            spec_error(&with(&["--target", "x:1", "--no-reset", "--mode", "safe"]))
                .contains("--mode applies to flashsale.v1.Checkout only")
        );
        assert!(
            spec_error(&with(&[
                "--no-reset",
                "--coordinator",
                "c:1",
                "--proto",
                "x.proto"
            ]))
            .contains("reflection")
        );
        assert!(
            spec_error(&["--call", "shop.v1.Orders/PlaceOrder", "--target", "x:1"])
                .contains("--stock-call")
        );
    }

    #[test]
    fn a_whole_url_gives_the_target() {
        let cli = Cli::try_parse_from([
            "driver",
            "--http-post",
            "http://127.0.0.1:8000/api/v1/checkout/safe",
            "--stock-url",
            "/api/v1/debug/stock",
            "--stock-field",
            "stock",
            "--sold-out",
            "code == 409",
            "--no-reset",
        ])
        .unwrap();
        let spec = cli.run.to_spec().unwrap();
        assert_eq!(spec.targets, ["http://127.0.0.1:8000"]);
    }
}
