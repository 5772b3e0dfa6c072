//! What the probes need to know of a run, and why a run cannot be probed.

use std::time::Duration;

use flashsale_server::Strategy;

use super::judge;
use crate::audit::Check;
use crate::spec::{Connection, Mode, RunSpec};

/// What the probes need to know of a run (a standalone [`RunSpec`], or a distributed run as
/// the coordinator has it).
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// Whether to probe at all (`--no-probes` clears it).
    pub enabled: bool,
    /// Whether the run calls Reset (the probes need it).
    pub reset: bool,
    /// The purchase RPC the load calls (built-in contract only).
    pub mode: Mode,
    /// The safe strategy the run's Reset sets, so the probes meet the same one.
    pub strategy: Option<Strategy>,
    /// Deadline of each probe purchase: the run's.
    pub timeout: Duration,
    /// The load's user prefix: probe customers are `probe-<prefix><n>`.
    pub user_prefix: &'a str,
    /// How the checkout is reached, and which API it speaks.
    pub connection: &'a Connection,
}

impl<'a> Plan<'a> {
    /// The probes of a standalone run.
    pub fn of(spec: &'a RunSpec) -> Self {
        Self {
            enabled: spec.probes,
            reset: spec.reset,
            mode: spec.load.mode,
            strategy: spec.strategy,
            timeout: spec.load.timeout,
            user_prefix: &spec.load.user_prefix,
            connection: &spec.connection,
        }
    }
}

/// The probe checks of a run that does not probe: every one skipped, saying why.
pub fn skipped(plan: &Plan<'_>) -> Vec<Check> {
    judge::all_skipped(&unprobeable(plan).unwrap_or_else(|| "--no-probes".into()))
}

/// Why `plan`'s checkout cannot be probed, if it cannot.
pub(super) fn unprobeable(plan: &Plan<'_>) -> Option<String> {
    if let Some(api) = &plan.connection.custom
        && !api.can_reset()
    {
        return Some(
            "the checkout's spec has no reset call, so the probes cannot set a stock".into(),
        );
    }
    if !plan.reset {
        return Some("--no-reset: the probes need Reset to set a small stock".into());
    }
    (!plan.enabled).then(|| "--no-probes".into())
}
