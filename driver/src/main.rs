//! `driver`: parses the command line, sets up logging, runs the library, prints the report and
//! exits 0 (audit passed), 1 (audit failed), 2 (usage or connection error), 3 (distributed
//! run that lost a worker), 4 (inconclusive) or 5 (stopped early by Ctrl-C or SIGTERM, nothing
//! failed in what was sent), also when stdout's reader has gone away.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use flashsale_driver::Report;
use flashsale_driver::checkout::normalize_target;
use flashsale_driver::cli::{
    Cli, Command, CompareArgs, CoordinatorArgs, LoadArgs, OutputFormat, RunArgs, WebArgs,
};
use flashsale_driver::cluster::auth::{ClusterToken, TOKEN_ENV};
use flashsale_driver::cluster::coordinator::CoordinatorConfig;
use flashsale_driver::observe::stop::on_signals;
use flashsale_driver::report::comparison::Comparison;
use flashsale_driver::report::csv::CsvError;
use flashsale_driver::report::text::printable;
use flashsale_driver::web::WebConfig;
use flashsale_driver::{EXIT_AUDIT_FAILED, EXIT_ERROR, EXIT_PASS, EXIT_STOPPED};
use flashsale_server::shutdown;

use anyhow::Context;

fn main() -> ExitCode {
    let args = std::env::args_os().len();
    if let Some(help) = flashsale_driver::cli::compose_help(args, |name| std::env::var(name).ok()) {
        say(&help);
        return ExitCode::from(EXIT_ERROR);
    }
    let cli = Cli::parse();
    flashsale_server::telemetry::init("warn,flashsale_driver=info");
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // The message may relay a peer's words (a worker's error, a server's status).
            let message = format!("{err:#}");
            say(&format!("driver: error: {}", printable(&message)));
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
            runtime.block_on(flashsale_driver::cluster::worker::run(
                &url,
                &args.name(),
                args.token.as_ref(),
                shutdown::signal(),
            ))?;
            Ok(EXIT_PASS)
        }
        Some(Command::Probe(args)) => {
            let url = flashsale_driver::checkout::normalize_direct_target(&args.target)?;
            let connection = args.connect.to_connection(std::slice::from_ref(&url))?;
            let serving = runtime.block_on(flashsale_driver::checkout::probe::probe(
                &url,
                &connection,
                &args.service,
                args.timeout,
            ))?;
            Ok(if serving {
                EXIT_PASS
            } else {
                EXIT_AUDIT_FAILED
            })
        }
        Some(Command::Compare(args)) => runtime.block_on(compare(&args)),
        Some(Command::Web(args)) => runtime.block_on(web(args)),
    }
}

/// `driver compare`: exit 0 when every run completed, whatever the verdicts; 5 when it was
/// stopped early.
async fn compare(args: &CompareArgs) -> anyhow::Result<u8> {
    let spec = args.to_spec()?;
    let mut html = args.load.report.as_deref().map(create_report).transpose()?;
    let mut files = Files::open(&args.load)?;
    let comparison =
        flashsale_driver::run::compare::compare(&spec, progress(args.load.output), on_signals())
            .await?;
    files.write(&comparison)?;
    emit(&comparison, args.load.output, html.as_mut())?;
    let stopped = comparison.runs.len() < spec.runs.len()
        || comparison.runs.iter().any(|r| r.report.stopped.is_some());
    Ok(if stopped { EXIT_STOPPED } else { EXIT_PASS })
}

async fn standalone(args: &RunArgs) -> anyhow::Result<u8> {
    let spec = args.to_spec()?;
    let mut html = args.load.report.as_deref().map(create_report).transpose()?;
    let mut files = Files::open(&args.load)?;
    let report =
        flashsale_driver::run_with_progress(&spec, progress(args.load.output), on_signals())
            .await?;
    files.write(&report)?;
    emit(&report, args.load.output, html.as_mut())?;
    Ok(report.exit_code())
}

async fn coordinator(args: CoordinatorArgs) -> anyhow::Result<u8> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot bind {}", args.listen))?;
    let token = args.token.unwrap_or_else(|| {
        let token = ClusterToken::generate();
        eprintln!(
            "driver: cluster token (pass it to workers and runs with --token or {TOKEN_ENV}): {}",
            token.expose()
        );
        token
    });
    if let Some(web) = args.web {
        // The dashboard submits its runs to this coordinator, over loopback.
        let port = listener.local_addr()?.port();
        let config = WebConfig {
            target: None,
            coordinator: Some(format!("http://127.0.0.1:{port}")),
            token: Some(token.clone()),
        };
        let web_listener = bind_web(web).await?;
        tokio::spawn(async move {
            if let Err(err) =
                flashsale_driver::web::serve(web_listener, config, shutdown::signal()).await
            {
                say(&format!("driver: dashboard: {err}"));
            }
        });
    }
    let config = CoordinatorConfig {
        expect_workers: args.expect_workers as usize,
        default_target: args.target.as_deref().map(normalize_target).transpose()?,
        join_timeout: args.join_timeout,
        admin_token: args.admin_token,
        token,
    };
    flashsale_driver::cluster::coordinator::run(
        listener,
        config,
        shutdown::signal_then_force_exit(),
    )
    .await?;
    Ok(EXIT_PASS)
}

/// `driver web`: serves the dashboard until Ctrl-C or SIGTERM.
async fn web(args: WebArgs) -> anyhow::Result<u8> {
    let listener = bind_web(args.listen).await?;
    let token = match args.token {
        Some(token) => Some(token),
        None if !args.listen.ip().is_loopback() => {
            let token = ClusterToken::generate();
            eprintln!(
                "driver: dashboard token (type it in the page, or set --token or {TOKEN_ENV}): {}",
                token.expose()
            );
            Some(token)
        }
        None => None,
    };
    let config = WebConfig {
        target: args.target.as_deref().map(normalize_target).transpose()?,
        coordinator: None,
        token,
    };
    flashsale_driver::web::serve(listener, config, shutdown::signal()).await?;
    Ok(EXIT_PASS)
}

/// Binds the dashboard's listener and says where it is.
async fn bind_web(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the dashboard to {addr}"))?;
    let local = listener.local_addr()?;
    say(&format!("driver: dashboard on http://{local}/"));
    Ok(listener)
}

/// A result that prints as a table or JSON and renders as an HTML page.
trait Render {
    fn table(&self) -> String;
    fn json(&self) -> String;
    fn page(&self) -> String;
    fn junit(&self) -> String;
    fn csv(&self, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, CsvError>;
}

impl Render for Report {
    fn table(&self) -> String {
        self.to_table()
    }
    fn json(&self) -> String {
        self.to_json()
    }
    fn page(&self) -> String {
        flashsale_driver::report::html::report_page(self)
    }
    fn junit(&self) -> String {
        flashsale_driver::report::junit::report_xml(self)
    }
    fn csv(&self, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, CsvError> {
        flashsale_driver::report::csv::write_report(dir, self)
    }
}

impl Render for Comparison {
    fn table(&self) -> String {
        self.to_table()
    }
    fn json(&self) -> String {
        self.to_json()
    }
    fn page(&self) -> String {
        flashsale_driver::report::html::comparison_page(self)
    }
    fn junit(&self) -> String {
        flashsale_driver::report::junit::comparison_xml(self)
    }
    fn csv(&self, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, CsvError> {
        flashsale_driver::report::csv::write_comparison(dir, self)
    }
}

/// The JUnit report and the CSV directory, prepared before the run (a bad path fails before
/// any load is sent) and written once it is over.
struct Files {
    junit: Option<(std::fs::File, std::path::PathBuf)>,
    csv: Option<std::path::PathBuf>,
}

impl Files {
    fn open(load: &LoadArgs) -> anyhow::Result<Self> {
        let junit = load.junit.as_deref().map(create_report).transpose()?;
        if let Some(dir) = &load.csv {
            flashsale_driver::report::csv::prepare(dir)?;
        }
        Ok(Self {
            junit,
            csv: load.csv.clone(),
        })
    }

    fn write(&mut self, result: &impl Render) -> anyhow::Result<()> {
        if let Some((file, path)) = &mut self.junit {
            file.write_all(result.junit().as_bytes())
                .with_context(|| format!("cannot write the JUnit report {}", path.display()))?;
        }
        if let Some(dir) = &self.csv {
            result.csv(dir)?;
        }
        Ok(())
    }
}

/// Writes `result`'s page to the HTML report, if any, and prints `result` on stdout in
/// `output` form.
fn emit(
    result: &impl Render,
    output: OutputFormat,
    html: Option<&mut (std::fs::File, std::path::PathBuf)>,
) -> anyhow::Result<()> {
    if let Some((file, path)) = html {
        file.write_all(result.page().as_bytes())
            .with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    let text = match output {
        OutputFormat::Table => result.table(),
        OutputFormat::Json => result.json() + "\n",
    };
    print_stdout(&text).context("cannot write the report to stdout")
}

/// Writes `text` to stdout. A reader that went away (`driver ... | head -1`: a broken pipe)
/// is not an error: the run's exit status still tells the verdict.
fn print_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            tracing::debug!("stdout closed by its reader; the report was not printed in full");
            Ok(())
        }
        other => other,
    }
}

/// Writes a line to stderr; a closed stderr (`2>&1 | head`) is no reason to panic.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Live progress only for people: stdout is a terminal and the output is the table.
fn progress(output: OutputFormat) -> bool {
    output == OutputFormat::Table && std::io::stdout().is_terminal()
}

/// Creates the HTML report file up front, so a bad path fails before the run, not after.
fn create_report(path: &std::path::Path) -> anyhow::Result<(std::fs::File, std::path::PathBuf)> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot create the report {}", path.display()))?;
    Ok((file, path.to_path_buf()))
}
