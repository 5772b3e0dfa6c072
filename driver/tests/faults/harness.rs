//! Runs the `driver` binary against a double and asserts on its JSON report. Every failed
//! assertion prints the checks as a table, the whole JSON and the driver's stderr.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Exit statuses of the driver.
pub const PASS: i32 = 0;
pub const FAIL: i32 = 1;
pub const ERROR: i32 = 2;
pub const INCONCLUSIVE: i32 = 4;

/// A driver run is killed after this long.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// Audit runs are timing-sensitive (deadlines, overload) and the machine is small: one at a
/// time. Hold the guard for the whole test.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One finished driver run.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `driver --target URL --output json` with `args` (plus `--mode safe`, `--timeout 10s`
/// and `--settle 1s` unless `args` sets them), killing it after [`RUN_LIMIT`].
pub fn driver(url: &str, args: &[&str]) -> Run {
    let mut argv: Vec<String> = vec!["--target".into(), url.into()];
    argv.extend(args.iter().map(|a| a.to_string()));
    launch(argv)
}

/// Like [`driver`], against the server the driver embeds (no `--target`).
pub fn driver_embedded(args: &[&str]) -> Run {
    launch(args.iter().map(|a| a.to_string()).collect())
}

/// Runs the driver with `args` plus `--output json` (and `--mode safe`, `--timeout 10s`
/// unless set).
fn launch(args: Vec<String>) -> Run {
    let mut argv: Vec<String> = vec!["--output".into(), "json".into()];
    if !args.iter().any(|a| a == "--mode") {
        argv.extend(["--mode".into(), "safe".into()]);
    }
    if !args.iter().any(|a| a == "--timeout") {
        argv.extend(["--timeout".into(), "10s".into()]);
    }
    // A short settle (quiet window 0.5 s) unless the test is about settling.
    if !args.iter().any(|a| a == "--settle") {
        argv.extend(["--settle".into(), "1s".into()]);
    }
    argv.extend(args);
    run_argv(argv)
}

/// Runs the driver with exactly `argv`, killing it after [`RUN_LIMIT`].
pub fn run_argv(argv: Vec<String>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_driver"))
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the driver starts");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the driver") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    let Some(status) = status else {
        panic!(
            "driver {argv:?} still running after {RUN_LIMIT:?}: killed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    };
    Run {
        json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        code: status.code().unwrap_or(-1),
        args: argv,
        stdout,
        stderr,
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

impl Run {
    pub fn verdict(&self) -> &str {
        self.json["verdict"].as_str().unwrap_or("<none>")
    }

    pub fn checks(&self) -> &[Value] {
        self.json["audit"]["checks"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The detail of check `name`, or an empty string.
    pub fn detail(&self, name: &str) -> &str {
        self.checks()
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["detail"].as_str())
            .unwrap_or("")
    }

    /// The status of check `name`, or `<missing>`.
    pub fn check(&self, name: &str) -> &str {
        self.checks()
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["status"].as_str())
            .unwrap_or("<missing>")
    }

    /// The detail of check `name`, or `<missing>`.
    pub fn check_detail(&self, name: &str) -> &str {
        self.checks()
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["detail"].as_str())
            .unwrap_or("<missing>")
    }

    pub fn failed(&self) -> Vec<&str> {
        self.checks()
            .iter()
            .filter(|c| c["status"] == "fail")
            .filter_map(|c| c["name"].as_str())
            .collect()
    }

    pub fn reconciliation(&self) -> &Value {
        &self.json["audit"]["reconciliation"]
    }

    /// Everything about the run, for a failed assertion.
    pub fn context(&self) -> String {
        let mut table = String::new();
        for check in self.checks() {
            table.push_str(&format!(
                "  {:<13} {:<20} {}\n",
                check["status"].as_str().unwrap_or("?"),
                check["name"].as_str().unwrap_or("?"),
                check["detail"].as_str().unwrap_or("")
            ));
        }
        let json = serde_json::to_string_pretty(&self.json).unwrap_or_default();
        let stdout = if self.json.is_null() {
            format!("stdout (not JSON):\n{}\n", self.stdout)
        } else {
            String::new()
        };
        format!(
            "driver {:?}\nexit {} verdict {}\nchecks:\n{table}{stdout}json:\n{json}\nstderr:\n{}",
            self.args,
            self.code,
            self.verdict(),
            self.stderr
        )
    }

    pub fn expect_exit(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit status\n{}", self.context());
        self
    }

    pub fn expect_verdict(&self, verdict: &str) -> &Self {
        assert_eq!(self.verdict(), verdict, "verdict\n{}", self.context());
        self
    }

    pub fn expect_check(&self, name: &str, status: &str) -> &Self {
        assert_eq!(self.check(name), status, "check {name}\n{}", self.context());
        self
    }

    /// A FAIL run (exit 1, verdict fail) naming at least `name` among the failed checks.
    pub fn expect_fails(&self, name: &str) -> &Self {
        self.expect_exit(FAIL)
            .expect_verdict("fail")
            .expect_check(name, "fail")
    }

    /// A FAIL run where at least one of `names` failed.
    pub fn expect_fails_any(&self, names: &[&str]) -> &Self {
        self.expect_exit(FAIL).expect_verdict("fail");
        assert!(
            names.iter().any(|n| self.check(n) == "fail"),
            "none of {names:?} failed\n{}",
            self.context()
        );
        self
    }

    /// A PASS run: exit 0, verdict pass, every check passed or skipped.
    pub fn expect_pass(&self) -> &Self {
        self.expect_exit(PASS).expect_verdict("pass");
        let bad: Vec<_> = self
            .checks()
            .iter()
            .filter(|c| c["status"] != "pass" && c["status"] != "skipped")
            .collect();
        assert!(bad.is_empty(), "checks not passed\n{}", self.context());
        assert!(!self.checks().is_empty(), "no checks\n{}", self.context());
        self
    }

    pub fn expect_stderr(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.context()
        );
        self
    }
}
