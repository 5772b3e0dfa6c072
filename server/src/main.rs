//! `server`: the flash-sale checkout gRPC server. Parses flags, sets up logging, serves until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use flashsale_server::{ServerConfig, ServerError, run, shutdown, telemetry};

/// Flash-sale checkout gRPC server (flashsale.v1.Checkout, reflection and grpc.health.v1).
///
/// Every flag can also be set through the environment variable named in its help.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "FLASHSALE_LISTEN", default_value = "0.0.0.0:50051")]
    listen: SocketAddr,

    #[command(flatten)]
    config: ServerConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init("info");
    match serve(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("server: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: cli.listen,
            source,
        })?;
    run(listener, cli.config, shutdown::signal()).await
}
