//! A fake worker written from the generated `flashsale.v1.Coordinator` client: it joins a real
//! coordinator like a worker (heartbeats included), receives its share, buys nothing and
//! reports whatever the test tells it to: an insider's lies.

#![allow(dead_code)]

use std::time::Duration;

use flashsale::pb::{self, coordinator_client::CoordinatorClient};
use flashsale_driver::cluster::auth::ClusterToken;
use flashsale_driver::cluster::wire::{plan_from_wire, stats_to_wire};
use flashsale_driver::engine::history::AttemptKey;
use flashsale_driver::engine::series::bucket_ms_for;
use flashsale_driver::engine::stats::Stats;
use flashsale_driver::outcome::Outcome;
use flashsale_driver::spec::LoadSpec;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// How long a test waits for the coordinator to say something.
const PATIENCE: Duration = Duration::from_secs(60);

/// A joined fake worker; it leaves when dropped.
pub struct FakeWorker {
    outbox: mpsc::Sender<pb::WorkerMessage>,
    inbound: Streaming<pb::CoordinatorMessage>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

fn msg(msg: pb::worker_message::Msg) -> pb::WorkerMessage {
    pb::WorkerMessage { msg: Some(msg) }
}

impl FakeWorker {
    /// Joins the coordinator at `url` as `name` with the cluster `token` (an insider) and
    /// heartbeats every 500 ms.
    pub async fn join(url: &str, name: &str, token: &str) -> Self {
        let channel = flashsale_driver::checkout::connect(url).await.unwrap();
        let mut client = CoordinatorClient::new(channel)
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(usize::MAX);
        let (outbox, rx) = mpsc::channel(8);
        outbox
            .send(msg(pb::worker_message::Msg::Hello(pb::Hello {
                name: name.into(),
            })))
            .await
            .unwrap();
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        ClusterToken::new(token).unwrap().attach(&mut request);
        let inbound = client.join(request).await.unwrap().into_inner();
        let beats = outbox.clone();
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let beat = msg(pb::worker_message::Msg::Heartbeat(pb::Heartbeat::default()));
                if beats.send(beat).await.is_err() {
                    return;
                }
            }
        });
        Self {
            outbox,
            inbound,
            heartbeat,
        }
    }

    /// The next assignment, and the share it stands for.
    pub async fn assignment(&mut self) -> (pb::Assignment, LoadSpec) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let message = tokio::time::timeout_at(deadline, self.inbound.message())
                .await
                .expect("an assignment in time")
                .expect("the coordinator's stream works")
                .expect("the coordinator keeps the stream open");
            if let Some(pb::coordinator_message::Msg::Assignment(a)) = message.msg {
                let spec = plan_from_wire(a.plan.as_ref().unwrap()).unwrap();
                return (a, spec);
            }
        }
    }

    /// Sends `stats` as its result of `run_id`.
    pub async fn report(&self, run_id: u64, stats: pb::LoadStats, elapsed_s: f64) {
        let result = pb::WorkerResult {
            run_id,
            stats: Some(stats),
            elapsed_s,
            connections: 1,
            threads: 1,
            ..Default::default()
        };
        self.send(msg(pb::worker_message::Msg::Result(result)))
            .await;
    }

    pub async fn send(&self, message: pb::WorkerMessage) {
        self.outbox.send(message).await.unwrap();
    }

    /// Sends `part` of the result of `run_id`; false once the coordinator stopped listening.
    pub async fn send_part(&self, part: pb::ResultPart) -> bool {
        let message = msg(pb::worker_message::Msg::Part(part));
        self.outbox.send(message).await.is_ok()
    }
}

/// A report consistent in itself: the first `n` users of `share` each with one attempt that
/// came to `outcome` after `latency`.
pub fn consistent(share: &LoadSpec, n: u32, outcome: Outcome, latency: Duration) -> pb::LoadStats {
    repeated(share, n, 1, outcome, latency)
}

/// [`consistent`] with `seqs` attempts per user (sequence numbers 0..seqs).
pub fn repeated(
    share: &LoadSpec,
    n: u32,
    seqs: u32,
    outcome: Outcome,
    latency: Duration,
) -> pb::LoadStats {
    let mut stats = Stats::with_bucket_ms(bucket_ms_for(share.duration));
    for (i, seq) in (0..n).flat_map(|i| (0..seqs).map(move |seq| (i, seq))) {
        let user = u32::try_from(share.first_user).unwrap() + i;
        let quantity = share.quantity.pick(user, seq);
        let outcome = match &outcome {
            Outcome::Purchased {
                order_id,
                stock_after,
                ..
            } => Outcome::Purchased {
                order_id: format!("{order_id}{i}"),
                quantity,
                stock_after: *stock_after,
            },
            other => other.clone(),
        };
        stats.record_at(
            Duration::from_millis(1),
            AttemptKey { user, seq },
            quantity,
            outcome,
            latency,
        );
    }
    stats_to_wire(&stats)
}
