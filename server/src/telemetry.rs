//! Logging setup shared by the binaries: `tracing` to stderr, filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs a stderr subscriber; `RUST_LOG` overrides the `default` directive (e.g. "info").
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A second call (tests, embedded use) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
