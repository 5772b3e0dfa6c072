//! A run stopped before its planned end never passes: the real `driver` binary on its embedded
//! server, a 10 s sustained run (or `compare`) interrupted by SIGINT or SIGTERM once its users
//! are buying, exits with status 5 (stopped early) and says so in the JSON, text and HTML
//! reports; a failure seen before the stop still exits 1.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flashsale_driver::checkout::Control;
use flashsale_driver::observe::stop::StoppedBy;
use flashsale_driver::{EXIT_AUDIT_FAILED, EXIT_STOPPED};
use serde_json::Value;

const STOCK: i64 = 1_000_000;

/// The driver binary on its embedded server, selling for 10 s.
struct Driver {
    child: Child,
    stderr: mpsc::Receiver<String>,
    stdout: mpsc::Receiver<String>,
}

impl Driver {
    /// `driver ARGS --users 50 --stock 1000000 --duration 10s`.
    fn start(args: &[&str]) -> Self {
        let stock = STOCK.to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_driver"))
            .args(args)
            .args(["--users", "50", "--stock", &stock, "--duration", "10s"])
            .env_remove("FLASHSALE_TARGET")
            .env_remove("FLASHSALE_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("driver starts");
        let (line_tx, stderr) = mpsc::channel();
        let err = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let (out_tx, stdout) = mpsc::channel();
        let mut out = child.stdout.take().expect("stdout piped");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            let _ = out_tx.send(text);
        });
        Self {
            child,
            stderr,
            stdout,
        }
    }

    /// The embedded server's URL, from the driver's "starting run" log line.
    fn embedded_url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .stderr
                .recv_timeout(left)
                .expect("the driver logs its start");
            if let Some(rest) = line.split("target=\"").nth(1)
                && line.contains("starting run")
            {
                return rest.split('"').next().unwrap_or_default().to_string();
            }
        }
    }

    /// Waits until the users are buying, then sends `signal`.
    async fn interrupt_once_selling(&self, signal: &str) {
        let url = self.embedded_url();
        let mut control = Control::connect(&url).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut ticks = tokio::time::interval(Duration::from_millis(10));
        loop {
            ticks.tick().await;
            let reply = control.stock().await.unwrap();
            if reply.initial_stock == STOCK && reply.stock < STOCK - 50 {
                break;
            }
            assert!(Instant::now() < deadline, "the users never bought");
        }
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }

    /// Exit status, stdout and the rest of stderr.
    fn finish(mut self) -> (i32, String, String) {
        let status = self.child.wait().expect("driver exits");
        let stdout = self
            .stdout
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default();
        let stderr: Vec<String> = self.stderr.try_iter().collect();
        let code = status.code().expect("exited, not killed");
        (code, stdout, stderr.join("\n"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_a_sustained_run_is_marked_stopped_and_exits_5() {
    let html = std::env::temp_dir().join(format!("flashsale-{}-stopped.html", std::process::id()));
    let html_arg = html.to_str().unwrap();
    let driver = Driver::start(&["--mode", "safe", "--output", "json", "--report", html_arg]);
    let interrupted = Instant::now();
    driver.interrupt_once_selling("INT").await;
    let (code, stdout, stderr) = tokio::task::block_in_place(|| driver.finish());
    assert!(
        interrupted.elapsed() < Duration::from_secs(9),
        "the run went on to its end"
    );
    assert_eq!(code, i32::from(EXIT_STOPPED), "{stderr}\n{stdout}");
    assert!(stderr.contains("interrupted by Ctrl-C"), "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(json["verdict"], "inconclusive", "{json:#}");
    let stopped = &json["stopped"];
    assert_eq!(stopped["by"], "ctrl-c", "{json:#}");
    assert_eq!(stopped["planned_s"], 10.0);
    let after_s = stopped["after_s"].as_f64().unwrap();
    assert!(after_s > 0.0 && after_s < 9.0, "{after_s}");
    assert_eq!(json["run"]["duration_s"].as_f64(), Some(after_s));
    assert!(json["outcomes"]["attempts"].as_u64().unwrap() > 50);
    let checks = json["audit"]["checks"].as_array().unwrap();
    let completed = checks.iter().find(|c| c["name"] == "completed");
    assert_eq!(
        completed.map(|c| &c["status"]),
        Some(&Value::from("inconclusive")),
        "{json:#}"
    );
    // The audit still ran on what was sent: the book reconciles.
    assert_eq!(json["audit"]["conservation"]["holds"], true, "{json:#}");
    let page = std::fs::read_to_string(&html).unwrap();
    let _ = std::fs::remove_file(&html);
    assert!(page.contains("INCONCLUSIVE"), "{page}");
    assert!(page.contains("stopped by Ctrl-C after"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_sustained_run_is_named_in_the_table() {
    let driver = Driver::start(&["--mode", "safe"]);
    driver.interrupt_once_selling("TERM").await;
    let (code, stdout, stderr) = tokio::task::block_in_place(|| driver.finish());
    assert_eq!(code, i32::from(EXIT_STOPPED), "{stderr}\n{stdout}");
    assert!(
        stdout.contains("STOPPED EARLY: stopped by SIGTERM after"),
        "{stdout}"
    );
    assert!(stdout.contains("of the planned 10 s"), "{stdout}");
    assert!(
        stdout.contains("verdict: INCONCLUSIVE: stopped by SIGTERM"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_compare_skips_the_rest_and_exits_5() {
    let driver = Driver::start(&["compare", "--output", "json"]);
    driver.interrupt_once_selling("INT").await;
    let (code, stdout, stderr) = tokio::task::block_in_place(|| driver.finish());
    assert_eq!(code, i32::from(EXIT_STOPPED), "{stderr}\n{stdout}");
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "the runs not started are skipped: {json:#}");
    assert_eq!(runs[0]["stopped"]["by"], "ctrl-c", "{json:#}");
    assert_ne!(runs[0]["verdict"], "pass");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_before_the_stop_still_fails() {
    let server = flashsale_server::spawn(flashsale_server::ServerConfig::default())
        .await
        .unwrap();
    let argv = ["driver", "--target", &server.url(), "--mode", "buggy"];
    let spec = <flashsale_driver::cli::Cli as clap::Parser>::try_parse_from(argv)
        .unwrap()
        .run
        .to_spec()
        .unwrap();
    let mut report = flashsale_driver::run(&spec).await.unwrap();
    assert_eq!(report.verdict, "fail");
    report.mark_stopped(StoppedBy::Dashboard, 0.004);
    assert_eq!(report.verdict, "fail", "an oversell seen is an oversell");
    assert_eq!(report.exit_code(), EXIT_AUDIT_FAILED);
    assert_eq!(report.run.duration_s, None, "a burst has no duration");
    let stopped = report.stopped.unwrap();
    assert_eq!(
        (stopped.by, stopped.planned_s),
        (StoppedBy::Dashboard, None)
    );
    assert!(report.to_table().contains("STOPPED EARLY"));
    server.shutdown().await.unwrap();
}
