//! Prometheus metrics of the server (`server --metrics-listen ADDR`, served at `/metrics` by
//! [`http`]), through `prometheus-client`, named by the Prometheus conventions:
//!
//! - `flashsale_rpc_requests_total{method,code}`: RPCs by method and gRPC status code;
//! - `flashsale_rpc_duration_seconds{method}`: histogram, from the request to its response
//!   headers (the whole call for unary methods);
//! - `flashsale_rpc_in_flight`: requests being handled;
//! - `flashsale_round`, `flashsale_stock`, `flashsale_initial_stock`, `flashsale_orders`,
//!   `flashsale_units_sold`, `flashsale_book_overflow`: the current round, read from the store
//!   (GetStock's snapshot) at scrape time; `flashsale_strategy_info{strategy}` is 1 for the
//!   round's safe strategy.
//!
//! The hot path ([`layer`]) takes no lock: every `{method,code}` counter and every histogram is
//! created when the server starts, and requests only bump atomics through clones of them.

pub mod histogram;
pub mod http;
pub mod layer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tonic::Code;

use crate::store::Store;
use histogram::AtomicHistogram;
pub use layer::MetricsLayer;

/// `--metrics-listen`: where the server serves `/metrics` (off when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9090); off when unset.
    #[arg(long, env = "FLASHSALE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

/// The methods with their own label value; any other path counts as `other`.
pub const METHODS: [&str; 9] = [
    "flashsale.v1.Checkout/PurchaseBuggy",
    "flashsale.v1.Checkout/PurchaseUnstable",
    "flashsale.v1.Checkout/PurchaseSafe",
    "flashsale.v1.Checkout/GetStock",
    "flashsale.v1.Checkout/Reset",
    "flashsale.v1.Checkout/ListOrders",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    OTHER,
];

/// The label value of paths not in [`METHODS`] (reflection, unknown methods, not gRPC).
pub const OTHER: &str = "other";

/// The 17 gRPC status codes, in numeric order.
const CODES: usize = 17;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StrategyLabel {
    strategy: &'static str,
}

/// The server's metrics: the registry (encoded at scrape time) and the handles the hot path
/// bumps.
pub struct Metrics {
    registry: Registry,
    /// `requests[method][code]`.
    requests: Vec<[Counter; CODES]>,
    durations: Vec<AtomicHistogram>,
    in_flight: Gauge,
    round: Round,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("methods", &METHODS.len())
            .field("in_flight", &self.in_flight.get())
            .finish_non_exhaustive()
    }
}

/// Gauges of the current round, set from the store's snapshot at each scrape.
#[derive(Debug, Default)]
struct Round {
    round: Gauge,
    stock: Gauge,
    initial_stock: Gauge,
    orders: Gauge,
    units_sold: Gauge,
    book_overflow: Gauge,
    up: Gauge,
    strategy: Family<StrategyLabel, Gauge<i64, AtomicI64>>,
}

impl Metrics {
    /// Metrics of a server over `store`, every label set created up front.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let mut registry = Registry::with_prefix("flashsale");
        let requests_family = Family::<RpcLabels, Counter>::default();
        let durations_family = Family::<MethodLabel, AtomicHistogram>::default();
        let requests = METHODS
            .iter()
            .map(|&method| {
                std::array::from_fn(|code| {
                    let code = flashsale::status::name(Code::from_i32(code as i32));
                    requests_family
                        .get_or_create(&RpcLabels { method, code })
                        .clone()
                })
            })
            .collect();
        let durations = METHODS
            .iter()
            .map(|&method| {
                durations_family
                    .get_or_create(&MethodLabel { method })
                    .clone()
            })
            .collect();
        registry.register(
            "rpc_requests",
            "RPCs handled, by method and gRPC status code",
            requests_family,
        );
        registry.register_with_unit(
            "rpc_duration",
            "Time from a request to its response headers (the whole call for unary methods)",
            Unit::Seconds,
            durations_family,
        );
        let in_flight = Gauge::default();
        registry.register("rpc_in_flight", "Requests being handled", in_flight.clone());
        let round = Round::default();
        let gauges: [(&str, &str, &Gauge); 7] = [
            ("round", "The current round", &round.round),
            ("stock", "Stock of the current round", &round.stock),
            (
                "initial_stock",
                "Stock the current round started with",
                &round.initial_stock,
            ),
            (
                "orders",
                "Orders placed in the current round",
                &round.orders,
            ),
            (
                "units_sold",
                "Units sold in the current round",
                &round.units_sold,
            ),
            (
                "book_overflow",
                "Orders of the current round placed after its book was full",
                &round.book_overflow,
            ),
            (
                "store_up",
                "1 when the last scrape could read the store",
                &round.up,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "strategy",
            "1 for the current round's safe strategy",
            round.strategy.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            in_flight,
            round,
            store,
        }
    }

    /// The label index of a request path (`/package.Service/Method`).
    pub fn method_index(path: &str) -> usize {
        let name = path.strip_prefix('/').unwrap_or(path);
        METHODS
            .iter()
            .position(|&m| m == name)
            .unwrap_or(METHODS.len() - 1)
    }

    /// Counts one finished request of method `method` (an index from [`Self::method_index`]).
    pub fn record(&self, method: usize, code: Code, took: std::time::Duration) {
        if let Some(by_code) = self.requests.get(method) {
            by_code[(code as usize).min(CODES - 1)].inc();
        }
        if let Some(histogram) = self.durations.get(method) {
            histogram.observe(took);
        }
    }

    /// The in-flight gauge.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// Requests of `method` (a [`METHODS`] value) that ended with `code`, so far.
    pub fn requests(&self, method: &str, code: Code) -> u64 {
        let index = Self::method_index(method);
        self.requests
            .get(index)
            .map_or(0, |by_code| by_code[(code as usize).min(CODES - 1)].get())
    }

    /// The OpenMetrics text of every metric, the round's read from the store now.
    pub async fn scrape(&self) -> Result<String, std::fmt::Error> {
        let r = &self.round;
        match self.store.snapshot().await {
            Ok(s) => {
                r.round.set(i64::try_from(s.round).unwrap_or(i64::MAX));
                r.stock.set(s.stock);
                r.initial_stock.set(s.initial_stock);
                r.orders.set(i64::try_from(s.orders).unwrap_or(i64::MAX));
                r.units_sold
                    .set(i64::try_from(s.units_sold).unwrap_or(i64::MAX));
                r.book_overflow
                    .set(i64::try_from(s.book_overflow).unwrap_or(i64::MAX));
                r.strategy.clear();
                r.strategy
                    .get_or_create(&StrategyLabel {
                        strategy: s.strategy.name(),
                    })
                    .set(1);
                r.up.set(1);
            }
            Err(err) => {
                tracing::warn!(%err, "metrics: cannot read the store");
                r.up.set(0);
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
