//! The client side of a distributed run: submit the run to a coordinator, merge what every
//! worker reported with the same [`Stats::merge`] as standalone mode, and account for lost
//! workers as indeterminate attempts.

use flashsale::pb::{self, coordinator_client::CoordinatorClient};

use crate::audit::Evidence;
use crate::checkout::book::BookState;
use crate::checkout::connect;
use crate::cluster::coordinator::MAX_MESSAGE_BYTES;
use crate::cluster::wire::{book_from_wire, plan_to_wire, stats_from_wire};
use crate::engine::LoadResult;
use crate::engine::stats::Stats;
use crate::error::DriverError;
use crate::report::{Report, WorkerSummary};
use crate::spec::RunSpec;

/// Runs `spec` through the coordinator at `url` (normalized) and builds the report.
pub async fn run(url: &str, spec: &RunSpec) -> Result<Report, DriverError> {
    let mut client = CoordinatorClient::new(connect(url).await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut plan = plan_to_wire(&spec.load);
    // Each worker picks its own connection and thread counts for its share.
    plan.connections = 0;
    plan.threads = 0;
    let request = pb::RunRequest {
        users: spec.load.users,
        target: spec.target.clone().unwrap_or_default(),
        reset: spec.reset,
        stock: spec.stock,
        safe_strategy: flashsale_server::Strategy::to_wire(spec.strategy),
        plan: Some(plan),
        settle_ms: u64::try_from(spec.settle.as_millis()).unwrap_or(u64::MAX),
    };
    let result = client
        .submit_run(request)
        .await
        .map_err(|status| DriverError::Rpc {
            call: "SubmitRun",
            target: url.to_string(),
            status: Box::new(status),
        })?
        .into_inner();
    let (before, after) = match (&result.before, &result.after) {
        (Some(before), Some(after)) => (before, after),
        _ => {
            return Err(DriverError::IncompleteResult(
                "the coordinator sent no stock readings".into(),
            ));
        }
    };

    let mut merged = Stats::default();
    let mut workers = Vec::with_capacity(result.workers.len());
    for worker in &result.workers {
        let stats = match &worker.stats {
            Some(wire) => stats_from_wire(wire)?,
            None => Stats::default(),
        };
        let unreported = worker.unreported_attempts;
        workers.push(WorkerSummary::new(worker, &stats, unreported));
        merged.merge(stats)?;
        if worker.lost || unreported > 0 {
            let first = u32::try_from(worker.first_user).unwrap_or(u32::MAX);
            let end = first.saturating_add(worker.users);
            merged.history.unreported.push(first..end);
        }
        merged.counts.indeterminate = merged.counts.indeterminate.saturating_add(unreported);
        merged.counts.indeterminate_units = merged
            .counts
            .indeterminate_units
            .saturating_add(unreported.saturating_mul(u64::from(spec.load.quantity.max())));
    }
    let load = LoadResult {
        stats: merged,
        elapsed: std::time::Duration::from_secs_f64(result.elapsed_s.max(0.0)),
        connections: result.workers.iter().map(|w| w.connections).sum(),
        threads: result.workers.iter().map(|w| w.threads).sum(),
    };
    let book = match &result.book {
        Some(columns) => BookState::Complete(book_from_wire(after.round, columns)?),
        None => BookState::Unavailable(if result.book_unavailable.is_empty() {
            "the coordinator sent no order book".to_string()
        } else {
            result.book_unavailable.clone()
        }),
    };
    let evidence = Evidence {
        before,
        after,
        book: &book,
        unsettled: (!result.unsettled.is_empty()).then(|| result.unsettled.clone()),
        policy: &spec.policy,
    };
    let mut report = Report::build(&result.target, false, &spec.load, &evidence, &load);
    report.run.coordinator = Some(url.to_string());
    report.workers = Some(workers);
    Ok(report)
}
