//! Runs the fault windows of a run ([`crate::spec::faults`]): each command by `sh -c` at its
//! moment after the load starts, with no stdin and its stdout discarded (the report may be on
//! stdout), stderr passed through. Each is recorded: when it started and ended, in seconds
//! after the load's start, and its exit status. A command still running when the run's
//! windows are collected is killed and recorded as such; a window whose moment the load did not
//! reach is recorded as not started.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::spec::faults::FaultWindow;

/// How long, after the load, the driver waits for commands still running.
pub const GRACE: Duration = Duration::from_secs(5);

/// What one window came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRecord {
    /// The moment asked for, in seconds after the load's start.
    pub at_s: f64,
    pub command: String,
    /// When the command started and ended (`null`: it did not start / did not end).
    pub started_s: Option<f64>,
    pub ended_s: Option<f64>,
    /// Its exit code (`null`: killed by a signal, never started or still running).
    pub exit_code: Option<i32>,
    /// Why it did not run or end normally (`null` when it did).
    pub error: Option<String>,
}

/// The windows of a run, started from `origin` (the load's start).
pub struct Faults {
    origin: Instant,
    tasks: Vec<(FaultWindow, JoinHandle<FaultRecord>)>,
}

impl Faults {
    /// Schedules every window (nothing without windows).
    pub fn start(windows: &[FaultWindow]) -> Self {
        let origin = Instant::now();
        let tasks = windows
            .iter()
            .map(|w| (w.clone(), tokio::spawn(run_one(w.clone(), origin))))
            .collect();
        Self { origin, tasks }
    }

    /// What each window came to, in the order given; commands still running [`GRACE`] after
    /// this call are killed.
    pub async fn finish(self) -> Vec<FaultRecord> {
        self.finish_within(GRACE).await
    }

    /// As [`Faults::finish`], waiting at most `grace`.
    pub async fn finish_within(self, grace: Duration) -> Vec<FaultRecord> {
        let mut records = Vec::with_capacity(self.tasks.len());
        let until = Instant::now() + grace;
        for (window, mut task) in self.tasks {
            if self.origin + window.at > Instant::now() {
                task.abort();
                records.push(not_run(
                    &window,
                    "the run ended before its moment: not started".into(),
                ));
                continue;
            }
            let record = match tokio::time::timeout_at(until, &mut task).await {
                Ok(Ok(record)) => record,
                Ok(Err(err)) => not_run(&window, format!("the fault task failed: {err}")),
                Err(_) => {
                    // Dropping the task drops the child: `kill_on_drop`.
                    task.abort();
                    FaultRecord {
                        started_s: Some(window.at.as_secs_f64()),
                        ..not_run(&window, "still running after the run: killed".into())
                    }
                }
            };
            records.push(record);
        }
        records
    }
}

fn not_run(window: &FaultWindow, error: String) -> FaultRecord {
    FaultRecord {
        at_s: window.at.as_secs_f64(),
        command: window.command.clone(),
        started_s: None,
        ended_s: None,
        exit_code: None,
        error: Some(error),
    }
}

async fn run_one(window: FaultWindow, origin: Instant) -> FaultRecord {
    tokio::time::sleep_until(origin + window.at).await;
    let started = origin.elapsed().as_secs_f64();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&window.command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    let ended = origin.elapsed().as_secs_f64();
    match status {
        Ok(status) => FaultRecord {
            at_s: window.at.as_secs_f64(),
            command: window.command.clone(),
            started_s: Some(started),
            ended_s: Some(ended),
            exit_code: status.code(),
            error: (!status.success()).then(|| format!("exited with {status}")),
        },
        Err(err) => FaultRecord {
            started_s: Some(started),
            ..not_run(&window, format!("could not run sh: {err}"))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_each_command_at_its_moment_and_records_it() {
        let windows = [
            FaultWindow::parse("0s:true").unwrap(),
            FaultWindow::parse("50ms:exit 3").unwrap(),
            FaultWindow::parse("1h:true").unwrap(),
        ];
        let faults = Faults::start(&windows);
        // Collected once the second one's moment has passed; the third's never comes.
        tokio::time::sleep(Duration::from_millis(60)).await;
        let records = faults.finish_within(Duration::from_secs(10)).await;
        assert_eq!(records[0].exit_code, Some(0));
        assert_eq!(records[0].error, None);
        assert_eq!(records[1].exit_code, Some(3));
        assert!(records[1].started_s.unwrap() >= 0.05, "{records:?}");
        assert!(records[1].ended_s >= records[1].started_s);
        assert_eq!((records[2].started_s, records[2].exit_code), (None, None));
        assert!(records[2].error.is_some());
    }
}
