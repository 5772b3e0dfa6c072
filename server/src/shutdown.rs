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
/// this a second one would be ignored). For binaries only.
pub async fn signal_then_force_exit() {
    signal().await;
    tokio::spawn(async {
        signal().await;
        tracing::warn!("second signal: exiting at once");
        std::process::exit(FORCED_EXIT_STATUS);
    });
}
