//! Bench-only load generator for `GetStock`, the benchmark's "what tonic costs" baseline.
//!
//! The driver has no GetStock mode (it is a purchase auditor, and a read-only mode would be a
//! product feature nobody asked for), so `bench/bench.py` measures the baseline with this
//! bench-only binary. It is a workspace member of its own rather than a driver example so that
//! it builds with exactly the driver's dependency features (an example would pull in the
//! dev-only `tokio/test-util`, whose clock takes a mutex on every `Instant::now`).
//!
//! It has the driver's engine shape so the two are comparable: N users spread over HTTP/2
//! connections, the connections over OS threads that each run a single-threaded runtime, all
//! connections up before the users start, one task per connection polling its users,
//! per-connection counters and HDR histogram merged at the end, and the same per-call work
//! (request deadline plus a client-side timeout). `--rpc purchase-safe` runs the same loop on
//! `PurchaseSafe`, to tell how much of a difference is the client's.
//!
//! ```sh
//! cargo run --release --bin getstock-load -- \
//!     --target 127.0.0.1:50051 --users 1000 --duration 10s
//! ```
//!
//! Prints one JSON object: `throughput_rps`, `attempts`, `errors`, `elapsed_s` and `latency_ms`
//! (`p50`, `p90`, `p99`, `p999`, `max`, `mean`). Exits 1 when any call failed, 2 on usage or
//! connection errors.

use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use flashsale::pb::{self, checkout_client::CheckoutClient};
use flashsale_driver::checkout::{connect, normalize_target};
use flashsale_driver::cli::parse_positive_duration;
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use tokio::time::Instant;
use tonic::transport::Channel;

/// Closed-loop load on one Checkout RPC for a fixed time.
#[derive(Debug, Parser)]
struct Args {
    /// Server as host:port or http://host:port.
    #[arg(long)]
    target: String,
    /// Concurrent users (requests in flight).
    #[arg(short, long, default_value_t = 1000)]
    users: u32,
    /// HTTP/2 connections [default: one per 100 users, like the driver].
    #[arg(long)]
    connections: Option<u32>,
    /// OS threads [default: available cores, like the driver].
    #[arg(long)]
    threads: Option<u32>,
    /// How long the users call back to back.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    duration: Duration,
    /// Deadline of each call.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    timeout: Duration,
    /// Which RPC to call.
    #[arg(long, value_enum, default_value_t = Rpc::GetStock)]
    rpc: Rpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Rpc {
    GetStock,
    PurchaseSafe,
}

/// One connection's (then the merged) counters.
struct Tally {
    attempts: u64,
    errors: u64,
    latency_us: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            attempts: 0,
            errors: 0,
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.attempts += other.attempts;
        self.errors += other.errors;
        self.latency_us.add(&other.latency_us).expect("same bounds");
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok((tally, elapsed)) => {
            let secs = elapsed.as_secs_f64();
            let ms = |q: f64| tally.latency_us.value_at_quantile(q) as f64 / 1000.0;
            let report = serde_json::json!({
                "rpc": format!("{:?}", args.rpc),
                "users": args.users,
                "elapsed_s": secs,
                "attempts": tally.attempts,
                "errors": tally.errors,
                "throughput_rps": if secs > 0.0 { tally.attempts as f64 / secs } else { 0.0 },
                "latency_ms": {
                    "mean": tally.latency_us.mean() / 1000.0,
                    "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999),
                    "max": tally.latency_us.max() as f64 / 1000.0,
                },
            });
            println!("{report}");
            if tally.errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(err) => {
            eprintln!("getstock-load: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<(Tally, Duration)> {
    let url = normalize_target(&args.target)?;
    let users = args.users.max(1);
    let connections = args
        .connections
        .unwrap_or_else(|| users.div_ceil(100))
        .clamp(1, users);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let threads = args.threads.unwrap_or(cores).clamp(1, connections);
    let barrier = Arc::new(Barrier::new(threads as usize));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            // Same split as the driver: user u on connection u % C, connection c on thread c % T.
            let plan: Vec<u32> = (t..connections)
                .step_by(threads as usize)
                .map(|c| (c..users).step_by(connections as usize).count() as u32)
                .collect();
            let (url, barrier) = (url.clone(), barrier.clone());
            let (duration, timeout, rpc) = (args.duration, args.timeout, args.rpc);
            std::thread::spawn(move || load_thread(&url, plan, &barrier, duration, timeout, rpc))
        })
        .collect();
    let mut total = Tally::new();
    let mut elapsed = Duration::ZERO;
    for handle in handles {
        let (tally, took) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        total.merge(&tally);
        elapsed = elapsed.max(took);
    }
    Ok((total, elapsed))
}

fn load_thread(
    url: &str,
    plan: Vec<u32>,
    barrier: &Barrier,
    duration: Duration,
    timeout: Duration,
    rpc: Rpc,
) -> anyhow::Result<(Tally, Duration)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let channels = runtime.block_on(futures::future::try_join_all(
        plan.iter().map(|_| connect(url)),
    ));
    barrier.wait();
    let channels = channels?;
    runtime.block_on(async move {
        let started = Instant::now();
        let deadline = started + duration;
        let per_connection = channels
            .into_iter()
            .zip(plan)
            .map(|(channel, users)| drive_connection(channel, users, deadline, timeout, rpc));
        let mut tally = Tally::new();
        for t in futures::future::join_all(per_connection).await {
            tally.merge(&t);
        }
        Ok((tally, started.elapsed()))
    })
}

async fn drive_connection(
    channel: Channel,
    users: u32,
    deadline: Instant,
    timeout: Duration,
    rpc: Rpc,
) -> Tally {
    let tally = std::cell::RefCell::new(Tally::new());
    let client = CheckoutClient::new(channel);
    let mut running: FuturesUnordered<_> = (0..users)
        .map(|u| {
            let mut client = client.clone();
            let tally = &tally;
            let user_id = format!("bench-{u}-{}", std::process::id());
            async move {
                loop {
                    let started = Instant::now();
                    let ok = call(&mut client, rpc, &user_id, timeout).await;
                    let mut t = tally.borrow_mut();
                    t.attempts += 1;
                    t.errors += u64::from(!ok);
                    let us = started.elapsed().as_micros().max(1) as u64;
                    t.latency_us.saturating_record(us);
                    drop(t);
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            }
        })
        .collect();
    while running.next().await.is_some() {}
    drop(running);
    tally.into_inner()
}

/// One call with the driver's deadline handling; `true` when it answered OK.
async fn call(
    client: &mut CheckoutClient<Channel>,
    rpc: Rpc,
    user_id: &str,
    timeout: Duration,
) -> bool {
    let call = async {
        match rpc {
            Rpc::GetStock => {
                let mut request = tonic::Request::new(pb::GetStockRequest {});
                request.set_timeout(timeout);
                client.get_stock(request).await.is_ok()
            }
            Rpc::PurchaseSafe => {
                let mut request = tonic::Request::new(pb::PurchaseRequest {
                    user_id: user_id.to_string(),
                    quantity: 1,
                    ..Default::default()
                });
                request.set_timeout(timeout);
                client.purchase_safe(request).await.is_ok()
            }
        }
    };
    tokio::time::timeout(timeout, call).await.unwrap_or(false)
}
