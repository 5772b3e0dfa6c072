//! Serving a tonic router with the hardening of this crate: our accept loop
//! ([`crate::accept`]), the [`crate::guard`] layer and a shutdown with a deadline.
//!
//! When `shutdown` resolves the server stops accepting, sends GOAWAY on every connection and
//! moves the [`Drain`] to `Draining` (health watches end); in-flight calls then have `grace` to
//! finish. After it the drain moves to `Closing`: whatever is still open is ended with
//! `UNAVAILABLE`, and [`FORCE_AFTER`] later the server returns even if some client still holds
//! its connection open.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::Router;
use tower_layer::{Identity, Stack};

use crate::accept::{self, AcceptLimits};
use crate::drain::{Drain, Phase};
use crate::guard::GuardLayer;
use crate::metrics::MetricsLayer;

/// How long after the grace period connections may take to close before we stop waiting.
pub const FORCE_AFTER: Duration = Duration::from_secs(1);

/// A tonic router behind the guard layer, itself behind the metrics layer (which counts the
/// guard's refusals too).
pub type GuardedRouter = Router<Stack<GuardLayer, Stack<MetricsLayer, Identity>>>;

/// Serves `router` on `listener` until `shutdown`, then drains within `grace` (see the module
/// docs). `drain` must be the one `router`'s [`GuardLayer`] was built with.
pub async fn serve(
    router: GuardedRouter,
    listener: TcpListener,
    limits: AcceptLimits,
    drain: Drain,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = {
        let drain = drain.clone();
        async move {
            shutdown.await;
            drain.advance(Phase::Draining);
            let _ = started_tx.send(());
        }
    };
    let served = router.serve_with_incoming_shutdown(accept::incoming(listener, limits), signal);
    tokio::pin!(served);
    let grace_over = async {
        match started_rx.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = &mut served => return result,
        () = grace_over => {}
    }
    tracing::warn!(
        ?grace,
        "shutdown grace period over: ending the calls and streams still open"
    );
    drain.advance(Phase::Closing);
    match tokio::time::timeout(FORCE_AFTER, &mut served).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("some connections are still open; stopping without them");
            Ok(())
        }
    }
}
