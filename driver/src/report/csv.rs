//! The run's tables as CSV files (`--csv DIR`), like Locust's CSV downloads: the time series
//! (one row per bucket), the stock readings, what each replica answered and, for distributed
//! runs, what each worker did. Columns are documented in docs/driver.md.
//!
//! A run writes `series.csv`, `stock.csv`, `replicas.csv` and (distributed) `workers.csv`;
//! `driver compare` writes the same set once per compared run, prefixed with its label
//! (`safe-mutex_series.csv`).

use std::path::{Path, PathBuf};

use crate::report::Report;
use crate::report::comparison::Comparison;

/// Writing a CSV file failed.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot create the CSV directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: ::csv::Error },
}

/// Columns of `series.csv`.
pub const SERIES_COLUMNS: [&str; 12] = [
    "t_s",
    "requests_per_s",
    "attempts",
    "purchased",
    "sold_out",
    "errors",
    "timeouts",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "errors_by_status",
];

/// Columns of `replicas.csv`.
pub const REPLICA_COLUMNS: [&str; 7] = [
    "target",
    "connections",
    "attempts",
    "purchased",
    "units_purchased",
    "refused",
    "errors",
];

/// Columns of `workers.csv`.
pub const WORKER_COLUMNS: [&str; 10] = [
    "name",
    "users",
    "attempts",
    "purchased",
    "errors",
    "throughput_rps",
    "elapsed_s",
    "lost",
    "faulty",
    "error",
];

/// Creates `dir` (and its parents) before a run, so a bad path fails before any load is sent.
pub fn prepare(dir: &Path) -> Result<(), CsvError> {
    std::fs::create_dir_all(dir).map_err(|source| CsvError::Directory {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes the tables of `report` into `dir`; returns the files written.
pub fn write_report(dir: &Path, report: &Report) -> Result<Vec<PathBuf>, CsvError> {
    write_tables(dir, "", report)
}

/// Writes the tables of every run of `comparison` into `dir`, each set prefixed with its
/// run's label; returns the files written.
pub fn write_comparison(dir: &Path, comparison: &Comparison) -> Result<Vec<PathBuf>, CsvError> {
    let mut files = Vec::new();
    for run in &comparison.runs {
        let prefix = format!("{}_", run.label.replace('/', "-"));
        files.extend(write_tables(dir, &prefix, &run.report)?);
    }
    Ok(files)
}

fn write_tables(dir: &Path, prefix: &str, report: &Report) -> Result<Vec<PathBuf>, CsvError> {
    let mut files = Vec::new();
    let series = report.series.buckets.iter().map(|b| {
        let latency = |f: fn(&crate::report::timeline::BucketLatency) -> f64| {
            b.latency_ms
                .as_ref()
                .map(|l| f(l).to_string())
                .unwrap_or_default()
        };
        let statuses: Vec<String> = b
            .by_status
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        vec![
            b.t_s.to_string(),
            format!("{:.1}", b.requests_per_s),
            b.attempts.to_string(),
            b.purchased.to_string(),
            b.sold_out.to_string(),
            b.errors.to_string(),
            b.timeouts.to_string(),
            latency(|l| l.p50),
            latency(|l| l.p90),
            latency(|l| l.p99),
            latency(|l| l.max),
            statuses.join(";"),
        ]
    });
    files.push(write(dir, prefix, "series.csv", &SERIES_COLUMNS, series)?);
    let stock = report
        .series
        .stock
        .iter()
        .map(|p| vec![p.t_s.to_string(), p.stock.to_string()]);
    files.push(write(dir, prefix, "stock.csv", &["t_s", "stock"], stock)?);
    let replicas = report.replicas.iter().map(|r| {
        vec![
            r.target.clone(),
            r.connections.to_string(),
            r.attempts.to_string(),
            r.purchased.to_string(),
            r.units_purchased.to_string(),
            r.refused.to_string(),
            r.errors.to_string(),
        ]
    });
    files.push(write(
        dir,
        prefix,
        "replicas.csv",
        &REPLICA_COLUMNS,
        replicas,
    )?);
    if let Some(workers) = &report.workers {
        let rows = workers.iter().map(|w| {
            vec![
                w.name.clone(),
                w.users.to_string(),
                w.attempts.to_string(),
                w.purchased.to_string(),
                w.errors.to_string(),
                format!("{:.1}", w.throughput_rps),
                format!("{:.3}", w.elapsed_s),
                w.lost.to_string(),
                w.faulty.to_string(),
                w.error.clone().unwrap_or_default(),
            ]
        });
        files.push(write(dir, prefix, "workers.csv", &WORKER_COLUMNS, rows)?);
    }
    Ok(files)
}

fn write(
    dir: &Path,
    prefix: &str,
    name: &str,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<PathBuf, CsvError> {
    let path = dir.join(format!("{prefix}{name}"));
    let fail = |source| CsvError::Write {
        path: path.clone(),
        source,
    };
    let mut writer = ::csv::Writer::from_path(&path).map_err(fail)?;
    writer.write_record(columns).map_err(fail)?;
    for row in rows {
        writer.write_record(&row).map_err(fail)?;
    }
    writer.flush().map_err(|e| fail(e.into()))?;
    Ok(path)
}
