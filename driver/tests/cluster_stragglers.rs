//! Workers that do not do their part, process-level: a worker frozen with SIGSTOP as its run
//! was assigned and resumed after that run's end sends nothing (into the next round or
//! anywhere), and a worker that only heartbeats no longer holds a burst up beyond the plan's
//! deadline.
//!
//! The frozen worker's purchases are counted by a double in front of the real server (which
//! would reject a stale round's purchase without a trace): without the worker's per-attempt
//! cut-off the resumed worker fires its whole burst. The heartbeat-only fake worker kept a
//! burst waiting for start + timeout + 30 s before; the deadline is now start + timeout + 5 s.

mod cluster_support;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use cluster_support::{Coordinator, TOKEN, worker};
use flashsale::pb::{
    self,
    checkout_client::CheckoutClient,
    checkout_server::{Checkout, CheckoutServer},
    coordinator_client::CoordinatorClient,
};
use flashsale_driver::checkout::Control;
use flashsale_driver::cli::Cli;
use flashsale_driver::cluster::coordinator::{RESULT_SLACK, START_DELAY};
use flashsale_driver::{Report, run};
use flashsale_server::{ServerConfig, spawn};
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// A checkout double that forwards every call to the real server and remembers the user id of
/// every purchase it saw, whatever the server answered.
#[derive(Clone)]
struct Counting {
    upstream: CheckoutClient<Channel>,
    purchases: Arc<Mutex<Vec<String>>>,
}

impl Counting {
    fn saw(&self, request: &Request<pb::PurchaseRequest>) -> pb::PurchaseRequest {
        let request = request.get_ref().clone();
        self.purchases.lock().unwrap().push(request.user_id.clone());
        request
    }

    /// Purchases seen so far whose user id starts with `prefix`.
    fn count(&self, prefix: &str) -> usize {
        let purchases = self.purchases.lock().unwrap();
        purchases.iter().filter(|u| u.starts_with(prefix)).count()
    }
}

type Orders = Pin<Box<dyn Stream<Item = Result<pb::OrderBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Checkout for Counting {
    async fn purchase_buggy(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        let request = self.saw(&request);
        self.upstream.clone().purchase_buggy(request).await
    }
    async fn purchase_unstable(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        let request = self.saw(&request);
        self.upstream.clone().purchase_unstable(request).await
    }
    async fn purchase_safe(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        let request = self.saw(&request);
        self.upstream.clone().purchase_safe(request).await
    }
    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::StockReply>, Status> {
        self.upstream.clone().get_stock(request.into_inner()).await
    }
    async fn reset(
        &self,
        request: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::StockReply>, Status> {
        self.upstream.clone().reset(request.into_inner()).await
    }
    type ListOrdersStream = Orders;
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<Orders>, Status> {
        let orders = self
            .upstream
            .clone()
            .list_orders(request.into_inner())
            .await?
            .into_inner();
        Ok(Response::new(Box::pin(orders)))
    }
}

/// Serves a [`Counting`] double in front of `upstream` on 127.0.0.1:0; returns its URL.
async fn counting_double(upstream: &str) -> (String, Counting) {
    let double = Counting {
        upstream: CheckoutClient::connect(upstream.to_string()).await.unwrap(),
        purchases: Arc::default(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = CheckoutServer::new(double.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (url, double)
}

/// A distributed run through `coordinator` with these flags, in this process.
async fn distributed(coordinator: &str, args: &[&str]) -> Report {
    let argv = ["driver", "--coordinator", coordinator, "--token", TOKEN]
        .into_iter()
        .chain(args.iter().copied());
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    run(&spec).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_frozen_through_its_run_sends_nothing_when_resumed() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let (target, double) = counting_double(&server.url()).await;
    let coordinator = Coordinator::start(2, &target).await;
    let _w1 = worker(&coordinator.url, "w1", Some(TOKEN));
    let w2 = worker(&coordinator.url, "w2", Some(TOKEN));

    let url = coordinator.url.clone();
    let run = tokio::spawn(async move {
        let args = [
            "--mode",
            "safe",
            "--users",
            "200",
            "--stock",
            "1000000",
            "--timeout",
            "1s",
            "--settle",
            "1s",
            "--user-prefix",
            "old-",
        ];
        distributed(&url, &args).await
    });
    // Freeze w2 between taking its assignment and the shared start.
    tokio::task::block_in_place(|| w2.wait_stderr("run assigned", Duration::from_secs(30)))
        .expect("w2 takes its assignment");
    w2.signal("STOP");
    let frozen = Instant::now();

    let report = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run finishes without w2")
        .unwrap();
    let workers = report.workers.as_ref().unwrap();
    let lost: Vec<&str> = workers
        .iter()
        .filter(|w| w.lost)
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(lost, ["w2"], "{}", report.to_table());

    // The run's own end (start + timeout + the worker's 1 s slack) lies at most 3.5 s after the
    // freeze (the start is 1.5 s after the assignment); resume w2 after it, in a new round.
    tokio::time::sleep_until((frozen + Duration::from_secs(4)).into()).await;
    let mut control = Control::connect(&server.url()).await.unwrap();
    control.reset_verified(1_000_000, None).await.unwrap();
    let before = double.count("old-");
    assert_eq!(
        before as u64, report.outcomes.attempts,
        "only w1's burst got through"
    );
    w2.signal("CONT");
    // Watch for 2 s (w2 would fire at once: its start instant is long past).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        double.count("old-"),
        before,
        "the resumed worker sent purchases of the old run"
    );
    assert_eq!(control.stock().await.unwrap().orders, 0);
}

/// A fake worker that joins with the token and heartbeats for every run it is assigned but
/// never carries one out or reports.
async fn heartbeat_only_worker(coordinator: &str) -> tokio::task::JoinHandle<()> {
    let (outbox, rx) = mpsc::channel(8);
    let hello = pb::WorkerMessage {
        msg: Some(pb::worker_message::Msg::Hello(pb::Hello {
            name: "silent".into(),
        })),
    };
    outbox.send(hello).await.unwrap();
    let mut client = CoordinatorClient::connect(coordinator.to_string())
        .await
        .unwrap();
    let mut request = Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let mut inbound = client.join(request).await.unwrap().into_inner();
    let run = Arc::new(AtomicU64::new(0));
    let beats = {
        let run = run.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let beat = pb::WorkerMessage {
                    msg: Some(pb::worker_message::Msg::Heartbeat(pb::Heartbeat {
                        run_id: run.load(Ordering::Relaxed),
                        ..Default::default()
                    })),
                };
                if outbox.send(beat).await.is_err() {
                    return;
                }
            }
        })
    };
    tokio::spawn(async move {
        while let Ok(Some(message)) = inbound.message().await {
            if let Some(pb::coordinator_message::Msg::Assignment(a)) = message.msg {
                run.store(a.run_id, Ordering::Relaxed);
            }
        }
        beats.abort();
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_only_worker_no_longer_stalls_a_burst() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let coordinator = Coordinator::start(2, &server.url()).await;
    let _w1 = worker(&coordinator.url, "w1", Some(TOKEN));
    let fake = heartbeat_only_worker(&coordinator.url).await;

    let timeout = Duration::from_secs(1);
    let settle = Duration::from_secs(1);
    let began = Instant::now();
    let args = [
        "--mode",
        "safe",
        "--users",
        "100",
        "--timeout",
        "1s",
        "--settle",
        "1s",
    ];
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        distributed(&coordinator.url, &args),
    )
    .await
    .expect("the run ends");
    let took = began.elapsed();
    fake.abort();

    let silent = report
        .workers
        .as_ref()
        .unwrap()
        .iter()
        .find(|w| w.name == "silent")
        .expect("the fake took part");
    assert!(silent.lost, "{}", report.to_table());
    assert!(
        silent.error.as_deref().unwrap_or("").contains("deadline"),
        "{:?}",
        silent.error
    );
    // The plan's deadline (start + timeout + slack), then settling, plus 3 s for the rest.
    let bound = START_DELAY + timeout + RESULT_SLACK + settle + Duration::from_secs(3);
    assert!(took < bound, "the burst took {took:?}; bound {bound:?}");
    eprintln!("burst with a heartbeat-only worker took {took:?} (bound {bound:?})");
}
