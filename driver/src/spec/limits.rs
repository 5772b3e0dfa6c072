//! The limits of a run plan, checked in one place for the command line and the wire alike:
//! [`LoadSpec::validate`] and [`RunSpec::validate`] run before any side effect (no Reset, no
//! connection, no worker assignment happens for a plan they refuse), and everything downstream
//! can rely on them (no deadline that overflows an `Instant`, no prefix that bloats every
//! request id, no user number past 32 bits).

use std::time::Duration;

use super::{LoadSpec, MAX_CLICKS, MAX_QUANTITY, MAX_QUANTITY_MIX, RunSpec};

/// Most virtual users of one run.
pub const MAX_USERS: u32 = 1_000_000;
/// Most purchases in flight at once (users × clicks): each is a future with its own request.
pub const MAX_IN_FLIGHT: u64 = 1_000_000;
/// Most HTTP/2 connections of one run (or one worker's share).
pub const MAX_CONNECTIONS: u32 = 100_000;
/// Most load threads.
pub const MAX_THREADS: u32 = 1024;
/// Longest per-purchase deadline.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest sustained run.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Longest wait for the server to settle after the load (the same on the wire).
pub const MAX_SETTLE: Duration = Duration::from_secs(60);
/// Longest user prefix, in bytes: user ids and request ids stay short.
pub const MAX_USER_PREFIX_BYTES: usize = 100;
/// Most targets (replicas) one run drives, after a DNS name is resolved.
pub const MAX_TARGETS: usize = 256;

/// Why a run plan is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("users must be 1 to {MAX_USERS}, got {0}")]
    Users(u32),
    #[error("{users} users × {clicks} clicks is {} purchases in flight; at most {MAX_IN_FLIGHT}", u64::from(*users) * u64::from(*clicks))]
    InFlight { users: u32, clicks: u32 },
    #[error("connections must be 1 to {MAX_CONNECTIONS}, got {0}")]
    Connections(u32),
    #[error("threads must be 1 to {MAX_THREADS}, got {0}")]
    Threads(u32),
    #[error("clicks must be 1 to {MAX_CLICKS}, got {0}")]
    Clicks(u32),
    #[error("quantities: {0}")]
    Quantity(String),
    #[error(
        "the user prefix is {0} bytes; at most {MAX_USER_PREFIX_BYTES} leave room for the user number"
    )]
    PrefixTooLong(usize),
    #[error(
        "the user prefix may only hold printable ASCII other than '.' (it is part of every request id); byte {byte:#04x} at {at} is not"
    )]
    PrefixByte { byte: u8, at: usize },
    #[error("the timeout must be above zero and at most {}, got {}", human(MAX_TIMEOUT), human(*.0))]
    Timeout(Duration),
    #[error("the duration must be above zero and at most {}, got {}", human(MAX_DURATION), human(*.0))]
    Duration(Duration),
    #[error("the settle time must be above zero and at most {}, got {}", human(MAX_SETTLE), human(*.0))]
    Settle(Duration),
    #[error("user numbers {first}..{first}+{users} do not fit in 32 bits")]
    UserRange { first: u64, users: u32 },
    #[error(transparent)]
    Retry(#[from] super::retry::RetryError),
    #[error(transparent)]
    Fault(#[from] super::faults::FaultError),
    #[error("--retries is not supported with --coordinator yet: workers try each purchase once")]
    RetriesWithCoordinator,
    #[error("--mode is required for a run")]
    NoMode,
    #[error("unknown mode {0}")]
    UnknownMode(i32),
    /// A secret given on the command line (`--admin-token`, `--token`) is unusable.
    #[error("{flag}: {reason}")]
    Secret { flag: &'static str, reason: String },
    #[error("{0} targets; at most {MAX_TARGETS} replicas per run")]
    Targets(usize),
    #[error(
        "a distributed run (--coordinator) takes one --target; several replicas are supported \
         by standalone runs only"
    )]
    TargetsWithCoordinator,
    #[error("load shape: {0}")]
    Stages(#[from] crate::spec::stages::StageError),
    #[error(
        "the stages last {stages:?} but the run's duration is {duration:?}; stages set the run's length (leave --duration out)"
    )]
    ShapeLength {
        stages: Duration,
        duration: Option<Duration>,
    },
    #[error("{0}")]
    ShapeUnit(&'static str),
    #[error("--max-in-flight must be 1 to {MAX_IN_FLIGHT}, got {0}")]
    MaxInFlight(u32),
    #[error("--clicks applies to users, not to an arrival rate: each arrival is one purchase")]
    ShapeClicks,
    #[error("the stages peak at {peak} users but --users is {users}")]
    ShapeUsers { peak: u64, users: u32 },
    #[error("--rate, --stages and --vus-stages are not supported with --coordinator yet")]
    ShapeWithCoordinator,
    #[error("no target to run against")]
    NoTarget,
    #[error(
        "TLS flags (--ca-cert, --cert, --key, --insecure, --authority) need an https:// --target; the embedded server is plaintext"
    )]
    TlsWithoutTarget,
    #[error(
        "TLS flags and -H/--metadata are not supported with --coordinator yet: distributed runs reach the checkout over plaintext without metadata"
    )]
    ConnectionWithCoordinator,
    #[error(
        "a checkout of your own needs --target (or whole URLs in --http-post): the embedded server speaks flashsale.v1.Checkout"
    )]
    CustomWithoutTarget,
    #[error("{0} applies to flashsale.v1.Checkout only, not to a checkout of your own")]
    CustomWithBuiltinFlag(&'static str),
    #[error(
        "the checkout has no reset call: give --reset-call or --reset-url (with --reset-data '{{\"stock\":{{{{stock}}}}}}'), or --no-reset to audit against the stock it has now"
    )]
    CustomWithoutReset,
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl LoadSpec {
    /// Checks every limit of the load; the first one broken is the error.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(1..=MAX_USERS).contains(&self.users) {
            return Err(SpecError::Users(self.users));
        }
        if !(1..=MAX_CLICKS).contains(&self.clicks) {
            return Err(SpecError::Clicks(self.clicks));
        }
        if u64::from(self.users) * u64::from(self.clicks) > MAX_IN_FLIGHT {
            return Err(SpecError::InFlight {
                users: self.users,
                clicks: self.clicks,
            });
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return Err(SpecError::Connections(self.connections));
        }
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(SpecError::Threads(self.threads));
        }
        let values = self.quantity.values();
        if values.is_empty() || values.len() > MAX_QUANTITY_MIX {
            return Err(SpecError::Quantity(format!(
                "give 1 to {MAX_QUANTITY_MIX} quantities, got {}",
                values.len()
            )));
        }
        if let Some(bad) = values.iter().find(|&&q| q == 0 || q > MAX_QUANTITY) {
            return Err(SpecError::Quantity(format!(
                "quantity {bad} is outside 1..={MAX_QUANTITY}"
            )));
        }
        validate_prefix(&self.user_prefix)?;
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(SpecError::Timeout(self.timeout));
        }
        if let Some(d) = self.duration
            && (d.is_zero() || d > MAX_DURATION)
        {
            return Err(SpecError::Duration(d));
        }
        if self.first_user.saturating_add(u64::from(self.users)) > u64::from(u32::MAX) {
            return Err(SpecError::UserRange {
                first: self.first_user,
                users: self.users,
            });
        }
        self.retry.validate()?;
        self.shape.validate(self)
    }
}

impl RunSpec {
    /// Checks the load, the targets and the settle time.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.load.validate()?;
        if self.targets.len() > MAX_TARGETS {
            return Err(SpecError::Targets(self.targets.len()));
        }
        if self.coordinator.is_some() && self.targets.len() > 1 {
            return Err(SpecError::TargetsWithCoordinator);
        }
        if self.coordinator.is_some() && self.load.retry.retries > 0 {
            return Err(SpecError::RetriesWithCoordinator);
        }
        super::faults::validate(&self.faults, self.coordinator.is_some())?;
        if self.coordinator.is_some() && self.load.shape != crate::spec::Shape::Users {
            return Err(SpecError::ShapeWithCoordinator);
        }
        validate_settle(self.settle)
    }
}

/// A user prefix: at most [`MAX_USER_PREFIX_BYTES`] of printable ASCII without '.' (the
/// separator of request ids).
pub fn validate_prefix(prefix: &str) -> Result<(), SpecError> {
    if prefix.len() > MAX_USER_PREFIX_BYTES {
        return Err(SpecError::PrefixTooLong(prefix.len()));
    }
    match prefix
        .bytes()
        .enumerate()
        .find(|&(_, b)| !b.is_ascii_graphic() || b == b'.')
    {
        Some((at, byte)) => Err(SpecError::PrefixByte { byte, at }),
        None => Ok(()),
    }
}

/// A settle time: above zero, at most [`MAX_SETTLE`].
pub fn validate_settle(settle: Duration) -> Result<(), SpecError> {
    if settle.is_zero() || settle > MAX_SETTLE {
        return Err(SpecError::Settle(settle));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Mode, Quantities};

    fn spec() -> LoadSpec {
        LoadSpec {
            mode: Mode::Safe,
            users: 100,
            connections: 1,
            threads: 1,
            duration: None,
            quantity: Quantities::single(1),
            clicks: 1,
            round: 0,
            timeout: Duration::from_secs(10),
            user_prefix: "p-".into(),
            first_user: 0,
            retry: Default::default(),
            shape: crate::spec::Shape::default(),
        }
    }

    type Change = Box<dyn Fn(&mut LoadSpec)>;

    #[test]
    fn every_limit_is_its_own_error() {
        assert_eq!(spec().validate(), Ok(()));
        let cases: Vec<(Change, SpecError)> = vec![
            (Box::new(|s| s.users = 0), SpecError::Users(0)),
            (
                Box::new(|s| s.users = MAX_USERS + 1),
                SpecError::Users(MAX_USERS + 1),
            ),
            (Box::new(|s| s.clicks = 0), SpecError::Clicks(0)),
            (
                Box::new(|s| s.clicks = MAX_CLICKS + 1),
                SpecError::Clicks(MAX_CLICKS + 1),
            ),
            (
                Box::new(|s| {
                    s.users = MAX_USERS;
                    s.clicks = 2;
                }),
                SpecError::InFlight {
                    users: MAX_USERS,
                    clicks: 2,
                },
            ),
            (Box::new(|s| s.connections = 0), SpecError::Connections(0)),
            (
                Box::new(|s| s.threads = MAX_THREADS + 1),
                SpecError::Threads(MAX_THREADS + 1),
            ),
            (
                Box::new(|s| s.quantity = Quantities::single(MAX_QUANTITY + 1)),
                SpecError::Quantity(format!(
                    "quantity {} is outside 1..={MAX_QUANTITY}",
                    MAX_QUANTITY + 1
                )),
            ),
            (
                Box::new(|s| s.user_prefix = "x".repeat(1 << 20)),
                SpecError::PrefixTooLong(1 << 20),
            ),
            (
                Box::new(|s| s.user_prefix = "a.b".into()),
                SpecError::PrefixByte { byte: b'.', at: 1 },
            ),
            (
                Box::new(|s| s.user_prefix = "\x1b[31m".into()),
                SpecError::PrefixByte { byte: 0x1b, at: 0 },
            ),
            (
                Box::new(|s| s.timeout = Duration::from_millis(u64::MAX)),
                SpecError::Timeout(Duration::from_millis(u64::MAX)),
            ),
            (
                Box::new(|s| s.timeout = Duration::ZERO),
                SpecError::Timeout(Duration::ZERO),
            ),
            (
                Box::new(|s| s.duration = Some(MAX_DURATION + Duration::from_millis(1))),
                SpecError::Duration(MAX_DURATION + Duration::from_millis(1)),
            ),
            (
                Box::new(|s| s.first_user = u64::from(u32::MAX) - 99),
                SpecError::UserRange {
                    first: u64::from(u32::MAX) - 99,
                    users: 100,
                },
            ),
        ];
        for (change, expected) in cases {
            let mut s = spec();
            change(&mut s);
            assert_eq!(s.validate(), Err(expected.clone()), "{expected}");
        }
        let mut edge = spec();
        edge.timeout = MAX_TIMEOUT;
        edge.duration = Some(MAX_DURATION);
        edge.first_user = u64::from(u32::MAX) - 100;
        edge.user_prefix = "~".repeat(MAX_USER_PREFIX_BYTES);
        assert_eq!(edge.validate(), Ok(()));
    }

    #[test]
    fn settle() {
        assert!(validate_settle(MAX_SETTLE).is_ok());
        assert!(validate_settle(MAX_SETTLE + Duration::from_millis(1)).is_err());
        assert!(validate_settle(Duration::ZERO).is_err());
    }

    #[test]
    fn shapes_are_checked_against_the_rest_of_the_load() {
        use crate::spec::Shape;
        use crate::spec::stages::{StageUnit, Stages, Think};
        let rate = Stages::parse("0s:10/s,2s:10/s", StageUnit::Rate).unwrap();
        let vus = Stages::parse("0s:0,2s:50", StageUnit::Users).unwrap();
        let open = |max_in_flight| LoadSpec {
            duration: Some(Duration::from_secs(2)),
            shape: Shape::Rate {
                stages: rate.clone(),
                max_in_flight,
            },
            ..spec()
        };
        assert_eq!(open(10).validate(), Ok(()));
        assert_eq!(open(0).validate(), Err(SpecError::MaxInFlight(0)));
        let wrong_length = LoadSpec {
            duration: Some(Duration::from_secs(3)),
            ..open(10)
        };
        assert!(matches!(
            wrong_length.validate(),
            Err(SpecError::ShapeLength { .. })
        ));
        let clicks = LoadSpec {
            clicks: 2,
            ..open(10)
        };
        assert_eq!(clicks.validate(), Err(SpecError::ShapeClicks));
        let ramp = |users, stages: &Stages| LoadSpec {
            users,
            duration: Some(Duration::from_secs(2)),
            shape: Shape::Vus {
                stages: stages.clone(),
                think: Think::default(),
            },
            ..spec()
        };
        assert_eq!(ramp(50, &vus).validate(), Ok(()));
        assert_eq!(
            ramp(40, &vus).validate(),
            Err(SpecError::ShapeUsers {
                peak: 50,
                users: 40
            })
        );
        // Rates where users are expected, and the other way round.
        assert!(matches!(
            ramp(50, &rate).validate(),
            Err(SpecError::ShapeUnit(_))
        ));
        let swapped = LoadSpec {
            shape: Shape::Rate {
                stages: vus.clone(),
                max_in_flight: 10,
            },
            ..open(10)
        };
        assert!(matches!(swapped.validate(), Err(SpecError::ShapeUnit(_))));
    }
}
