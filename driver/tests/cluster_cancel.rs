//! Cancelling distributed runs, process-level: a checkout server and a coordinator in this
//! process, two `driver worker` processes and a `driver --coordinator …` client process of the
//! real binary. Ctrl-C (SIGINT) on the client winds the workers' load down within a second and
//! still prints an audited report; a killed client (SIGKILL) stops the load within a second.
//!
//! Either test fails against a coordinator or worker that does not pass the cancellation on:
//! the 30 s run would keep the stock moving.

mod cluster_support;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cluster_support::{
    Coordinator, Proc, TOKEN, assert_load_stopped, driver, wait_for_stock, worker,
};
use flashsale_driver::{EXIT_AUDIT_FAILED, EXIT_STOPPED};
use flashsale_server::{ServerConfig, spawn};

const STOCK: i64 = 1_000_000_000;

/// A 30 s sustained run through `coordinator`, as a client process printing JSON.
fn client(coordinator: &str) -> Proc {
    let mut command = driver();
    command.args([
        "--coordinator",
        coordinator,
        "--token",
        TOKEN,
        "--mode",
        "safe",
        "--users",
        "100",
        "--stock",
        &STOCK.to_string(),
        "--duration",
        "30s",
        "--settle",
        "1s",
        "--output",
        "json",
    ]);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client starts");
    let stderr = child.stderr.take().map(|pipe| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::BufReader::new(pipe).read_to_string(&mut text);
            let _ = tx.send(text);
        });
        rx
    });
    Proc { child, stderr }
}

/// Server, coordinator, two workers, and a client whose load is visibly running.
async fn running_load() -> (
    flashsale_server::RunningServer,
    Coordinator,
    Vec<Proc>,
    Proc,
) {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let coordinator = Coordinator::start(2, &server.url()).await;
    let workers = vec![
        worker(&coordinator.url, "w1", Some(TOKEN)),
        worker(&coordinator.url, "w2", Some(TOKEN)),
    ];
    let client = client(&coordinator.url);
    // Selling: the Reset to STOCK took effect and units are going.
    wait_for_stock(&server.url(), Duration::from_secs(30), |s| {
        s < STOCK - 500 && s > STOCK / 2
    })
    .await;
    // Let it sell for a while, so the coordinator polls the stock a few times (every 200 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    (server, coordinator, workers, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_to_a_distributed_client_stops_the_load_and_still_reports() {
    let (server, _coordinator, _workers, mut client) = running_load().await;
    let interrupted = Instant::now();
    client.signal("INT");
    let stopped = assert_load_stopped(
        &server.url(),
        interrupted,
        Duration::from_secs(1),
        Duration::from_millis(700),
    )
    .await;
    eprintln!("SIGINT: last stock change {stopped:?} after the signal");

    let status = tokio::task::block_in_place(|| client.wait_exit(Duration::from_secs(30)))
        .expect("the client exits after its report");
    assert!(
        interrupted.elapsed() < Duration::from_secs(15),
        "the run went on to its end"
    );
    let mut stdout = String::new();
    client
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let stderr = client
        .stderr
        .as_ref()
        .and_then(|rx| rx.recv_timeout(Duration::from_secs(5)).ok())
        .unwrap_or_default();
    // Stopped early (or failed in what was sent), never a pass; not a usage or connection
    // error.
    let code = status.code().expect("exited, not killed");
    assert!(
        [EXIT_STOPPED, EXIT_AUDIT_FAILED]
            .map(i32::from)
            .contains(&code),
        "exit {code}\n{stderr}\n{stdout}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}\n{stderr}"));
    assert_eq!(report["stopped"]["by"], "ctrl-c", "{stdout}");
    let after_s = report["stopped"]["after_s"].as_f64().unwrap();
    assert!(after_s > 0.0 && after_s < 30.0, "{stdout}");
    assert_eq!(report["run"]["duration_s"].as_f64(), Some(after_s));
    assert_ne!(report["verdict"], "pass", "{stdout}");
    let attempts = report["outcomes"]["attempts"].as_u64().unwrap();
    assert!(attempts > 500, "{stdout}");
    let workers = report["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    assert!(
        workers.iter().all(|w| w["lost"] == false),
        "both workers still reported: {stdout}"
    );
    // The coordinator's stock polls made it into the report's chart (start, polls, end).
    let stock_points = report["series"]["stock"].as_array().unwrap().len();
    assert!(stock_points > 3, "no stock polls in the report: {stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_distributed_client_stops_the_load() {
    let (server, _coordinator, _workers, mut client) = running_load().await;
    let killed = Instant::now();
    client.signal("KILL");
    let stopped = assert_load_stopped(
        &server.url(),
        killed,
        Duration::from_secs(1),
        Duration::from_millis(700),
    )
    .await;
    eprintln!("SIGKILL: last stock change {stopped:?} after the signal");
    let _ = tokio::task::block_in_place(|| client.wait_exit(Duration::from_secs(5)));
}

/// A CancelRun sent by someone else than the client (here: another holder of the cluster
/// token) stops the run too; the client's report says it was stopped by a CancelRun, when, and
/// that it ran for less than planned.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_run_from_elsewhere_marks_the_report_stopped_by_cancel_run() {
    use clap::Parser;
    use flashsale::pb::{self, coordinator_client::CoordinatorClient};
    use flashsale_driver::observe::stop::{Stop, StoppedBy};

    let server = spawn(ServerConfig::default()).await.unwrap();
    let coordinator = Coordinator::start(1, &server.url()).await;
    let _worker = worker(&coordinator.url, "w1", Some(TOKEN));
    let stock = STOCK.to_string();
    let argv = [
        "driver",
        "--coordinator",
        &coordinator.url,
        "--token",
        TOKEN,
        "--mode",
        "safe",
        "--users",
        "50",
        "--stock",
        &stock,
        "--duration",
        "30s",
        "--settle",
        "1s",
    ];
    let spec = flashsale_driver::cli::Cli::try_parse_from(argv)
        .unwrap()
        .run
        .to_spec()
        .unwrap();
    let run = tokio::spawn(async move {
        flashsale_driver::run_with_progress(&spec, false, Stop::new()).await
    });
    // Selling: the Reset to STOCK took effect and units are going.
    wait_for_stock(&server.url(), Duration::from_secs(30), |s| {
        s > STOCK / 2 && s < STOCK - 200
    })
    .await;

    let channel = flashsale_driver::checkout::connect(&coordinator.url)
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::CancelRunRequest { run_id: 1 });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let reply = CoordinatorClient::new(channel)
        .cancel_run(request)
        .await
        .unwrap();
    assert!(reply.get_ref().cancelled, "run 1 was in progress");

    let report = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the run winds down long before its 30 s")
        .unwrap()
        .unwrap();
    let stopped = report.stopped.expect("marked stopped");
    assert_eq!(stopped.by, StoppedBy::CancelRun);
    assert_eq!(stopped.planned_s, Some(30.0));
    assert!(
        stopped.after_s > 0.0 && stopped.after_s < 30.0,
        "{stopped:?}"
    );
    assert_eq!(report.run.duration_s, Some(stopped.after_s));
    assert_ne!(report.verdict, "pass", "{}", report.to_table());
    assert!(
        [EXIT_STOPPED, EXIT_AUDIT_FAILED].contains(&report.exit_code()),
        "{}",
        report.to_table()
    );
}
