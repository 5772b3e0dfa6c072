//! The runs of this process, newest last, bounded: what each was, how it ended, and its
//! report or comparison for the pages and downloads.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::report::SCHEMA_VERSION;
use crate::report::comparison::{ComparedRun, Comparison};
use crate::report::{Report, Stopped};

/// Runs kept; the oldest finished one is dropped beyond this.
pub const MAX_HISTORY: usize = 50;

/// A run or an "all modes" comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Run,
    Compare,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Running,
    /// Stop was pressed: the load winds down, then the run settles, audits and reports.
    Stopping,
    /// Finished to its planned end, with a report.
    Done,
    /// Stopped before its planned end (the dashboard's Stop, a CancelRun, a shutdown): it
    /// still has a report, whose verdict is never "pass".
    Stopped,
    /// It ended without a report (e.g. the target could not be reached).
    Failed,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    Report(Arc<Report>),
    Comparison(Arc<Comparison>),
}

/// One entry of the history.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: u64,
    pub kind: Kind,
    /// `buggy`, `safe/mutex`, or `all modes`.
    pub label: String,
    pub users: u32,
    pub stock: i64,
    /// `null` for a burst.
    pub duration_s: Option<f64>,
    /// The target as asked for (`null`: the embedded server).
    pub target: Option<String>,
    /// Seconds since the Unix epoch.
    pub started_unix_s: u64,
    pub phase: Phase,
    /// `pass`, `fail` or `inconclusive` once done (a comparison: its runs' verdicts joined).
    pub verdict: Option<String>,
    /// Who stopped it and when, once stopped (a comparison: its first stopped run).
    pub stopped: Option<Stopped>,
    /// Why it failed.
    pub error: Option<String>,
    #[serde(skip)]
    pub outcome: Option<Outcome>,
}

impl Entry {
    pub fn new(id: u64, kind: Kind, label: String, users: u32, stock: i64) -> Self {
        Self {
            id,
            kind,
            label,
            users,
            stock,
            duration_s: None,
            target: None,
            started_unix_s: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            phase: Phase::Running,
            verdict: None,
            stopped: None,
            error: None,
            outcome: None,
        }
    }

    /// The reports of this entry with their labels (one for a run, one per mode for a
    /// comparison).
    pub fn compared_runs(&self) -> Vec<ComparedRun> {
        match &self.outcome {
            Some(Outcome::Report(report)) => vec![ComparedRun {
                label: format!("#{} {}", self.id, self.label),
                report: (**report).clone(),
            }],
            Some(Outcome::Comparison(cmp)) => cmp
                .runs
                .iter()
                .map(|run| ComparedRun {
                    label: format!("#{} {}", self.id, run.label),
                    report: run.report.clone(),
                })
                .collect(),
            None => Vec::new(),
        }
    }
}

/// The bounded list of runs.
#[derive(Debug, Default)]
pub struct History {
    entries: VecDeque<Entry>,
    next_id: u64,
}

impl History {
    /// The id the next run gets (ids start at 1 and never repeat within a process).
    pub fn next_id(&mut self) -> u64 {
        self.next_id = self.next_id.saturating_add(1);
        self.next_id
    }

    /// Adds a started run, dropping the oldest finished ones beyond [`MAX_HISTORY`].
    pub fn push(&mut self, entry: Entry) {
        self.entries.push_back(entry);
        while self.entries.len() > MAX_HISTORY {
            match self
                .entries
                .iter()
                .position(|e| !matches!(e.phase, Phase::Running | Phase::Stopping))
            {
                Some(oldest) => {
                    self.entries.remove(oldest);
                }
                None => break,
            }
        }
    }

    pub fn get(&self, id: u64) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == id)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// The runs of `ids` side by side, in the order given; `None` if one is unknown or has
    /// no report.
    pub fn comparison(&self, ids: &[u64]) -> Option<Comparison> {
        let mut runs = Vec::new();
        for id in ids {
            let entry = self.get(*id)?;
            let compared = entry.compared_runs();
            if compared.is_empty() {
                return None;
            }
            runs.extend(compared);
        }
        let first = runs.first()?;
        Some(Comparison {
            schema_version: SCHEMA_VERSION,
            target: first.report.run.target.clone(),
            embedded: first.report.run.embedded,
            users: first.report.run.users,
            stock: first.report.audit.initial_stock,
            duration_s: first.report.run.duration_s,
            runs,
        })
    }
}

/// Who stopped `outcome`'s run (a comparison: its first stopped run), if it was stopped.
pub fn stopped(outcome: &Outcome) -> Option<Stopped> {
    match outcome {
        Outcome::Report(report) => report.stopped,
        Outcome::Comparison(cmp) => cmp.runs.iter().find_map(|r| r.report.stopped),
    }
}

/// The verdict of a comparison in one word per run, e.g. `fail fail pass pass`.
pub fn verdicts(cmp: &Comparison) -> String {
    cmp.runs
        .iter()
        .map(|r| r.report.verdict)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keeps_running_entries() {
        let mut history = History::default();
        let first = history.next_id();
        history.push(Entry::new(first, Kind::Run, "safe".into(), 1, 1));
        for _ in 0..MAX_HISTORY + 5 {
            let id = history.next_id();
            let mut entry = Entry::new(id, Kind::Run, "buggy".into(), 1, 1);
            entry.phase = Phase::Done;
            history.push(entry);
        }
        assert_eq!(history.entries().count(), MAX_HISTORY);
        // The running one stays; the oldest finished ones went.
        assert!(history.get(first).is_some());
        assert!(history.get(2).is_none());
        assert!(history.comparison(&[first]).is_none(), "no report yet");
        assert!(history.comparison(&[9999]).is_none());
    }
}
