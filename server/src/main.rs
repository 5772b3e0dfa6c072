//! `server`: the flash-sale checkout gRPC server. Parses flags, sets up logging, serves until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use flashsale_server::metrics::MetricsArgs;
use flashsale_server::{
    ServerConfig, ServerError, StoreConfig, bind_metrics, open_store, run_with_metrics, shutdown,
    telemetry,
};

/// Flash-sale checkout gRPC server (flashsale.v1.Checkout, reflection and grpc.health.v1).
///
/// Every flag can also be set through the environment variable named in its help.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "FLASHSALE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,

    /// Runtime worker threads [default: available cores]. 1 (also the default on a single
    /// available core, e.g. under `taskset -c 0`) runs a single-threaded runtime: on one core
    /// it serves as many requests with much fairer tails (no LIFO-slot starvation). The buggy
    /// path races either way (its simulated latency is an await point).
    #[arg(long, env = "FLASHSALE_WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,

    #[command(flatten)]
    config: ServerConfig,

    #[command(flatten)]
    store: StoreConfig,

    #[command(flatten)]
    metrics: MetricsArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init("info");
    let threads = cli.worker_threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let runtime = match threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    let result = match runtime {
        Ok(runtime) => runtime.block_on(serve(cli)),
        Err(err) => Err(ServerError::Runtime(err)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("server: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> Result<(), ServerError> {
    let store = open_store(&cli.store, &cli.config).await?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: cli.listen,
            source,
        })?;
    let metrics = bind_metrics(&cli.metrics).await?;
    run_with_metrics(
        listener,
        metrics,
        store,
        cli.config,
        shutdown::signal_then_force_exit(),
    )
    .await
}
