//! Fault windows (`--fault AT:COMMAND`, repeatable): a command of the user's, run by `sh -c`
//! on the CLI's own machine at AT after the load starts (`2s:'kill -STOP 1234'`), so a report
//! shows which errors belong to which fault. Checked here; run by `crate::run::faults`. They
//! never travel over the wire (a distributed run refuses them) nor come from the dashboard
//! (its form has no such field).

use std::time::Duration;

/// Most fault windows of one run.
pub const MAX_FAULTS: usize = 32;
/// Longest command, in bytes.
pub const MAX_COMMAND_BYTES: usize = 4096;
/// Latest moment a fault may start, after the load's start.
pub const MAX_FAULT_AT: Duration = Duration::from_secs(3600);

/// Why a `--fault` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("--fault `{0}`: expected AT:COMMAND such as 2s:'kill -STOP 1234'")]
    Shape(String),
    #[error("--fault: AT `{at}`: {reason}")]
    At { at: String, reason: String },
    #[error("--fault: the command is empty or longer than {MAX_COMMAND_BYTES} bytes")]
    Command,
    #[error("at most {MAX_FAULTS} --fault windows, got {0}")]
    TooMany(usize),
    #[error("--fault is not supported with --coordinator: commands run only on this machine")]
    WithCoordinator,
}

/// One command to run at a moment of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultWindow {
    /// After the load's start.
    pub at: Duration,
    /// Given to `sh -c`.
    pub command: String,
}

impl FaultWindow {
    /// Parses `AT:COMMAND`: AT a duration (`0s`, `1.5s`, `2m`), then the command.
    pub fn parse(raw: &str) -> Result<Self, FaultError> {
        let (at, command) = raw
            .split_once(':')
            .ok_or_else(|| FaultError::Shape(raw.to_string()))?;
        let at_raw = at.trim();
        let at = humantime::parse_duration(at_raw).map_err(|e| FaultError::At {
            at: at_raw.to_string(),
            reason: e.to_string(),
        })?;
        if at > MAX_FAULT_AT {
            return Err(FaultError::At {
                at: at_raw.to_string(),
                reason: "at most 1h".into(),
            });
        }
        let command = command.trim();
        if command.is_empty() || command.len() > MAX_COMMAND_BYTES {
            return Err(FaultError::Command);
        }
        Ok(FaultWindow {
            at,
            command: command.to_string(),
        })
    }
}

/// Checks a run's windows: how many, and only where the CLI runs them.
pub fn validate(faults: &[FaultWindow], distributed: bool) -> Result<(), FaultError> {
    if faults.len() > MAX_FAULTS {
        return Err(FaultError::TooMany(faults.len()));
    }
    if distributed && !faults.is_empty() {
        return Err(FaultError::WithCoordinator);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_at_and_command() {
        let f = FaultWindow::parse("2s:kill -STOP 1234").unwrap();
        assert_eq!(
            (f.at, f.command.as_str()),
            (Duration::from_secs(2), "kill -STOP 1234")
        );
        // The command may hold colons of its own.
        let f = FaultWindow::parse("1500ms: curl -s http://toxiproxy:8474/reset").unwrap();
        assert_eq!(f.at, Duration::from_millis(1500));
        assert_eq!(f.command, "curl -s http://toxiproxy:8474/reset");
        assert!(matches!(
            FaultWindow::parse("kill"),
            Err(FaultError::Shape(_))
        ));
        assert!(matches!(
            FaultWindow::parse("soon:kill"),
            Err(FaultError::At { .. })
        ));
        assert!(matches!(
            FaultWindow::parse("2h:kill"),
            Err(FaultError::At { .. })
        ));
        assert_eq!(FaultWindow::parse("1s: "), Err(FaultError::Command));
        let long = format!("1s:{}", "x".repeat(MAX_COMMAND_BYTES + 1));
        assert_eq!(FaultWindow::parse(&long), Err(FaultError::Command));
        let one = vec![FaultWindow::parse("0s:true").unwrap()];
        assert!(validate(&one, false).is_ok());
        assert_eq!(validate(&one, true), Err(FaultError::WithCoordinator));
        let many = vec![one[0].clone(); MAX_FAULTS + 1];
        assert_eq!(validate(&many, false), Err(FaultError::TooMany(33)));
    }
}
