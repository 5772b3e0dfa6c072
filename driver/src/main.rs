//! `driver`: parses the command line, sets up logging, runs the library, prints the report and
//! exits 0 (audit passed), 1 (audit failed) or 2 (usage or connection error).

use std::process::ExitCode;

use clap::Parser;
use flashsale_driver::cli::{Cli, Command, CoordinatorArgs, OutputFormat, RunArgs};
use flashsale_driver::client::normalize_target;
use flashsale_driver::coordinator::CoordinatorConfig;
use flashsale_driver::{EXIT_AUDIT_FAILED, EXIT_ERROR, EXIT_PASS};
use flashsale_server::shutdown;

fn main() -> ExitCode {
    let cli = Cli::parse();
    flashsale_server::telemetry::init("warn,flashsale_driver=info");
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("driver: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        None => runtime.block_on(standalone(&cli.run)),
        Some(Command::Coordinator(args)) => runtime.block_on(coordinator(args)),
        Some(Command::Worker(args)) => {
            let url = normalize_target(&args.coordinator)?;
            runtime.block_on(flashsale_driver::worker::run(
                &url,
                &args.name(),
                shutdown::signal(),
            ))?;
            Ok(EXIT_PASS)
        }
        Some(Command::Probe(args)) => {
            let serving = runtime.block_on(flashsale_driver::probe::probe(&args))?;
            Ok(if serving {
                EXIT_PASS
            } else {
                EXIT_AUDIT_FAILED
            })
        }
    }
}

async fn standalone(args: &RunArgs) -> anyhow::Result<u8> {
    let spec = args.to_spec()?;
    let report = flashsale_driver::run(&spec).await?;
    match args.output {
        OutputFormat::Table => print!("{}", report.to_table()),
        OutputFormat::Json => println!("{}", report.to_json()),
    }
    Ok(report.exit_code())
}

async fn coordinator(args: CoordinatorArgs) -> anyhow::Result<u8> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", args.listen))?;
    let config = CoordinatorConfig {
        expect_workers: args.expect_workers as usize,
        default_target: args.target.as_deref().map(normalize_target).transpose()?,
        join_timeout: args.join_timeout,
    };
    flashsale_driver::coordinator::run(listener, config, shutdown::signal()).await?;
    Ok(EXIT_PASS)
}
