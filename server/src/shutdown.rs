//! Resolves when the process is asked to stop (SIGINT or SIGTERM); a second signal ends the
//! process at once.

/// Exit status when a second signal cuts the graceful shutdown short.
pub const FORCED_EXIT_STATUS: i32 = 130;

/// Waits for Ctrl-C or, on Unix, SIGTERM (what `docker stop` sends).
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C, shutting down"),
        () = term => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// [`signal`], after which a second SIGINT/SIGTERM exits the process at once with
/// [`FORCED_EXIT_STATUS`] (once tokio handles a signal its default action is gone, so without
/// this a second one would be ignored). The same listeners see both signals, so none is lost
/// between the first and the second. For binaries only.
#[cfg(unix)]
pub async fn signal_then_force_exit() {
    use tokio::signal::unix::{SignalKind, signal as listen};
    let (mut int, mut term) = match (
        listen(SignalKind::interrupt()),
        listen(SignalKind::terminate()),
    ) {
        (Ok(int), Ok(term)) => (int, term),
        (Err(err), _) | (_, Err(err)) => {
            tracing::error!(%err, "cannot listen for SIGINT/SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = int.recv() => tracing::info!("received SIGINT, shutting down (again to exit at once)"),
        _ = term.recv() => tracing::info!("received SIGTERM, shutting down (again to exit at once)"),
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(FORCED_EXIT_STATUS);
    });
}

/// [`signal`] (no second-signal handling off Unix).
#[cfg(not(unix))]
pub async fn signal_then_force_exit() {
    signal().await;
}
