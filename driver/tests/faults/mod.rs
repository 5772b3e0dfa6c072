//! Fault-injecting checkout doubles: an in-process `flashsale.v1.Checkout` written from the
//! contract alone (no flashsale_server code), correct in `Fault::Correct` mode and wrong in
//! exactly one plausible way in every other mode. `start` serves one on 127.0.0.1:0 on a
//! runtime of its own, so both sync tests (which run the driver binary) and async tests can
//! use it.
//!
//! - `state`: the round, the book and the purchase logic each fault bends;
//! - `service`: the tonic service around it;
//! - `harness`: runs the driver binary against a double and asserts on its JSON report.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

pub mod harness;
pub mod service;
pub mod state;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flashsale::pb::{self, checkout_server::CheckoutServer};
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;

pub use service::Shared;
pub use state::{Config, Fault};

/// A double serving in the background; stops when dropped.
pub struct Running {
    url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Serves a double with `config` on 127.0.0.1:0. The socket is bound and listening before
/// this returns, so clients may connect at once.
pub fn start(config: Config) -> Running {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let shared = Arc::new(Shared::new(config));
    let service = CheckoutServer::new(service::Double(shared.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("fault-double".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("double's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                // Deadline-heavy overload makes clients reset streams by the thousand; h2's
                // rapid-reset guard would answer with GOAWAY (RESOURCE_EXHAUSTED), which is
                // not what these doubles are about.
                let serve = tonic::transport::Server::builder()
                    .http2_max_pending_accept_reset_streams(Some(1 << 20))
                    .http2_max_local_error_reset_streams(Some(1 << 20))
                    .add_service(service)
                    .serve_with_incoming(incoming);
                // A hard stop: dropping the server closes every connection at once.
                tokio::select! {
                    served = serve => served.expect("the double serves"),
                    _ = stopped => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_millis(500));
        })
        .expect("spawn the double's thread");
    Running {
        url,
        shared,
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The current stock.
    pub fn stock(&self) -> i64 {
        self.shared.lock().stock
    }

    /// The current round.
    pub fn round(&self) -> u64 {
        self.shared.lock().round
    }

    /// The current round's book, as ListOrders would list it (whatever the fault).
    pub fn book(&self) -> Vec<pb::Order> {
        self.shared.lock().book.clone()
    }

    /// Purchases still being worked on, including abandoned ones.
    pub fn busy(&self) -> usize {
        self.shared.busy.load(Ordering::SeqCst)
    }

    /// Waits until no purchase is being worked on; false if that takes longer than `limit`.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.busy() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Stops serving and joins the double's thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}
