//! Nothing a peer says is trusted: run plans are validated once, before any side effect, on the
//! command line and on the wire alike; a worker whose report is impossible is named faulty and
//! cannot change the verdict; an oversized report does not grow the coordinator past its bound.

mod faults;
mod support {
    pub mod fake_worker;
}

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use clap::Parser;
use flashsale_driver::cli::Cli;
use flashsale_driver::outcome::Outcome;
use flashsale_driver::{EXIT_AUDIT_FAILED, Report};
use support::fake_worker::{FakeWorker, consistent, repeated};

use flashsale::pb::{self, coordinator_client::CoordinatorClient};
use flashsale_driver::checkout::Control;
use flashsale_driver::cluster::auth::ClusterToken;
use flashsale_driver::cluster::coordinator::{self, CoordinatorConfig};
use flashsale_server::{RunningServer, ServerConfig, spawn};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The cluster token of these tests (the fake worker holds it too: an insider).
const TOKEN: &str = "trust-test-token";

fn driver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driver"))
        .args(args)
        .output()
        .expect("driver runs")
}

/// The server's round: a Reset moves it.
async fn round(server: &RunningServer) -> u64 {
    Control::connect(&server.url())
        .await
        .unwrap()
        .stock()
        .await
        .unwrap()
        .round
}

/// A driver run the CLI refuses: exit 2 with `message` on stderr, and the server untouched.
async fn refused_before_reset(server: &RunningServer, args: &[&str], message: &str) {
    let before = round(server).await;
    let url = server.url();
    let argv: Vec<String> = ["--target", &url, "--mode", "safe"]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_driver"))
            .args(&argv)
            .output()
            .expect("driver runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(round(server).await, before, "{args:?} reset the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_refuses_impossible_plans_before_any_reset() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    // The control: a valid run does reset (so the round check can fail).
    let before = round(&server).await;
    let url = server.url();
    let ok = tokio::task::spawn_blocking(move || {
        driver(&[
            "--target", &url, "--mode", "safe", "-u", "10", "--stock", "5",
        ])
    })
    .await
    .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_ne!(round(&server).await, before);

    refused_before_reset(&server, &["--timeout", "1000000years"], "timeout").await;
    refused_before_reset(
        &server,
        &["--timeout", "1000000years", "-u", "10"],
        "timeout",
    )
    .await;
    refused_before_reset(&server, &["--duration", "2h"], "duration").await;
    refused_before_reset(&server, &["--settle", "61s"], "settle").await;
    // As long as one argument can be (the kernel caps one at 128 KiB).
    let huge = "x".repeat(100_000);
    refused_before_reset(&server, &["--user-prefix", &huge], "user prefix").await;
    refused_before_reset(&server, &["--user-prefix", "a.b"], "user prefix").await;
    refused_before_reset(
        &server,
        &["--users", "1000000", "--clicks", "2"],
        "in flight",
    )
    .await;
    server.shutdown().await.unwrap();
}

/// A coordinator in this process that expects one worker; stops when the sender is dropped.
async fn coordinator(target: String) -> (String, oneshot::Sender<()>) {
    coordinator_for(target, 1).await
}

/// A coordinator in this process that expects `workers`; stops when the sender is dropped.
async fn coordinator_for(target: String, workers: usize) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let config = CoordinatorConfig {
        expect_workers: workers,
        default_target: Some(target),
        join_timeout: Duration::from_secs(5),
        admin_token: None,
        token: ClusterToken::new(TOKEN).unwrap(),
    };
    tokio::spawn(coordinator::run(listener, config, async {
        let _ = stopped.await;
    }));
    (url, stop)
}

fn plan() -> pb::LoadPlan {
    pb::LoadPlan {
        mode: pb::Mode::Safe.into(),
        users: 10,
        quantity: 1,
        timeout_ms: 1000,
        user_prefix: "t-".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coordinator_refuses_impossible_plans_with_invalid_argument() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let (url, _stop) = coordinator(server.url()).await;
    let before = round(&server).await;
    let mut client =
        CoordinatorClient::new(flashsale_driver::checkout::connect(&url).await.unwrap())
            .max_encoding_message_size(4 << 20);
    let cases: Vec<(&str, pb::RunRequest)> = vec![
        (
            "timeout",
            pb::RunRequest {
                plan: Some(pb::LoadPlan {
                    timeout_ms: u64::MAX,
                    ..plan()
                }),
                ..Default::default()
            },
        ),
        (
            "user prefix",
            pb::RunRequest {
                plan: Some(pb::LoadPlan {
                    user_prefix: "x".repeat(100_000),
                    ..plan()
                }),
                ..Default::default()
            },
        ),
        (
            "duration",
            pb::RunRequest {
                plan: Some(pb::LoadPlan {
                    duration_ms: u64::MAX,
                    ..plan()
                }),
                ..Default::default()
            },
        ),
        (
            "settle",
            pb::RunRequest {
                settle_ms: 61_000,
                plan: Some(plan()),
                ..Default::default()
            },
        ),
    ];
    for (what, mut request) in cases {
        request.users = 10;
        request.reset = true;
        request.stock = 5;
        let mut request = tonic::Request::new(request);
        ClusterToken::new(TOKEN).unwrap().attach(&mut request);
        let status = client.submit_run(request).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{what}: {status:?}"
        );
        assert!(status.message().contains(what), "{what}: {status:?}");
    }
    // A 1 MiB prefix does not even decode: past the coordinator's message cap.
    let mut request = tonic::Request::new(pb::RunRequest {
        users: 10,
        plan: Some(pb::LoadPlan {
            user_prefix: "x".repeat(1 << 20),
            ..plan()
        }),
        ..Default::default()
    });
    ClusterToken::new(TOKEN).unwrap().attach(&mut request);
    let status = client.submit_run(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert_eq!(
        round(&server).await,
        before,
        "a refused plan reset the server"
    );
    server.shutdown().await.unwrap();
}

/// A real worker process of the `driver` binary; killed when dropped.
struct RealWorker(Child);

impl RealWorker {
    fn start(coordinator: &str, name: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_driver"))
            .args(["worker", "--coordinator", coordinator, "--name", name])
            .args(["--token", TOKEN])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts");
        Self(child)
    }
}

impl Drop for RealWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A run of 2000 users buying 3 units each from a stock of 100 through `coordinator`, whose
/// report `lie` (given the fake's share) the fake worker sends instead of buying.
async fn run_with_a_liar(
    coordinator: &str,
    fake: &mut FakeWorker,
    lie: impl FnOnce(&flashsale_driver::spec::LoadSpec) -> pb::LoadStats,
) -> Report {
    let argv = [
        "driver",
        "--coordinator",
        coordinator,
        "--mode",
        "safe",
        "--quantity",
        "3",
        "--users",
        "2000",
        "--stock",
        "100",
        "--settle",
        "1s",
        "--token",
        TOKEN,
    ];
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    let run = tokio::spawn(async move { flashsale_driver::run(&spec).await });
    let (assignment, share) = fake.assignment().await;
    fake.report(assignment.run_id, lie(&share), 0.2).await;
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the run ends")
        .unwrap()
        .unwrap()
}

fn worker<'a>(report: &'a Report, name: &str) -> &'a flashsale_driver::report::WorkerSummary {
    report
        .workers
        .iter()
        .flatten()
        .find(|w| w.name == name)
        .unwrap_or_else(|| panic!("no worker {name}: {}", report.to_table()))
}

/// A real FAIL stays a FAIL, whatever the fake reports; when its report is impossible, it is
/// named faulty with `reason` and its users count as unreported.
fn assert_named_faulty(report: &Report, reason: &str) {
    let table = report.to_table();
    assert_eq!(report.verdict, "fail", "{table}");
    assert_eq!(report.exit_code(), EXIT_AUDIT_FAILED, "{table}");
    let honest = worker(report, "real");
    assert!(
        !honest.faulty && !honest.lost && honest.error.is_none(),
        "{table}"
    );
    let fake = worker(report, "fake");
    assert!(fake.faulty && !fake.lost, "{table}");
    let error = fake.error.as_deref().unwrap_or_default();
    assert!(error.contains(reason), "{reason} not in {error}");
    assert_eq!((fake.attempts, fake.purchased), (0, 0), "{table}");
    assert_eq!(fake.unreported_attempts, u64::from(fake.users), "{table}");
    assert!(
        report.outcomes.indeterminate >= u64::from(fake.users),
        "{table}"
    );
    assert!(table.contains("FAULTY"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lying_worker_is_named_faulty_and_cannot_flip_a_fail() {
    // A checkout that tests `stock > 0` instead of `stock >= quantity`: the real worker's
    // 1000 users oversell it whatever the scheduling (a real FAIL every time).
    let double = faults::start(faults::Config::new(faults::Fault::GreaterThanZeroCheck));
    let (url, _stop) = coordinator_for(double.url().to_string(), 2).await;
    let _real = RealWorker::start(&url, "real");
    let mut fake = FakeWorker::join(&url, "fake", TOKEN).await;
    let second = Duration::from_secs(1);

    // 100 "indeterminate" attempts (timeouts) instead of its share's, reported long before
    // any deadline could expire.
    let report = run_with_a_liar(&url, &mut fake, |share| {
        consistent(share, 100, Outcome::Timeout, share.timeout)
    })
    .await;
    assert_named_faulty(&report, "timeouts reported");

    // purchased = 2^64 - N: the merged counters would wrap and hide the oversell.
    let report = run_with_a_liar(&url, &mut fake, |share| {
        let mut stats = consistent(
            share,
            100,
            Outcome::SoldOut {
                stock_after: Some(0),
            },
            second,
        );
        stats.purchased = u64::MAX - 99;
        stats
    })
    .await;
    assert_named_faulty(&report, "overflow");

    // A history longer than its share can produce: three attempts per user in a burst.
    let report = run_with_a_liar(&url, &mut fake, |share| {
        repeated(
            share,
            share.users,
            3,
            Outcome::SoldOut {
                stock_after: Some(0),
            },
            second,
        )
    })
    .await;
    assert_named_faulty(&report, "its users can make at most");

    // Counters that do not add up.
    let report = run_with_a_liar(&url, &mut fake, |share| {
        let mut stats = consistent(
            share,
            100,
            Outcome::SoldOut {
                stock_after: Some(0),
            },
            second,
        );
        stats.sold_out += 7;
        stats
    })
    .await;
    assert_named_faulty(&report, "outcome counters sum to");

    // A lie consistent in every respect (100 INTERNAL answers, physically possible) is merged
    // like any report, and still cannot turn the real oversell into a pass.
    let report = run_with_a_liar(&url, &mut fake, |share| {
        consistent(share, 100, Outcome::Status(tonic::Code::Internal), second)
    })
    .await;
    assert_eq!(report.verdict, "fail", "{}", report.to_table());
    assert_eq!(report.exit_code(), EXIT_AUDIT_FAILED);

    // One message past the coordinator's decode cap (300,000 empty series buckets inline, 600
    // KB): refused before it is decoded, the worker's stream ends, it is lost, not merged.
    let report = run_with_a_liar(&url, &mut fake, |share| {
        let mut stats = consistent(share, 0, Outcome::Timeout, second);
        stats.series = vec![pb::SeriesBucket::default(); 300_000];
        stats
    })
    .await;
    let table = report.to_table();
    assert_eq!(report.verdict, "fail", "{table}");
    let fake = worker(&report, "fake");
    assert!(fake.lost && !fake.faulty && fake.attempts == 0, "{table}");
    assert!(
        report.outcomes.indeterminate >= u64::from(fake.users),
        "{table}"
    );
}

/// A `driver coordinator` child process on 127.0.0.1:0; killed when dropped.
struct CoordinatorProcess {
    child: Child,
    url: String,
}

impl CoordinatorProcess {
    fn start(target: &str) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_driver"))
            .args([
                "coordinator",
                "--listen",
                "127.0.0.1:0",
                "--expect-workers",
                "1",
            ])
            .args(["--target", target, "--token", TOKEN])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("coordinator starts");
        // Its log names the address it listens on; the rest of the log is drained.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("the coordinator logs where it listens")
                .unwrap();
            if let Some(at) = line.find("127.0.0.1:") {
                let digits: String = line[at + 10..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                break digits.parse::<u16>().unwrap();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Peak resident memory so far (VmHWM), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM in /proc/<pid>/status");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap();
        kib * 1024
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the coordinator may hold beyond its idle footprint while one worker floods it: the
/// share's bound (under 1 MiB for these 1,000 users), plus one message in decode (at most
/// `JOIN_MAX_MESSAGE_BYTES` = 512 KiB on the wire, ~68 times that decoded at worst), plus the
/// parts queued for the run's task. Stated in `cluster::parts` and the docs.
const FLOOD_BOUND: u64 = 128 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_report_does_not_grow_the_coordinator() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let coordinator = CoordinatorProcess::start(&server.url());
    let mut fake = FakeWorker::join(&coordinator.url, "flood", TOKEN).await;
    let idle = coordinator.peak_rss();

    let argv = [
        "driver",
        "--coordinator",
        &coordinator.url,
        "--mode",
        "safe",
        "--users",
        "1000",
        "--settle",
        "1s",
        "--token",
        TOKEN,
    ];
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    let run = tokio::spawn(async move { flashsale_driver::run(&spec).await });
    let (assignment, share) = fake.assignment().await;
    let bound = flashsale_driver::cluster::verify::ShareBounds::new(&share).max_report_bytes();

    // 10 x the share's bound in history, then ten million empty series buckets (each 2 bytes
    // on the wire and 136 decoded: 1.3 GB if the coordinator kept them).
    let history = consistent(
        &share,
        1000,
        Outcome::SoldOut {
            stock_after: Some(0),
        },
        Duration::from_millis(1),
    );
    let mut sent_history = 0u64;
    while sent_history < 10 * bound {
        let part = pb::ResultPart {
            run_id: assignment.run_id,
            history_user: history.history_user.clone(),
            history_seq: history.history_seq.clone(),
            history_quantity: history.history_quantity.clone(),
            history_answer: history.history_answer.clone(),
            history_order: history.history_order.clone(),
            history_sent_us: history.history_sent_us.clone(),
            history_replied_us: history.history_replied_us.clone(),
            series: Vec::new(),
        };
        sent_history += 1000 * 34;
        if !fake.send_part(part).await {
            break;
        }
    }
    let empty = pb::ResultPart {
        run_id: assignment.run_id,
        series: vec![pb::SeriesBucket::default(); 200_000],
        ..Default::default()
    };
    for _ in 0..50 {
        if !fake.send_part(empty.clone()).await {
            break;
        }
    }
    fake.report(
        assignment.run_id,
        consistent(&share, 0, Outcome::Timeout, Duration::ZERO),
        0.1,
    )
    .await;
    let report = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the run ends")
        .unwrap()
        .unwrap();
    let peak = coordinator.peak_rss();
    eprintln!(
        "coordinator peak RSS: idle {} MiB, after the flood {} MiB (share bound {} KiB)",
        idle >> 20,
        peak >> 20,
        bound >> 10
    );
    assert!(
        peak <= idle + FLOOD_BOUND,
        "the coordinator grew from {} MiB to {} MiB",
        idle >> 20,
        peak >> 20
    );
    let flood = worker(&report, "flood");
    assert!(flood.faulty, "{}", report.to_table());
    let error = flood.error.as_deref().unwrap_or_default();
    assert!(error.contains("at most"), "{error}");
    server.shutdown().await.unwrap();
}
