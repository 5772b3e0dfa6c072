//! The dashboard's "start a run" form, turned into the same validated specs as the command
//! line: the form's fields become the CLI's flags and go through the CLI's own parser
//! ([`crate::cli::Cli`]) and [`RunArgs::to_spec`](crate::cli::RunArgs::to_spec), so a value
//! the command line refuses is refused here with the same message.

use clap::Parser;
use serde::Deserialize;

use crate::cli::{Cli, Command};
use crate::run::compare::CompareSpec;
use crate::spec::RunSpec;

/// Longest value of one form field (the CLI's longest legitimate values are far shorter).
const MAX_FIELD: usize = 256;

/// What the form sends. Every field is text, as typed; empty means "the CLI's default".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StartForm {
    /// buggy, unstable or safe (ignored by "all modes").
    pub mode: String,
    pub users: String,
    pub stock: String,
    /// mutex or atomic (safe mode only; empty: the server's configured one).
    pub strategy: String,
    /// One quantity or a mix such as `1,2,3`.
    pub quantity: String,
    /// Empty for a burst, else a sustained duration such as `10s`.
    pub duration: String,
    /// host:port of the checkout (only where the dashboard allows it).
    pub target: String,
}

/// Why a form was refused: the message the command line would print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormError(pub String);

impl StartForm {
    /// The CLI flags these fields stand for (empty fields left out).
    pub fn flags(&self, with_mode: bool) -> Result<Vec<String>, FormError> {
        let mut fields = vec![
            ("--users", &self.users),
            ("--stock", &self.stock),
            ("--quantity", &self.quantity),
            ("--duration", &self.duration),
            ("--target", &self.target),
        ];
        if with_mode {
            fields.push(("--mode", &self.mode));
            fields.push(("--strategy", &self.strategy));
        }
        let mut flags = Vec::new();
        for (flag, value) in fields {
            let value = value.trim();
            if value.len() > MAX_FIELD {
                return Err(FormError(format!(
                    "{flag} is longer than {MAX_FIELD} bytes"
                )));
            }
            if !value.is_empty() {
                // `--flag=value`: a value starting with '-' stays a value.
                flags.push(format!("{flag}={value}"));
            }
        }
        Ok(flags)
    }

    /// The run these fields describe, validated exactly as `driver --mode ...` would.
    pub fn run_spec(&self) -> Result<RunSpec, FormError> {
        let cli = parse(self.flags(true)?)?;
        if cli.command.is_some() {
            return Err(FormError("not a run".into()));
        }
        cli.run.to_spec().map_err(|e| FormError(e.to_string()))
    }

    /// The comparison of every mode these fields describe, validated as `driver compare ...`.
    pub fn compare_spec(&self) -> Result<CompareSpec, FormError> {
        let mut args = vec!["compare".to_string()];
        args.extend(self.flags(false)?);
        match parse(args)?.command {
            Some(Command::Compare(compare)) => {
                compare.to_spec().map_err(|e| FormError(e.to_string()))
            }
            _ => Err(FormError("not a comparison".into())),
        }
    }
}

/// Parses `args` with the CLI's parser; a refusal keeps clap's first line, without "error: ".
fn parse(args: Vec<String>) -> Result<Cli, FormError> {
    Cli::try_parse_from(std::iter::once("driver".to_string()).chain(args))
        .map_err(|e| FormError(cli_message(&e)))
}

/// The first line of a clap error as the CLI prints it, without its `error: ` prefix.
pub fn cli_message(err: &clap::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(mode: &str, users: &str) -> StartForm {
        StartForm {
            mode: mode.into(),
            users: users.into(),
            ..StartForm::default()
        }
    }

    #[test]
    fn same_validation_as_the_cli() {
        let spec = form("buggy", "250").run_spec().unwrap();
        assert_eq!(spec.load.users, 250);
        assert_eq!(spec.stock, 100);
        assert!(spec.targets.is_empty() && spec.load.duration.is_none());
        let cli_err =
            Cli::try_parse_from(["driver", "--mode", "safe", "--users", "0"]).unwrap_err();
        let err = form("safe", "0").run_spec().unwrap_err();
        assert_eq!(err.0, cli_message(&cli_err));
        assert!(err.0.contains("--users"), "{err}");
        assert!(form("", "10").run_spec().is_err(), "the mode is required");
        assert!(form("fast", "10").run_spec().is_err());
        // Refused by the spec's validation after parsing, as on the command line.
        let long = StartForm {
            duration: "61m".into(),
            ..form("safe", "10")
        };
        assert!(long.run_spec().unwrap_err().0.contains("duration"));
        let dash = StartForm {
            stock: "-5".into(),
            ..form("safe", "10")
        };
        assert!(dash.run_spec().is_err());
        let huge = StartForm {
            quantity: "1".repeat(MAX_FIELD + 1),
            ..form("safe", "10")
        };
        assert!(huge.run_spec().is_err());
    }

    #[test]
    fn compare_takes_the_shared_flags() {
        let spec = StartForm {
            stock: "7".into(),
            ..form("ignored", "30")
        }
        .compare_spec()
        .unwrap();
        assert_eq!(spec.runs.len(), 4);
        assert!(spec.runs.iter().all(|r| r.stock == 7 && r.load.users == 30));
        assert!(form("", "0").compare_spec().is_err());
    }
}
