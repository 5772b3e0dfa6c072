//! The cluster token, process-level where a process is what is refused: a coordinator in this
//! process with a token; `Join`, `SubmitRun` and `CancelRun` without it or with a wrong one are
//! refused with UNAUTHENTICATED (health stays open); a `driver worker` without it exits with
//! status 2 and says what to pass instead of retrying; so does a `driver --coordinator` client.
//!
//! Against a coordinator that checks nothing, the anonymous calls succeed and the worker stays
//! joined, and every test here fails.

mod cluster_support;

use std::time::Duration;

use cluster_support::{Coordinator, Proc, TOKEN, driver, worker};
use flashsale::pb::{self, coordinator_client::CoordinatorClient};
use flashsale_driver::EXIT_ERROR;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A request carrying `token` as a bearer token, if any.
fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn run_request() -> pb::RunRequest {
    pb::RunRequest {
        users: 10,
        plan: Some(pb::LoadPlan {
            mode: pb::Mode::Safe.into(),
            quantity: 1,
            timeout_ms: 1000,
            user_prefix: "anon-".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn join_submit_and_cancel_need_the_cluster_token() {
    // The target is never reached: every call here is refused or finds no run.
    let coordinator = Coordinator::start(1, "http://127.0.0.1:9").await;
    let mut client = CoordinatorClient::connect(coordinator.url.clone())
        .await
        .unwrap();
    for token in [None, Some("wrong-token"), Some("cluster-test-toke")] {
        let hello = pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Hello(pb::Hello {
                name: "intruder".into(),
            })),
        };
        let join = client
            .join(with_token(futures::stream::iter([hello]), token))
            .await;
        assert_eq!(
            join.err().map(|s| s.code()),
            Some(Code::Unauthenticated),
            "Join with {token:?}"
        );

        let submit = client.submit_run(with_token(run_request(), token)).await;
        assert_eq!(
            submit.err().map(|s| s.code()),
            Some(Code::Unauthenticated),
            "SubmitRun with {token:?}"
        );

        let cancel = client
            .cancel_run(with_token(pb::CancelRunRequest { run_id: 1 }, token))
            .await;
        assert_eq!(
            cancel.err().map(|s| s.code()),
            Some(Code::Unauthenticated),
            "CancelRun with {token:?}"
        );
    }
    // The right token passes (no run in progress to cancel).
    let cancel = client
        .cancel_run(with_token(pb::CancelRunRequest { run_id: 1 }, Some(TOKEN)))
        .await
        .unwrap();
    assert!(!cancel.get_ref().cancelled);
    // Health needs no token.
    let channel = tonic::transport::Endpoint::from_shared(coordinator.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health is open");
}

/// Waits for `process` to exit 2 and returns its stderr.
fn exits_with_error(process: &mut Proc) -> String {
    let status = process
        .wait_exit(Duration::from_secs(20))
        .expect("the process gives up instead of retrying");
    let stderr = process.stderr_text();
    assert_eq!(status.code(), Some(i32::from(EXIT_ERROR)), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_without_the_right_token_exits_2() {
    let coordinator = Coordinator::start(1, "http://127.0.0.1:9").await;
    for token in [None, Some("wrong-token")] {
        let mut anonymous = worker(&coordinator.url, "anon", token);
        let stderr = tokio::task::block_in_place(|| exits_with_error(&mut anonymous));
        assert!(stderr.contains("refused this worker"), "{stderr}");
        assert!(stderr.contains("--token"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_with_a_wrong_token_is_refused() {
    let coordinator = Coordinator::start(1, "http://127.0.0.1:9").await;
    let mut command = driver();
    command.args([
        "--coordinator",
        &coordinator.url,
        "--token",
        "wrong-token",
        "--mode",
        "safe",
    ]);
    let mut client = Proc::spawn(command);
    let stderr = tokio::task::block_in_place(|| exits_with_error(&mut client));
    assert!(stderr.contains("wrong cluster token"), "{stderr}");
}
