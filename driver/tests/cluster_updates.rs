//! What a SubmitRun stream carries, seen by a raw client with the token: `accepted` first,
//! `waiting` (joined of expected) at least once a second while a worker is missing, `progress`
//! with the workers' summed live counters and the coordinator's last stock poll during the
//! load, and a result that holds the stock polls. A worker's name with terminal escapes comes
//! back printable and at most 64 bytes long. Against a coordinator that only sends the
//! result (the old unary SubmitRun), or one that polls no stock, this test fails.

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::{Coordinator, TOKEN, worker};
use flashsale::pb::{self, coordinator_client::CoordinatorClient, run_update::Update};
use flashsale_server::{ServerConfig, spawn};

const STOCK: i64 = 1_000_000_000;

/// A worker name with terminal escapes, a bell and far more than 64 bytes.
fn hostile_name() -> String {
    format!("w2\u{1b}[2J\u{1b}]0;owned\u{7}{}", "x".repeat(200))
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_run_streams_the_wait_progress_and_a_result_with_stock_polls() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let coordinator = Coordinator::start(2, &server.url()).await;
    let _w1 = worker(&coordinator.url, "w1", Some(TOKEN));

    let mut client = CoordinatorClient::connect(coordinator.url.clone())
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::RunRequest {
        users: 40,
        reset: true,
        stock: STOCK,
        plan: Some(pb::LoadPlan {
            mode: pb::Mode::Safe.into(),
            quantity: 1,
            timeout_ms: 1000,
            duration_ms: 2000,
            user_prefix: "upd-".into(),
            ..Default::default()
        }),
        settle_ms: 500,
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let mut stream = client.submit_run(request).await.unwrap().into_inner();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = async || {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, stream.message())
            .await
            .expect("the run ends in time")
            .expect("the stream does not fail")
            .expect("the stream ends with a result");
        message.update.expect("every update says something")
    };

    let Update::Accepted(accepted) = next().await else {
        panic!("the stream starts with `accepted`");
    };
    assert!(accepted.run_id > 0);

    // While w2 is missing: `waiting` at least once a second, until w1 is counted.
    let mut last = Instant::now();
    let mut w2 = None;
    let mut progress = Vec::new();
    let result = loop {
        match next().await {
            Update::Waiting(w) => {
                assert!(
                    last.elapsed() < Duration::from_millis(1200),
                    "waiting updates stalled"
                );
                last = Instant::now();
                assert_eq!(w.expected, 2);
                assert!(w.joined <= 1);
                if w.joined == 1 && w2.is_none() {
                    w2 = Some(worker(&coordinator.url, &hostile_name(), Some(TOKEN)));
                }
            }
            Update::Progress(p) => {
                assert!(w2.is_some(), "progress before both workers joined");
                progress.push(p);
            }
            Update::Result(result) => break result,
            Update::Accepted(_) => panic!("accepted twice"),
        }
    };

    assert!(!result.cancelled);
    let total: u64 = result
        .workers
        .iter()
        .map(|w| w.stats.as_ref().map_or(0, |s| s.attempts))
        .sum();
    assert_eq!(result.workers.len(), 2);
    // Names are kept printable and short: control characters replaced, cut to 64 bytes.
    let named = result
        .workers
        .iter()
        .find(|w| w.name.starts_with("w2"))
        .unwrap();
    assert!(
        !named.name.chars().any(char::is_control),
        "{:?}",
        named.name
    );
    assert!(named.name.len() <= 64, "{:?}", named.name);
    assert!(
        named.name.starts_with("w2?[2J?]0;owned?x"),
        "{:?}",
        named.name
    );
    assert!(total > 0);
    // Live counters from the workers' heartbeats, and the stock the coordinator polled.
    let during: Vec<&pb::RunProgress> = progress.iter().filter(|p| p.attempts > 0).collect();
    assert!(during.len() >= 2, "{progress:?}");
    assert!(during.iter().all(|p| p.attempts <= total));
    assert!(
        during.iter().any(|p| p.stock.is_some_and(|s| s < STOCK)),
        "{progress:?}"
    );
    assert!(during.windows(2).all(|w| w[0].elapsed_s <= w[1].elapsed_s));
    // A 2 s run polled every 200 ms, within the run.
    assert!(result.stock_polls.len() >= 5, "{:?}", result.stock_polls);
    assert!(
        result
            .stock_polls
            .iter()
            .all(|p| p.t_s >= 0.0 && p.t_s <= result.elapsed_s && p.stock <= STOCK)
    );
}
