//! The shape of a run's load: the burst or closed loop of `--users` (the default), an open
//! model of arrivals at a target rate (`--rate`, `--stages`), or ramping virtual users
//! (`--vus-stages`). Checked here for the command line and the wire alike.

use std::time::Duration;

use super::stages::{StageUnit, Stages, Think};
use super::{LoadSpec, MAX_IN_FLIGHT, SpecError};

/// How the purchases arrive.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Shape {
    /// Every user at once: once each (a burst) or back to back for `--duration`.
    #[default]
    Users,
    /// Open model: arrivals at the stages' rate whether or not the checkout keeps up; an
    /// arrival that finds `max_in_flight` purchases in flight is dropped and counted.
    Rate { stages: Stages, max_in_flight: u32 },
    /// Closed model with ramps: virtual user `i` buys back to back (pausing `think` between
    /// purchases) while the stages' target is above `i`.
    Vus { stages: Stages, think: Think },
}

impl Shape {
    /// The stages of an open or ramped shape.
    pub fn stages(&self) -> Option<&Stages> {
        match self {
            Shape::Users => None,
            Shape::Rate { stages, .. } | Shape::Vus { stages, .. } => Some(stages),
        }
    }

    /// The model's name in reports: `burst`/`closed` for [`Shape::Users`] (by `duration`),
    /// `open`, `ramping_vus`.
    pub fn model(&self, duration: Option<Duration>) -> &'static str {
        match (self, duration) {
            (Shape::Users, None) => "burst",
            (Shape::Users, Some(_)) => "closed",
            (Shape::Rate { .. }, _) => "open",
            (Shape::Vus { .. }, _) => "ramping_vus",
        }
    }

    /// Checks the shape against the rest of `spec`.
    pub(super) fn validate(&self, spec: &LoadSpec) -> Result<(), SpecError> {
        let Some(stages) = self.stages() else {
            return Ok(());
        };
        if spec.duration != Some(stages.end()) {
            return Err(SpecError::ShapeLength {
                stages: stages.end(),
                duration: spec.duration,
            });
        }
        match self {
            Shape::Users => Ok(()),
            Shape::Rate {
                stages,
                max_in_flight,
            } => {
                if stages.unit() != StageUnit::Rate {
                    return Err(SpecError::ShapeUnit("--stages takes rates (N/s)"));
                }
                if !(1..=MAX_IN_FLIGHT).contains(&u64::from(*max_in_flight)) {
                    return Err(SpecError::MaxInFlight(*max_in_flight));
                }
                if spec.clicks != 1 {
                    return Err(SpecError::ShapeClicks);
                }
                Ok(())
            }
            Shape::Vus { stages, think } => {
                if stages.unit() != StageUnit::Users {
                    return Err(SpecError::ShapeUnit("--vus-stages takes user counts"));
                }
                if stages.peak() > f64::from(spec.users) {
                    return Err(SpecError::ShapeUsers {
                        peak: stages.peak() as u64,
                        users: spec.users,
                    });
                }
                if think.max > super::MAX_DURATION {
                    return Err(SpecError::Duration(think.max));
                }
                Ok(())
            }
        }
    }
}
