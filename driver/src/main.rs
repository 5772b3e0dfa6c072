//! `driver`: parses the command line, sets up logging, runs the library, prints the report and
//! exits 0 (audit passed), 1 (audit failed) or 2 (usage or connection error).

use std::process::ExitCode;

use clap::Parser;
use flashsale_driver::cli::{Cli, OutputFormat};
use flashsale_driver::{EXIT_AUDIT_FAILED, EXIT_ERROR, EXIT_PASS};

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
    let spec = cli.run.to_spec()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(flashsale_driver::run(&spec))?;
    match cli.run.output {
        OutputFormat::Table => print!("{}", report.to_table()),
        OutputFormat::Json => println!("{}", report.to_json()),
    }
    Ok(if report.audit.passed {
        EXIT_PASS
    } else {
        EXIT_AUDIT_FAILED
    })
}
