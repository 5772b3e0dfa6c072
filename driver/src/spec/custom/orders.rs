//! The call that lists a custom checkout's orders (`[orders]` in the spec file, `--orders-*`
//! flags), and where each order's fields are in its reply. With it the audit reconciles the
//! run order by order against the checkout's own listing instead of checking ranges only:
//!
//! ```toml
//! [orders]
//! url = "/api/v1/debug/orders"   # or call = "shop.v1.Orders/ListOrders" + data
//! list = "orders"                # the JSON array in the reply ("" or ".": the reply is it)
//! order_id = "order_id"          # fields of each element (order_id: only when purchases
//!                                # have one, --order-id-field; else the request id is it)
//! user = "user"
//! quantity = "qty"
//! request_id = "request_id"      # needed to match orders to this run's attempts
//! ```

use serde::{Deserialize, Serialize};

use super::file::CallFile;
use super::{Call, CustomError, FieldPath};

/// The `[orders]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersFile {
    /// gRPC method, `package.Service/Method`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// HTTP path and query, or a whole URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP method [default: GET].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// JSON body (gRPC: the request message).
    #[serde(alias = "data", skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Where the array of orders is in the reply; `""` or `"."`: the reply is the array.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The listing call, compiled.
#[derive(Debug, Clone)]
pub struct OrdersSpec {
    pub call: Call,
    /// Where the array is; `None`: the reply is the array.
    pub list: Option<FieldPath>,
    /// Where an order's id is; `None` when purchases are told apart by their request ids
    /// (no `--order-id-field`): then an order's request id stands for its id, as for the
    /// purchases.
    pub order_id: Option<FieldPath>,
    pub user: Option<FieldPath>,
    pub quantity: FieldPath,
    /// Without it the orders cannot be matched to attempts: the book is not used.
    pub request_id: Option<FieldPath>,
}

impl OrdersFile {
    /// The call part of the table, to be compiled like the other calls.
    pub(super) fn as_call(&self) -> CallFile {
        CallFile {
            call: self.call.clone(),
            url: self.url.clone(),
            method: self.method.clone(),
            body: self.body.clone(),
            field: None,
        }
    }

    /// The listing with its call (compiled from [`Self::as_call`]) and its field paths;
    /// `purchase_ids`: purchases' replies carry order ids (`--order-id-field`).
    pub(super) fn compile(
        &self,
        call: Call,
        purchase_ids: bool,
    ) -> Result<OrdersSpec, CustomError> {
        let spec = |m: &str| CustomError::Spec(m.to_string());
        let path = |p: &Option<String>| p.as_deref().map(FieldPath::parse).transpose();
        let list = match self.list.as_deref().map(str::trim) {
            None | Some("") | Some(".") => None,
            Some(p) => Some(FieldPath::parse(p)?),
        };
        Ok(OrdersSpec {
            call,
            list,
            order_id: match path(&self.order_id)? {
                None if purchase_ids => {
                    return Err(spec(
                        "where an order's id is in the listing: give --orders-order-id (or order_id in [orders]); purchases carry order ids (--order-id-field)",
                    ));
                }
                found => found.filter(|_| purchase_ids),
            },
            user: path(&self.user)?,
            quantity: path(&self.quantity)?.ok_or_else(|| {
                spec("where an order's quantity is in the listing: give --orders-quantity (or quantity in [orders])")
            })?,
            request_id: path(&self.request_id)?,
        })
    }
}
