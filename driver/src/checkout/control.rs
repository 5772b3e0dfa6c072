//! Control calls made around a run on their own connection (Reset verified, GetStock, settling,
//! reading the order book), carrying the admin token when one is given and the run's metadata
//! (`-H`; the admin token's `authorization` wins over one given with `-H`).

use std::time::Duration;

use super::custom::CustomConnection;
use super::{CheckoutChannel, connect_checkout};
use crate::checkout::book::{Book, BookState};
use crate::error::DriverError;
use crate::spec::Connection;
use flashsale::pb::{self, checkout_client::CheckoutClient};
use flashsale_server::hardening::AdminToken;

/// Deadline of a control call.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of reading the whole order book.
const LIST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the book could not be read, in words.
fn book_refused(status: &tonic::Status) -> BookState {
    match status.code() {
        // Only UNIMPLEMENTED means "no book": any other failure of a ListOrders that exists
        // leaves the book unknown, never absent.
        tonic::Code::Unimplemented => BookState::Unavailable(
            "the server does not implement ListOrders (no order book)".to_string(),
        ),
        code => BookState::Failed(format!(
            "ListOrders failed: {} ({code:?})",
            status.message()
        )),
    }
}

/// The connection control calls go over.
#[derive(Debug, Clone)]
enum Backend {
    Builtin(CheckoutClient<CheckoutChannel>),
    /// A checkout of the team's own: its stock and reset calls, no rounds or counters; its
    /// order listing as the book when its spec has one.
    Custom(CustomConnection),
}

/// Control calls made around a run, on their own connection.
#[derive(Debug, Clone)]
pub struct Control {
    url: String,
    backend: Backend,
    /// The built-in checkout's connection, to find out why a first call failed.
    channel: Option<CheckoutChannel>,
    admin_token: Option<AdminToken>,
    /// TLS without a client certificate (for hints in errors).
    anonymous_tls: bool,
}

impl Control {
    /// Control calls on a plaintext connection to `url`, without metadata.
    pub async fn connect(url: &str) -> Result<Self, DriverError> {
        Self::connect_with(url, &Connection::default()).await
    }

    /// Control calls on a connection to `url` made as `connection` says (TLS, metadata).
    pub async fn connect_with(url: &str, connection: &Connection) -> Result<Self, DriverError> {
        let (backend, channel) = match &connection.custom {
            None => {
                let channel = connect_checkout(url, connection).await?;
                (
                    Backend::Builtin(CheckoutClient::new(channel.clone())),
                    Some(channel),
                )
            }
            Some(api) => (
                Backend::Custom(CustomConnection::connect(url, connection, api).await?),
                None,
            ),
        };
        Ok(Self {
            url: url.to_string(),
            backend,
            channel,
            admin_token: None,
            anonymous_tls: url.starts_with("https://")
                && connection.tls.as_ref().is_none_or(|t| t.identity.is_none()),
        })
    }

    /// Sends `token` as `authorization: Bearer <token>` on every control call.
    pub fn with_admin_token(mut self, token: Option<&str>) -> Result<Self, DriverError> {
        self.admin_token =
            token
                .map(AdminToken::new)
                .transpose()
                .map_err(|e| crate::spec::SpecError::Secret {
                    flag: "--admin-token",
                    reason: e.to_string(),
                })?;
        Ok(self)
    }

    /// Whether the checkout keeps order counters (GetStock's `orders` and `units_sold`): the
    /// built-in contract does, a checkout of the team's own reports its stock only.
    pub fn counters(&self) -> bool {
        matches!(self.backend, Backend::Builtin(_))
    }

    /// A control request for `message`: the control deadline and the admin token if any. Use
    /// it for every call on the control connection (admin calls such as Reset and ListOrders
    /// need the token).
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(CONTROL_TIMEOUT);
        if let Some(token) = &self.admin_token {
            flashsale_server::admin::attach(request.metadata_mut(), token);
        }
        request
    }

    /// A run's starting point: a verified Reset to `stock` (and `strategy`) when `reset`, else
    /// the stock as it is. When this first call fails with words that say little (an HTTP/1
    /// port, a gRPC server without the checkout), the error names the cause
    /// ([`super::diagnose`]).
    pub async fn begin(
        &mut self,
        reset: bool,
        stock: i64,
        strategy: Option<flashsale_server::Strategy>,
    ) -> Result<pb::StockReply, DriverError> {
        let first = if reset {
            self.reset_verified(stock, strategy).await
        } else {
            self.stock().await
        };
        let (Err(DriverError::Rpc { call, status, .. }), Some(channel)) = (&first, &self.channel)
        else {
            return first;
        };
        match super::diagnose::why_not_a_checkout(&self.url, channel, status).await {
            Some(why) => Err(DriverError::NotACheckout {
                call,
                target: self.url.clone(),
                why,
            }),
            None => first,
        }
    }

    /// Starts a new round on the server.
    pub async fn reset(
        &mut self,
        stock: i64,
        strategy: Option<flashsale_server::Strategy>,
    ) -> Result<pb::StockReply, DriverError> {
        let request = self.request(pb::ResetRequest {
            stock: Some(stock),
            safe_strategy: flashsale_server::Strategy::to_wire(strategy),
        });
        let client = match &mut self.backend {
            Backend::Builtin(client) => client,
            Backend::Custom(custom) => {
                let reset = custom.reset(stock, CONTROL_TIMEOUT).await;
                reset.map_err(|reason| self.custom_error("reset", reason))?;
                return self.stock().await;
            }
        };
        client
            .reset(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| self.rpc_error("Reset", status))
    }

    /// Starts a new round with `stock` units and checks that it took effect: the round moved
    /// on (and stayed), and Reset's reply shows exactly that stock and an empty book. A checkout
    /// whose Reset does nothing would otherwise be audited against whatever state it happens
    /// to be in. Returns that reply: the run's starting point.
    pub async fn reset_verified(
        &mut self,
        stock: i64,
        strategy: Option<flashsale_server::Strategy>,
    ) -> Result<pb::StockReply, DriverError> {
        if matches!(self.backend, Backend::Custom(_)) {
            return self.reset_custom(stock).await;
        }
        let previous = self.stock().await?;
        let reply = self.reset(stock, strategy).await?;
        let now = self.stock().await?;
        let mut wrong = Vec::new();
        if reply.round == previous.round {
            wrong.push(format!(
                "the round stayed {} (Reset's reply and GetStock before it agree)",
                previous.round
            ));
        } else if now.round != reply.round {
            wrong.push(format!(
                "the round moved on again right after Reset ({} -> {}): somebody else is resetting",
                reply.round, now.round
            ));
        }
        if reply.stock != stock || reply.initial_stock != stock || now.initial_stock != stock {
            wrong.push(format!(
                "stock {} (initial {}, now initial {}) instead of {stock}",
                reply.stock, reply.initial_stock, now.initial_stock
            ));
        }
        if reply.orders != 0 || reply.units_sold != 0 {
            wrong.push(format!(
                "{} orders / {} units already booked in the new round instead of none",
                reply.orders, reply.units_sold
            ));
        }
        let wanted = flashsale_server::Strategy::to_wire(strategy);
        if strategy.is_some() && now.safe_strategy != wanted {
            wrong.push(format!(
                "safe strategy {} instead of {}",
                now.safe_strategy, wanted
            ));
        }
        if !wrong.is_empty() {
            return Err(DriverError::ResetNotApplied {
                target: self.url.clone(),
                what: wrong.join("; "),
            });
        }
        if now.orders > 0 {
            // Reset took effect, but purchases this run did not send arrived before it
            // started (e.g. late requests of an earlier run, at a server that ignores rounds).
            // The audit starts from the empty round, so the book shows them as ghost orders.
            tracing::warn!(
                orders = now.orders,
                "orders this run did not send arrived between Reset and the users' start"
            );
        }
        Ok(reply)
    }

    /// Streams the order book of `after.round` into a [`Book`], reading request and user ids
    /// with the run's `prefix`. A book much longer than `after.orders` (what GetStock counts)
    /// is not read to the end (memory stays bounded). A server without `ListOrders` or a book that
    /// overflowed its cap gives [`BookState::Unavailable`], with the reason.
    ///
    /// A custom checkout's book is its own order listing, when its spec says how to list
    /// orders ([`CustomConnection::orders`]; round 0), bounded by the `acknowledged` purchases.
    pub async fn book(
        &mut self,
        after: &pb::StockReply,
        prefix: &str,
        acknowledged: u64,
    ) -> Result<BookState, DriverError> {
        if after.book_overflow > 0 {
            return Ok(BookState::Unavailable(format!(
                "the server's book reached its cap of {} orders and left {} orders out, so it can only be reconciled in part",
                after.book_cap, after.book_overflow
            )));
        }
        let limit = after.orders.saturating_mul(2).saturating_add(100_000);
        let mut request = self.request(pb::ListOrdersRequest { round: after.round });
        request.set_timeout(LIST_TIMEOUT);
        let client = match &mut self.backend {
            Backend::Builtin(client) => client,
            Backend::Custom(custom) => {
                return Ok(custom.orders(prefix, acknowledged, LIST_TIMEOUT).await);
            }
        };
        let mut stream = match client.list_orders(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Ok(book_refused(&status)),
        };
        let mut book = Book {
            round: after.round,
            entries: Vec::new(),
            ..Book::default()
        };
        loop {
            match stream.message().await {
                Ok(Some(batch)) => {
                    if batch.round != after.round {
                        return Ok(BookState::Failed(format!(
                            "ListOrders for round {} sent orders of round {}{}",
                            after.round,
                            batch.round,
                            if batch.round < after.round {
                                " (a book of an earlier round: the server did not start a new book on Reset)"
                            } else {
                                ""
                            }
                        )));
                    }
                    book.extend(prefix, &batch.orders);
                    if book.entries.len() as u64 > limit {
                        return Ok(BookState::Failed(format!(
                            "ListOrders sent more than {limit} orders while GetStock counts {}; stopped reading",
                            after.orders
                        )));
                    }
                }
                Ok(None) => return Ok(BookState::Complete(book)),
                Err(status) => return Ok(book_refused(&status)),
            }
        }
    }

    /// Reads the stock and ledger totals.
    pub async fn stock(&mut self) -> Result<pb::StockReply, DriverError> {
        let request = self.request(pb::GetStockRequest {});
        let client = match &mut self.backend {
            Backend::Builtin(client) => client,
            Backend::Custom(custom) => {
                let stock = custom.stock(CONTROL_TIMEOUT).await;
                let stock = stock.map_err(|reason| self.custom_error("stock", reason))?;
                // No rounds, counters or book: only the stock is known.
                return Ok(pb::StockReply {
                    stock,
                    ..pb::StockReply::default()
                });
            }
        };
        client
            .get_stock(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| self.rpc_error("GetStock", status))
    }

    /// A custom checkout's reset: the reset call, then its stock read back, which must be
    /// exactly `stock` (a reset that does nothing would leave the audit against whatever stock
    /// the checkout happens to hold). Without rounds, that is all that can be checked.
    async fn reset_custom(&mut self, stock: i64) -> Result<pb::StockReply, DriverError> {
        let now = self.reset(stock, None).await?;
        if now.stock != stock {
            return Err(DriverError::ResetNotApplied {
                target: self.url.clone(),
                what: format!(
                    "the stock call reads {} right after the reset call asked for {stock}",
                    now.stock
                ),
            });
        }
        Ok(pb::StockReply {
            initial_stock: stock,
            ..now
        })
    }

    fn custom_error(&self, call: &'static str, reason: String) -> DriverError {
        DriverError::CustomCall {
            call,
            target: self.url.clone(),
            reason,
        }
    }

    fn rpc_error(&self, call: &'static str, status: tonic::Status) -> DriverError {
        DriverError::Rpc {
            call,
            target: self.url.clone(),
            status: Box::new(super::explain(status, self.anonymous_tls)),
        }
    }
}
