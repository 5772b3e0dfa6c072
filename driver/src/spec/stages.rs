//! Load shapes beyond the burst: an open model (arrivals at a target rate, k6's
//! constant/ramping-arrival-rate) and ramping virtual users (a closed model, k6's ramping-vus,
//! Locust's spawn rate), both described by one syntax of *stages*.
//!
//! Stages are points `TIME:VALUE` separated by commas; the target moves linearly from one point
//! to the next. Times are absolute (from the start of the load), start at `0s`, never go back,
//! and two points at the same time make a step. A rate is `N/s`, `N/m` or a bare `N` (per
//! second; fractions such as `0.5/s` are fine); a user count is a bare whole number:
//!
//! ```text
//! --stages '0s:0/s,1s:20000/s,11s:20000/s,13s:0/s'     a flash-sale spike (open model)
//! --vus-stages '0s:0,5s:100,20s:100,25s:0'            ramping users (closed model)
//! ```
//!
//! The same strings go in a TOML file (`stages = "..."` or `vus_stages = "..."`, see
//! [`StagesFile`]). Every malformed form is refused with a [`StageError`] naming the stage.

use std::time::Duration;

use serde::Deserialize;

use super::{MAX_DURATION, MAX_USERS};

/// Highest target rate of a stage, in arrivals per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Most arrivals one open run may schedule (the history keeps 32 bytes for each).
pub const MAX_ARRIVALS: u64 = 1_000_000_000;
/// Most points in one stages string.
pub const MAX_STAGES: usize = 1000;

/// What a stage's value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageUnit {
    /// Arrivals per second (`N/s`, `N/m`, `N`).
    Rate,
    /// Virtual users (a whole number).
    Users,
}

/// Why a stages string (or a stages file) is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StageError {
    #[error("no stages given: expected points such as `0s:0/s,1s:1000/s,10s:1000/s`")]
    Empty,
    #[error("{0} stages; at most {MAX_STAGES}")]
    TooMany(usize),
    #[error("stage {index} `{raw}`: expected TIME:VALUE, e.g. `5s:1000/s` or `5s:100`")]
    Form { index: usize, raw: String },
    #[error("stage {index} `{raw}`: the time is not a duration (try 0s, 500ms, 1m)")]
    Time { index: usize, raw: String },
    #[error("stage {index} `{raw}`: {reason}")]
    Value {
        index: usize,
        raw: String,
        reason: &'static str,
    },
    #[error("stage {index} `{raw}`: {value}/s is above the most a driver schedules ({MAX_RATE}/s)")]
    RateTooHigh {
        index: usize,
        raw: String,
        value: f64,
    },
    #[error("stage {index} `{raw}`: {value} users; at most {MAX_USERS}")]
    TooManyUsers {
        index: usize,
        raw: String,
        value: u64,
    },
    #[error("the first stage must be at 0s (the start of the load), got {0:?}")]
    FirstNotAtZero(Duration),
    #[error(
        "stage {index} is at {at:?}, before the stage ahead of it ({previous:?}): times never go back"
    )]
    Backwards {
        index: usize,
        at: Duration,
        previous: Duration,
    },
    #[error("the stages last {0:?}; give at least two points and a last one after 0s")]
    NoLength(Duration),
    #[error("the stages last {0:?}; at most 1h")]
    TooLong(Duration),
    #[error("the stages never send anything (every target is 0)")]
    Nothing,
    #[error("the stages schedule {0} arrivals; at most {MAX_ARRIVALS} per run")]
    TooManyArrivals(u64),
    #[error("the rate `{0}` is not a rate: expected N/s, N/m or N (per second), e.g. 2000/s")]
    Rate(String),
    #[error(
        "the think time `{0}` is not a duration or a range of them (e.g. 100ms or 50ms..200ms)"
    )]
    Think(String),
    #[error("the stages file: {0}")]
    File(String),
}

/// Points `(time from the start, target)`, validated: at least two, the first at zero, times
/// never going back, the last after zero and at most [`MAX_DURATION`].
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    points: Vec<(Duration, f64)>,
    unit: StageUnit,
}

impl Stages {
    /// Parses `TIME:VALUE,...` counting `unit`.
    pub fn parse(raw: &str, unit: StageUnit) -> Result<Self, StageError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(StageError::Empty);
        }
        let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
        if parts.len() > MAX_STAGES {
            return Err(StageError::TooMany(parts.len()));
        }
        let points = parts
            .iter()
            .enumerate()
            .map(|(index, part)| parse_point(index + 1, part, unit))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(points, unit)
    }

    /// A constant target `value` from 0 to `length`.
    pub fn constant(value: f64, length: Duration, unit: StageUnit) -> Result<Self, StageError> {
        Self::new(vec![(Duration::ZERO, value), (length, value)], unit)
    }

    /// Checks `points` as [`Stages::parse`] does (after each value was checked).
    pub fn new(points: Vec<(Duration, f64)>, unit: StageUnit) -> Result<Self, StageError> {
        let Some(&(first, _)) = points.first() else {
            return Err(StageError::Empty);
        };
        if !first.is_zero() {
            return Err(StageError::FirstNotAtZero(first));
        }
        for (index, pair) in points.windows(2).enumerate() {
            if pair[1].0 < pair[0].0 {
                return Err(StageError::Backwards {
                    index: index + 2,
                    at: pair[1].0,
                    previous: pair[0].0,
                });
            }
        }
        let end = points.last().map_or(Duration::ZERO, |p| p.0);
        if end.is_zero() {
            return Err(StageError::NoLength(end));
        }
        if end > MAX_DURATION {
            return Err(StageError::TooLong(end));
        }
        if points.iter().all(|p| p.1 <= 0.0) {
            return Err(StageError::Nothing);
        }
        let stages = Self { points, unit };
        if unit == StageUnit::Rate {
            let total = stages.total_arrivals();
            if total > MAX_ARRIVALS as f64 {
                return Err(StageError::TooManyArrivals(total as u64));
            }
        }
        Ok(stages)
    }

    /// When the last stage ends: the length of the load.
    pub fn end(&self) -> Duration {
        self.points.last().map_or(Duration::ZERO, |p| p.0)
    }

    /// The highest target of any stage.
    pub fn peak(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(0.0, f64::max)
    }

    /// What the stages count.
    pub fn unit(&self) -> StageUnit {
        self.unit
    }

    /// The points, in order.
    pub fn points(&self) -> &[(Duration, f64)] {
        &self.points
    }

    /// Linear pieces of positive length: `(start, length, from, to)` in seconds.
    pub(crate) fn segments(&self) -> impl Iterator<Item = (f64, f64, f64, f64)> + '_ {
        self.points.windows(2).filter_map(|p| {
            let (t0, t1) = (p[0].0.as_secs_f64(), p[1].0.as_secs_f64());
            (t1 > t0).then_some((t0, t1 - t0, p[0].1, p[1].1))
        })
    }

    /// Arrivals the stages schedule (the area under the rate).
    pub fn total_arrivals(&self) -> f64 {
        self.segments().map(|(_, d, a, b)| (a + b) / 2.0 * d).sum()
    }

    /// The target at `at` (right-continuous at a step; 0 at and after the end).
    pub fn value_at(&self, at: Duration) -> f64 {
        let t = at.as_secs_f64();
        self.segments()
            .find(|&(t0, d, _, _)| t >= t0 && t < t0 + d)
            .map_or(0.0, |(t0, d, a, b)| a + (b - a) * (t - t0) / d)
    }

    /// The earliest instant at or after `from` (and before the end) when the target is at
    /// least `level`: when virtual user `level - 1` is active.
    pub fn next_at_least(&self, level: f64, from: Duration) -> Option<Duration> {
        let from_s = from.as_secs_f64();
        for (t0, d, a, b) in self.segments() {
            let t1 = t0 + d;
            if t1 <= from_s {
                continue;
            }
            let start = t0.max(from_s);
            let v = a + (b - a) * (start - t0) / d;
            if v >= level {
                return Some(Duration::from_secs_f64(start).max(from));
            }
            if b > v {
                let t = t0 + (level - a) / (b - a) * d;
                if t < t1 {
                    // The instant the ramp reaches `level`, rounded up to whole nanoseconds.
                    let at = Duration::from_secs_f64(t.max(start)) + Duration::from_nanos(1);
                    return Some(at.max(from));
                }
            }
        }
        None
    }
}

impl std::fmt::Display for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let suffix = if self.unit == StageUnit::Rate {
            "/s"
        } else {
            ""
        };
        for (i, (at, value)) in self.points.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(
                f,
                "{sep}{}:{value}{suffix}",
                humantime::format_duration(*at)
            )?;
        }
        Ok(())
    }
}

fn parse_point(index: usize, raw: &str, unit: StageUnit) -> Result<(Duration, f64), StageError> {
    let form = || StageError::Form {
        index,
        raw: raw.to_string(),
    };
    let (time, value) = raw.split_once(':').ok_or_else(form)?;
    let (time, value) = (time.trim(), value.trim());
    if time.is_empty() || value.is_empty() {
        return Err(form());
    }
    let at = if time == "0" {
        Duration::ZERO
    } else {
        humantime::parse_duration(time).map_err(|_| StageError::Time {
            index,
            raw: raw.to_string(),
        })?
    };
    let bad = |reason| StageError::Value {
        index,
        raw: raw.to_string(),
        reason,
    };
    let value = match unit {
        StageUnit::Rate => {
            let rate = parse_rate(value)
                .map_err(|_| bad("expected a rate such as 1000/s, 60/m or 1000"))?;
            if rate > MAX_RATE {
                return Err(StageError::RateTooHigh {
                    index,
                    raw: raw.to_string(),
                    value: rate,
                });
            }
            rate
        }
        StageUnit::Users => {
            if value.contains('/') {
                return Err(bad(
                    "a user stage takes a user count, not a rate (use --stages for rates)",
                ));
            }
            let users: u64 = value
                .parse()
                .map_err(|_| bad("expected a whole number of users"))?;
            if users > u64::from(MAX_USERS) {
                return Err(StageError::TooManyUsers {
                    index,
                    raw: raw.to_string(),
                    value: users,
                });
            }
            users as f64
        }
    };
    Ok((at, value))
}

/// A rate: `N/s`, `N/m` or a bare `N` per second; finite and not negative.
pub fn parse_rate(raw: &str) -> Result<f64, StageError> {
    let raw = raw.trim();
    let (number, per) = if let Some(n) = raw.strip_suffix("/s") {
        (n, 1.0)
    } else if let Some(n) = raw.strip_suffix("/m") {
        (n, 60.0)
    } else {
        (raw, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n / per),
        _ => Err(StageError::Rate(raw.to_string())),
    }
}

/// A pause between one virtual user's purchases: fixed, or drawn in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Think {
    pub min: Duration,
    pub max: Duration,
}

impl Think {
    /// Parses `100ms` or `50ms..200ms`.
    pub fn parse(raw: &str) -> Result<Self, StageError> {
        let bad = || StageError::Think(raw.to_string());
        let one = |s: &str| humantime::parse_duration(s.trim()).map_err(|_| bad());
        let (min, max) = match raw.split_once("..") {
            Some((a, b)) => (one(a)?, one(b)?),
            None => (one(raw)?, one(raw)?),
        };
        if min > max || max > MAX_DURATION {
            return Err(bad());
        }
        Ok(Self { min, max })
    }

    /// The pause before purchase `seq` of `user`: deterministic, spread over the range.
    pub fn pick(&self, user: u32, seq: u32) -> Duration {
        let span = self.max.saturating_sub(self.min).as_nanos() as u64;
        if span == 0 {
            return self.min;
        }
        let key = (u64::from(user) << 32 | u64::from(seq)).to_le_bytes();
        self.min + Duration::from_nanos(super::ids::fnv1a(&key) % (span + 1))
    }
}

/// A stages file (TOML): `stages = "0s:0/s,1s:20000/s,11s:20000/s,13s:0/s"` and
/// `max_in_flight = 5000` for the open model, or `vus_stages = "0s:0,5s:100,25s:0"` and
/// `think = "50ms..200ms"` for ramping users.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagesFile {
    pub stages: Option<String>,
    pub vus_stages: Option<String>,
    pub max_in_flight: Option<u32>,
    pub think: Option<String>,
}

impl StagesFile {
    /// Parses the TOML text of a stages file.
    pub fn parse(text: &str) -> Result<Self, StageError> {
        let file: Self =
            toml::from_str(text).map_err(|e| StageError::File(e.message().to_string()))?;
        if file.stages.is_some() == file.vus_stages.is_some() {
            return Err(StageError::File(
                "give exactly one of `stages` (rates) and `vus_stages` (users)".into(),
            ));
        }
        Ok(file)
    }
}

#[cfg(test)]
#[path = "stages_tests.rs"]
mod tests;
