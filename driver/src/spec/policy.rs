//! What the user asks of the checkout beyond correctness: the largest share of error answers
//! and latency thresholds in the k6 style (`p99<=500ms`, `error_rate<0.01`).

use std::fmt;
use std::time::Duration;

/// Share of attempts answered with an error status above which availability fails, unless
/// `--max-error-rate` says otherwise: a checkout that refuses one buyer in ten is broken, and
/// the demo's unstable path (5%) stays below it.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.1;

/// The audit's settings that come from the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub max_error_rate: f64,
    pub thresholds: Vec<Threshold>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_error_rate: DEFAULT_MAX_ERROR_RATE,
            thresholds: Vec::new(),
        }
    }
}

/// A measured figure a threshold is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A latency percentile, in per mille (500 = p50, 999 = p99.9), or the mean / max.
    Latency(LatencyStat),
    /// Share of attempts answered with an error status (deadline expiries excluded).
    ErrorRate,
    /// Share of attempts that ran past their deadline.
    TimeoutRate,
}

/// Which latency figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyStat {
    Mean,
    Max,
    /// Quantile in per mille.
    Quantile(u16),
}

/// The comparison of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
}

/// One threshold, e.g. `p99<=500ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    pub op: Op,
    /// Milliseconds for latencies, a share in [0, 1] for rates.
    pub limit: f64,
    /// As the user wrote it.
    pub text: String,
}

impl Threshold {
    /// Whether `value` (same unit as `limit`) meets it.
    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            Op::Lt => value < self.limit,
            Op::Le => value <= self.limit,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses `METRIC<=VALUE` or `METRIC<VALUE`: METRIC is `p50`, `p90`, `p95`, `p99`, `p99.9`,
/// `mean`, `max` (VALUE a duration: `500ms`, `1s`) or `error_rate`, `timeout_rate` (VALUE a
/// share: `0.01`, or a percentage: `1%`).
pub fn parse_threshold(raw: &str) -> Result<Threshold, String> {
    let text: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let (name, op, value) = if let Some((n, v)) = text.split_once("<=") {
        (n, Op::Le, v)
    } else if let Some((n, v)) = text.split_once('<') {
        (n, Op::Lt, v)
    } else {
        return Err(format!(
            "`{raw}`: expected METRIC<=VALUE, e.g. p99<=500ms or error_rate<0.01"
        ));
    };
    let metric = match name {
        "mean" | "avg" => Metric::Latency(LatencyStat::Mean),
        "max" => Metric::Latency(LatencyStat::Max),
        "error_rate" => Metric::ErrorRate,
        "timeout_rate" => Metric::TimeoutRate,
        p if p.starts_with('p') => {
            let q: f64 = p[1..]
                .parse()
                .map_err(|_| format!("`{raw}`: unknown percentile `{p}`"))?;
            if !(q > 0.0 && q <= 100.0) {
                return Err(format!("`{raw}`: a percentile is between p0 and p100"));
            }
            Metric::Latency(LatencyStat::Quantile((q * 10.0).round() as u16))
        }
        other => {
            return Err(format!(
                "`{raw}`: unknown metric `{other}` (p50, p99, p99.9, mean, max, error_rate, timeout_rate)"
            ));
        }
    };
    let limit = match metric {
        Metric::Latency(_) => humantime::parse_duration(value)
            .map(|d: Duration| d.as_secs_f64() * 1000.0)
            .map_err(|e| format!("`{raw}`: `{value}` is not a duration ({e})"))?,
        Metric::ErrorRate | Metric::TimeoutRate => parse_share(value)
            .ok_or_else(|| format!("`{raw}`: `{value}` is not a share (0.01 or 1%)"))?,
    };
    Ok(Threshold {
        metric,
        op,
        limit,
        text,
    })
}

/// `0.05` or `5%` as a share in [0, 1].
pub fn parse_share(raw: &str) -> Option<f64> {
    let share = match raw.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().ok()? / 100.0,
        None => raw.trim().parse::<f64>().ok()?,
    };
    (0.0..=1.0).contains(&share).then_some(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_thresholds() {
        let t = parse_threshold("p99 <= 500ms").unwrap();
        assert_eq!(t.metric, Metric::Latency(LatencyStat::Quantile(990)));
        assert_eq!(
            (t.op, t.limit, t.text.as_str()),
            (Op::Le, 500.0, "p99<=500ms")
        );
        assert!(t.holds(500.0) && !t.holds(500.1));
        let t = parse_threshold("p99.9<2s").unwrap();
        assert_eq!(t.metric, Metric::Latency(LatencyStat::Quantile(999)));
        assert!(!t.holds(2000.0));
        assert_eq!(parse_threshold("error_rate<=1%").unwrap().limit, 0.01);
        assert_eq!(
            parse_threshold("timeout_rate<0.3").unwrap().metric,
            Metric::TimeoutRate
        );
        assert_eq!(
            parse_threshold("max<=1s").unwrap().metric,
            Metric::Latency(LatencyStat::Max)
        );
        for bad in [
            "p99",
            "p99>=1s",
            "p0<=1s",
            "p101<=1s",
            "pxx<=1s",
            "speed<=1",
            "p99<=fast",
            "error_rate<=2",
        ] {
            assert!(parse_threshold(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shares() {
        assert_eq!(parse_share("5%"), Some(0.05));
        assert_eq!(parse_share("0.5"), Some(0.5));
        assert_eq!(parse_share("1.5"), None);
        assert_eq!(parse_share("-0.1"), None);
    }
}
