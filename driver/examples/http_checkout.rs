//! The original demo's checkout as an HTTP/JSON service (the test suite's
//! `driver/tests/support/http_checkout.rs`), to try and measure the driver's HTTP checkouts by
//! hand: `cargo run --release -p flashsale-driver --example http_checkout -- [ADDR] [LATENCY_MS]`
//! (default 127.0.0.1:8080 and 5 ms). Prints its URL, serves until Ctrl-C.

#[path = "../tests/support/http_checkout.rs"]
mod http_checkout;

use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:8080").parse()?;
    let latency_ms: u64 = args.next().as_deref().unwrap_or("5").parse()?;
    let checkout = http_checkout::serve_on(
        addr,
        http_checkout::Options {
            latency: Duration::from_millis(latency_ms),
            ..http_checkout::Options::default()
        },
    )
    .await?;
    println!("{}", checkout.url(false));
    tokio::signal::ctrl_c().await?;
    Ok(())
}
