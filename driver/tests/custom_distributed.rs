//! A checkout of the team's own driven through a coordinator (issue #12): the plan carries its
//! spec to two worker processes of the real `driver` binary and to the coordinator's control
//! calls; the demo's HTTP checkout (`support/http_checkout.rs`) fails the merged audit in its
//! buggy form and passes in its safe form, and with its order listing (`[orders]`) the merged
//! run is reconciled against it. A spec naming local `.proto` files is refused before
//! anything is sent.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use flashsale_driver::cli::Cli;
use flashsale_driver::cluster::auth::ClusterToken;
use flashsale_driver::cluster::coordinator::{self, CoordinatorConfig};
use flashsale_driver::{Report, Verdict};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[path = "support/http_checkout.rs"]
mod http_checkout;

use http_checkout::{BODY, BODY_WITH_REQUEST_ID, Fault, LISTING, Options, serve};

const TOKEN: &str = "custom-distributed-token";

/// A coordinator in this process and worker processes; they stop on drop.
struct Cluster {
    coordinator: String,
    stop: Option<oneshot::Sender<()>>,
    workers: Vec<Child>,
}

impl Cluster {
    async fn start(workers: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let coordinator = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let config = CoordinatorConfig {
            expect_workers: workers,
            default_target: None,
            join_timeout: Duration::from_secs(30),
            admin_token: None,
            token: ClusterToken::new(TOKEN).unwrap(),
        };
        tokio::spawn(coordinator::run(listener, config, async {
            let _ = stopped.await;
        }));
        let workers = (1..=workers)
            .map(|i| {
                Command::new(env!("CARGO_BIN_EXE_driver"))
                    .args(["worker", "--coordinator", &coordinator])
                    .args(["--name", &format!("w{i}"), "--token", TOKEN])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("worker starts")
            })
            .collect();
        Cluster {
            coordinator,
            stop: Some(stop),
            workers,
        }
    }

    fn spec(
        &self,
        args: &[&str],
    ) -> Result<flashsale_driver::RunSpec, flashsale_driver::DriverError> {
        let argv = [
            "driver",
            "--coordinator",
            &self.coordinator,
            "--token",
            TOKEN,
        ]
        .into_iter()
        .chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().run.to_spec()
    }

    async fn run(&self, args: &[&str]) -> Report {
        flashsale_driver::run(&self.spec(args).unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.kill();
            let _ = worker.wait();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The demo's flags for `mode` against `target` over HTTP/2, 300 users.
fn demo(target: &str, mode: &str, body: &str) -> Vec<String> {
    let mut flags = http_checkout::demo_flags(target, mode, body, 300);
    flags.push("--http2".into());
    flags
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_carries_the_checkout_to_the_workers() {
    let shop = serve(Options {
        latency: Duration::from_millis(50),
        fault: Fault::None,
        ..Options::default()
    })
    .await;
    let url = shop.url(false);
    let cluster = Cluster::start(2).await;
    let args = |mode| demo(&url, mode, BODY);

    let safe = args("safe");
    let safe = cluster
        .run(&safe.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(safe.audit.verdict, Verdict::Pass, "{}", safe.to_table());
    assert_eq!(
        (safe.run.mode, safe.run.rpc.as_str()),
        ("custom", "POST /api/v1/checkout/safe")
    );
    assert_eq!(safe.workers.as_ref().unwrap().len(), 2);
    assert_eq!((safe.outcomes.purchased, safe.outcomes.sold_out), (40, 260));
    assert_eq!(shop.stock(), 0);

    let buggy = args("buggy");
    let buggy = cluster
        .run(&buggy.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(buggy.audit.verdict, Verdict::Fail, "{}", buggy.to_table());
    assert!(buggy.outcomes.purchased > 40, "{:?}", buggy.outcomes);
    assert!(shop.stock() < 0);

    // With the checkout's order listing, the coordinator reconciles the merged run against it.
    let mut listed = demo(&url, "safe", BODY_WITH_REQUEST_ID);
    listed.extend(LISTING.map(String::from));
    let listed = cluster
        .run(&listed.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let rec = &listed.audit.reconciliation;
    assert_eq!(listed.audit.verdict, Verdict::Pass, "{}", listed.to_table());
    assert!(rec.available, "{rec:?}");
    assert_eq!((rec.book_orders, rec.lost, rec.ghost), (40, 0, 0));
}

#[tokio::test]
async fn local_proto_files_do_not_travel() {
    let cluster = Cluster {
        coordinator: "http://127.0.0.1:9".into(),
        stop: None,
        workers: Vec::new(),
    };
    let err = cluster
        .spec(&[
            "--call",
            "shop.v1.Orders/PlaceOrder",
            "--proto",
            "shop.proto",
            "--stock-call",
            "shop.v1.Inventory/GetInventory",
            "--stock-field",
            "available",
            "--sold-out",
            "code == FAILED_PRECONDITION",
            "--no-reset",
        ])
        .unwrap_err();
    assert!(err.to_string().contains("reflection"), "{err}");
}
