//! Shared pieces of the `cluster_*` process-level tests: an in-process coordinator on
//! 127.0.0.1:0, `driver worker` / `driver --coordinator` child processes of the real binary,
//! signals, and bounded polling helpers.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use flashsale_driver::checkout::Control;
use flashsale_driver::cluster::auth::ClusterToken;
use flashsale_driver::cluster::coordinator::{self, CoordinatorConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The cluster token of these tests.
pub const TOKEN: &str = "cluster-test-token";

/// A coordinator serving in this process; stops when dropped.
pub struct Coordinator {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Coordinator {
    /// Serves a coordinator expecting `workers`, loading `target`, with token [`TOKEN`].
    pub async fn start(workers: usize, target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let config = CoordinatorConfig {
            expect_workers: workers,
            default_target: Some(target.to_string()),
            join_timeout: Duration::from_secs(30),
            admin_token: None,
            token: ClusterToken::new(TOKEN).unwrap(),
        };
        tokio::spawn(coordinator::run(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            url,
            stop: Some(stop),
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The `driver` binary with no FLASHSALE_* variables inherited.
pub fn driver() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_driver"));
    for (key, _) in std::env::vars() {
        if key.starts_with("FLASHSALE_") {
            command.env_remove(key);
        }
    }
    command.env("NO_COLOR", "1");
    command
}

/// A child process that is killed (and reaped) when dropped.
pub struct Proc {
    pub child: Child,
    /// Lines of its stderr, when captured.
    pub stderr: Option<std_mpsc::Receiver<String>>,
}

impl Proc {
    /// Spawns `command` with stdout discarded and stderr captured line by line.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("driver starts");
        let stderr = child.stderr.take().map(lines);
        Self { child, stderr }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends `signal` (a name such as `INT`, `STOP`, `CONT`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for a stderr line containing `needle`.
    pub fn wait_stderr(&self, needle: &str, limit: Duration) -> Option<String> {
        let lines = self.stderr.as_ref()?;
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Every stderr line so far (waiting briefly for the pipe to close after an exit).
    pub fn stderr_text(&self) -> String {
        let Some(lines) = &self.stderr else {
            return String::new();
        };
        let mut text = String::new();
        while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards the lines of `pipe` over a channel from a thread of its own.
fn lines(pipe: impl Read + Send + 'static) -> std_mpsc::Receiver<String> {
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A `driver worker` named `name` joining `coordinator` with `token`.
pub fn worker(coordinator: &str, name: &str, token: Option<&str>) -> Proc {
    let mut command = driver();
    command.args(["worker", "--coordinator", coordinator, "--name", name]);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    Proc::spawn(command)
}

/// Polls the stock at `target` until `done` holds for it, for at most `limit`.
pub async fn wait_for_stock(target: &str, limit: Duration, done: impl Fn(i64) -> bool) -> i64 {
    let mut control = Control::connect(target).await.unwrap();
    let deadline = Instant::now() + limit;
    loop {
        let stock = control.stock().await.unwrap().stock;
        if done(stock) {
            return stock;
        }
        assert!(
            Instant::now() < deadline,
            "stock {stock} still not as expected after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that the stock at `target` stops moving within `settle_within` of `at`: polled every
/// 10 ms until `at + settle_within + watch`, its last change must come before
/// `at + settle_within`. Returns how long after `at` that last change was seen.
pub async fn assert_load_stopped(
    target: &str,
    at: Instant,
    settle_within: Duration,
    watch: Duration,
) -> Duration {
    let mut control = Control::connect(target).await.unwrap();
    let end = at + settle_within + watch;
    let mut last = control.stock().await.unwrap().stock;
    let mut changed = Duration::ZERO;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let stock = control.stock().await.unwrap().stock;
        if stock != last {
            changed = at.elapsed();
            last = stock;
        }
    }
    assert!(
        changed < settle_within,
        "the stock still moved {changed:?} after the signal (allowed: {settle_within:?})"
    );
    changed
}
