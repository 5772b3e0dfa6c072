//! Logging setup shared by the binaries: `tracing` to stderr, filtered by `RUST_LOG`, coloured
//! only when stderr is a terminal.

use tracing_subscriber::EnvFilter;

/// Added to the default filter: h2 logs a WARN line per event for some client misbehaviour
/// (e.g. each stream of a rapid-reset flood), which lets any client flood the log. The
/// connection-level outcome is still visible at debug level with `RUST_LOG`.
const QUIET_H2: &str = "h2=error";

/// Installs a stderr subscriber; `RUST_LOG` overrides the `default` directive (e.g. "info").
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},{QUIET_H2}")));
    // A second call (tests, embedded use) keeps the first subscriber.
    // Colour only for a person watching a terminal, never into a file or a pipe.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
