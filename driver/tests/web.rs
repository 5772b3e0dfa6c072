//! The web dashboard's HTTP API, end to end on ephemeral ports: start a run, follow its events,
//! stop it, find it in the history, download its reports; bad input, a second run, state
//! changes by GET or without the CSRF token, and a listener beyond loopback without the
//! cluster token are refused. Every wait has a deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use flashsale_driver::cli::Cli;
use flashsale_driver::cluster::auth::ClusterToken;
use flashsale_driver::web::form::cli_message;
use flashsale_driver::web::{WebConfig, WebError, serve};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

mod cluster_support;

/// Longest any single wait of these tests may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// A dashboard serving on an ephemeral port until dropped.
struct Dashboard {
    addr: SocketAddr,
    stop: CancellationToken,
    csrf: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn dashboard(bind: &str, config: WebConfig) -> Dashboard {
    let listener = TcpListener::bind(bind).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        serve(listener, config, async move { shutdown.cancelled().await })
            .await
            .unwrap();
    });
    let page = request(addr, "GET", "/", &[], None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page
        .body
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page embeds the CSRF token")
        .to_string();
    Dashboard { addr, stop, csrf }
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on its own connection.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("host: 127.0.0.1:{}\r\n", addr.port()));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("an answer in time");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (headers, body) = text.split_once("\r\n\r\n").expect("a whole response");
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    Reply {
        status,
        headers: headers.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

impl Dashboard {
    async fn post(&self, path: &str, body: Value) -> Reply {
        request(
            self.addr,
            "POST",
            path,
            &[("x-csrf-token", &self.csrf)],
            Some(&body),
        )
        .await
    }

    async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[], None).await
    }

    /// Waits until no run is in progress; the last snapshot.
    async fn idle(&self) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let state = self.get("/api/state").await.json();
            if state["busy"] == false {
                return state;
            }
            assert!(Instant::now() < deadline, "still busy: {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads the event stream until `enough` says so, returning the snapshots seen.
async fn follow_events(addr: SocketAddr, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /api/events HTTP/1.1\r\nhost: 127.0.0.1:{}\r\naccept: text/event-stream\r\n\r\n",
        addr.port()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut text = String::new();
    let mut buf = vec![0; 64 * 1024];
    let deadline = Instant::now() + DEADLINE;
    while !enough(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("events ran dry; saw {seen:?}"))
            .unwrap();
        assert!(n > 0, "the event stream closed");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        // Whole lines only; chunk-size lines of the transfer encoding are not `data:`.
        while let Some((line, rest)) = text.split_once('\n') {
            if let Some(data) = line.trim_end().strip_prefix("data: ")
                && let Ok(value) = serde_json::from_str::<Value>(data)
            {
                seen.push(value);
            }
            text = rest.to_string();
        }
    }
    seen
}

/// A live snapshot's latency figures: requests in the last second, p50 <= p90 <= p99, all
/// plausible for a loopback checkout (above 1 µs, below 10 s).
fn assert_live_latency(live: &Value) {
    let latency = &live["latency"];
    let count = latency["count"].as_u64().unwrap_or(0);
    assert!(count > 0, "latencies of the last second: {live}");
    assert!(
        count <= live["attempts"].as_u64().unwrap(),
        "no more than attempted: {live}"
    );
    let p = |name: &str| latency[name].as_u64().unwrap();
    let (p50, p90, p99) = (p("p50_us"), p("p90_us"), p("p99_us"));
    assert!(
        0 < p50 && p50 <= p90 && p90 <= p99 && p99 < 10_000_000,
        "{latency}"
    );
}

fn form(mode: &str, users: u32, stock: u32, duration: &str) -> Value {
    json!({ "mode": mode, "users": users.to_string(), "stock": stock.to_string(), "duration": duration })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_follow_stop_history_and_downloads() {
    let web = dashboard("127.0.0.1:0", WebConfig::default()).await;
    // Long enough that only Stop can end it within the test.
    let started = Instant::now();
    let reply = web
        .post("/api/runs", form("safe", 50, 1_000_000, "10m"))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.json()["id"].as_u64().unwrap();

    // Live: several snapshots of this run with growing attempts and a polled stock.
    let seen = follow_events(web.addr, |seen| {
        seen.iter()
            .filter(|s| s["live"]["attempts"].as_u64().unwrap_or(0) > 0)
            .count()
            >= 3
    })
    .await;
    let live: Vec<&Value> = seen.iter().filter(|s| !s["live"].is_null()).collect();
    assert!(
        live.iter()
            .all(|s| s["run"]["id"] == id && s["busy"] == true)
    );
    let first = live.first().unwrap()["live"]["attempts"].as_u64().unwrap();
    let last = live.last().unwrap()["live"]["attempts"].as_u64().unwrap();
    assert!(last > first, "attempts grow live: {first} then {last}");
    assert!(
        live.last().unwrap()["live"]["stock_points"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "the stock chart has points"
    );
    // Latency percentiles of the last second, live, while the run goes.
    assert_live_latency(&live.last().unwrap()["live"]);

    let stop = web.post("/api/stop", json!({})).await;
    assert_eq!((stop.status, stop.json()["id"].as_u64()), (202, Some(id)));
    let state = web.idle().await;
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "Stop ended the 10-minute run"
    );
    // Stopped, not finished: who stopped it and when, and never a pass.
    assert_eq!(state["run"]["phase"], "stopped", "{state}");
    assert_eq!(state["run"]["stopped"]["by"], "dashboard", "{state}");
    assert_eq!(state["run"]["verdict"], "inconclusive");
    assert_eq!(state["history"][0]["phase"], "stopped", "{state}");

    let history = web.get("/api/runs").await.json();
    let runs = history["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], id);
    let entry = web.get(&format!("/api/runs/{id}")).await.json();
    assert_eq!(entry["result"]["verdict"], "inconclusive");
    assert!(
        entry["result"]["audit"]["checks"]
            .as_array()
            .is_some_and(|c| c.len() > 5)
    );

    let json_report = web.get(&format!("/api/runs/{id}/report.json")).await;
    assert_eq!(json_report.status, 200);
    assert!(
        json_report
            .headers
            .contains("content-disposition: attachment")
    );
    let report = json_report.json();
    assert_eq!(report["run"]["mode"], "safe");
    assert_eq!(report["stopped"]["by"], "dashboard", "{report:#}");
    assert_eq!(report["stopped"]["planned_s"], 600.0);
    assert_eq!(report["run"]["duration_s"], report["stopped"]["after_s"]);
    assert!(report["run"]["elapsed_s"].as_f64().unwrap() < 300.0);
    let html = web.get(&format!("/api/runs/{id}/report.html")).await;
    assert_eq!(html.status, 200);
    assert!(html.body.starts_with("<!DOCTYPE html>") && !html.body.contains("<script"));
    assert_eq!(web.get("/api/runs/999/report.json").await.status, 404);
    // Nothing left to stop.
    assert_eq!(web.post("/api/stop", json!({})).await.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_cli_message() {
    let web = dashboard("127.0.0.1:0", WebConfig::default()).await;
    let reply = web.post("/api/runs", form("safe", 0, 10, "")).await;
    assert_eq!(reply.status, 400);
    let cli = Cli::try_parse_from(["driver", "--mode", "safe", "--users", "0"]).unwrap_err();
    assert_eq!(reply.json()["error"], cli_message(&cli));
    for bad in [
        json!({ "mode": "fast" }),
        json!({ "mode": "safe", "duration": "61m" }),
        json!({ "mode": "safe", "stock": "-1" }),
        json!({ "mode": "safe", "quantity": "0" }),
        json!({ "mode": "safe", "target": "grpc://x:1" }),
        json!({ "users": "10" }),
    ] {
        let reply = web.post("/api/runs", bad.clone()).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert!(!reply.json()["error"].as_str().unwrap().is_empty());
    }
    // Unknown fields are not silently ignored.
    let unknown = web
        .post("/api/runs", json!({ "mode": "safe", "userz": "5" }))
        .await;
    assert!(unknown.status >= 400 && unknown.status < 500);
    assert_eq!(
        web.post("/api/compare", form("", 0, 1, "")).await.status,
        400
    );
    // Nothing was started.
    assert_eq!(web.get("/api/runs").await.json()["runs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_at_a_time() {
    let web = dashboard("127.0.0.1:0", WebConfig::default()).await;
    let first = web
        .post("/api/runs", form("safe", 20, 1_000_000, "10m"))
        .await;
    assert_eq!(first.status, 202);
    let second = web.post("/api/runs", form("buggy", 20, 10, "")).await;
    assert_eq!(second.status, 409, "{}", second.body);
    assert!(second.json()["error"].as_str().unwrap().contains("#1"));
    assert_eq!(
        web.post("/api/compare", form("", 20, 10, "")).await.status,
        409
    );
    assert_eq!(web.post("/api/stop", json!({})).await.status, 202);
    web.idle().await;
    let runs = web.get("/api/runs").await.json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_need_post_and_the_csrf_token() {
    let web = dashboard("127.0.0.1:0", WebConfig::default()).await;
    for path in ["/api/stop", "/api/compare"] {
        assert_eq!(web.get(path).await.status, 405, "GET {path}");
    }
    let body = form("safe", 5, 5, "");
    let missing = request(web.addr, "POST", "/api/runs", &[], Some(&body)).await;
    assert_eq!(missing.status, 403);
    let wrong = request(
        web.addr,
        "POST",
        "/api/runs",
        &[("x-csrf-token", "not-the-token")],
        Some(&body),
    )
    .await;
    assert_eq!(wrong.status, 403);
    let stop = request(web.addr, "POST", "/api/stop", &[], None).await;
    assert_eq!(stop.status, 403);
    assert_eq!(web.get("/api/runs").await.json()["runs"], json!([]));
    // A loopback dashboard answers only to loopback names (DNS rebinding).
    let rebound = request(web.addr, "GET", "/", &[("host", "evil.example")], None).await;
    assert!(
        rebound.status == 421 || rebound.status == 400,
        "{}",
        rebound.status
    );
    // The page allows only its own script.
    let page = web.get("/").await;
    assert!(
        page.headers
            .contains("content-security-policy: default-src 'none'; script-src 'self'")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_starting_needs_the_cluster_token() {
    let no_token = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refused = serve(no_token, WebConfig::default(), async {}).await;
    assert!(
        matches!(refused, Err(WebError::TokenRequired(_))),
        "{refused:?}"
    );

    let config = WebConfig {
        token: Some(ClusterToken::new("s3cret-token").unwrap()),
        ..WebConfig::default()
    };
    let web = dashboard("0.0.0.0:0", config).await;
    // Viewing stays open.
    assert_eq!(web.get("/api/state").await.status, 200);
    let body = form("safe", 0, 5, "");
    let csrf = ("x-csrf-token", web.csrf.as_str());
    for auth in [None, Some("Bearer wrong"), Some("s3cret-token")] {
        let mut headers = vec![csrf];
        headers.extend(auth.map(|a| ("authorization", a)));
        let reply = request(web.addr, "POST", "/api/runs", &headers, Some(&body)).await;
        assert_eq!(reply.status, 401, "{auth:?}");
    }
    // With the token the request goes through to validation (users 0: 400).
    let with_token = request(
        web.addr,
        "POST",
        "/api/runs",
        &[csrf, ("authorization", "Bearer s3cret-token")],
        Some(&body),
    )
    .await;
    assert_eq!(with_token.status, 400, "{}", with_token.body);
    let stop = request(web.addr, "POST", "/api/stop", &[csrf], None).await;
    assert_eq!(stop.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_compare_side_by_side_and_all_modes() {
    let web = dashboard("127.0.0.1:0", WebConfig::default()).await;
    for mode in ["safe", "buggy"] {
        let reply = web.post("/api/runs", form(mode, 50, 20, "")).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        web.idle().await;
    }
    let cmp = web.get("/api/comparison.json?ids=1,2").await;
    assert_eq!(cmp.status, 200, "{}", cmp.body);
    let labels: Vec<String> = cmp.json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, ["#1 safe", "#2 buggy"]);
    let page = web.get("/api/comparison.html?ids=2,1").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("#2 buggy") && page.body.contains("#1 safe"));
    assert_eq!(web.get("/api/comparison.json?ids=1,x").await.status, 400);
    assert_eq!(web.get("/api/comparison.json?ids=1,7").await.status, 404);

    // "All modes": the four runs of `driver compare`, one entry.
    let reply = web.post("/api/compare", form("", 40, 10, "")).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.json()["id"].as_u64().unwrap();
    let state = web.idle().await;
    assert_eq!(state["run"]["id"], id);
    assert_eq!(state["run"]["kind"], "compare");
    let entry = web.get(&format!("/api/runs/{id}")).await.json();
    let runs: Vec<&str> = entry["result"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(runs, ["buggy", "unstable", "safe/mutex", "safe/atomic"]);
    // The safe runs never oversell, whatever the buggy ones did.
    for run in &entry["result"]["runs"].as_array().unwrap()[2..] {
        assert_eq!(run["audit"]["oversold_units"], 0, "{}", run["label"]);
    }
    // A comparison's runs can be compared with single runs too.
    let mixed = web.get(&format!("/api/comparison.json?ids=1,{id}")).await;
    assert_eq!(mixed.json()["runs"].as_array().unwrap().len(), 5);
}

/// The coordinator's dashboard: its runs are distributed over the coordinator's workers, show
/// live figures from the coordinator's updates, stop through the coordinator, and the report
/// has a row per worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_dashboard_distributes_runs() {
    let server = flashsale_server::spawn(flashsale_server::ServerConfig::default())
        .await
        .unwrap();
    let coordinator = cluster_support::Coordinator::start(2, &server.url()).await;
    let token = ClusterToken::new(cluster_support::TOKEN).unwrap();
    let stop_workers = CancellationToken::new();
    for name in ["w1", "w2"] {
        let (url, token, stop) = (coordinator.url.clone(), token.clone(), stop_workers.clone());
        tokio::spawn(async move {
            let _ = flashsale_driver::cluster::worker::run(&url, name, Some(&token), async move {
                stop.cancelled().await
            })
            .await;
        });
    }
    let web = dashboard(
        "127.0.0.1:0",
        WebConfig {
            target: None,
            coordinator: Some(coordinator.url.clone()),
            token: Some(token),
        },
    )
    .await;
    let reply = web
        .post("/api/runs", form("safe", 100, 1_000_000, "10m"))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.json()["id"].as_u64().unwrap();
    // Live figures come from the coordinator's progress updates: the summed latencies and
    // one row per worker, each running with its own attempts.
    let rows_of = |s: &Value| -> Vec<(String, String, u64)> {
        s["live"]["workers"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|w| {
                        (
                            w["name"].as_str().unwrap_or_default().to_string(),
                            w["state"].as_str().unwrap_or_default().to_string(),
                            w["attempts"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let both_busy = |s: &Value| {
        let rows = rows_of(s);
        rows.len() == 2 && rows.iter().all(|(_, _, attempts)| *attempts > 0)
    };
    let seen = follow_events(web.addr, |seen| {
        seen.iter()
            .any(|s| both_busy(s) && !s["live"]["latency"].is_null())
    })
    .await;
    let live = seen
        .iter()
        .rev()
        .find(|s| both_busy(s) && !s["live"]["latency"].is_null())
        .unwrap();
    let mut rows = rows_of(live);
    rows.sort();
    assert_eq!(
        rows.iter()
            .map(|(name, state, _)| (name.as_str(), state.as_str()))
            .collect::<Vec<_>>(),
        [("w1", "running"), ("w2", "running")],
        "{live}"
    );
    let row_sum: u64 = rows.iter().map(|(_, _, attempts)| attempts).sum();
    assert_eq!(
        row_sum,
        live["live"]["attempts"].as_u64().unwrap(),
        "the rows add up to the summed counters"
    );
    assert_live_latency(&live["live"]);
    assert_eq!(web.post("/api/stop", json!({})).await.status, 202);
    let state = web.idle().await;
    assert_eq!(state["run"]["phase"], "stopped", "{state}");
    let report = web.get(&format!("/api/runs/{id}/report.json")).await.json();
    assert_eq!(report["run"]["coordinator"], coordinator.url.as_str());
    assert_eq!(report["stopped"]["by"], "dashboard", "{report:#}");
    assert_ne!(report["verdict"], "pass");
    let workers: Vec<&str> = report["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert_eq!(report["audit"]["oversold_units"], 0);
    assert!(
        report["run"]["elapsed_s"].as_f64().unwrap() < 600.0,
        "Stop ended it"
    );
    stop_workers.cancel();
}

/// The dashboard does not slow the load: a sustained run watched by three event streams
/// against the same run unwatched. Prints the ratio (no timed assertion); see docs/web.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: cargo test --release -p flashsale-driver --test web -- --ignored --nocapture"]
async fn measure_watched_versus_unwatched_throughput() {
    let web = dashboard("127.0.0.1:0", WebConfig::default()).await;
    let duration = std::env::var("WEB_BENCH_DURATION").unwrap_or_else(|_| "5s".into());
    let mut rates = [Vec::new(), Vec::new()];
    for round in 0..4 {
        let watched = round % 2 == 1;
        let reply = web
            .post("/api/runs", form("safe", 200, 100_000_000, &duration))
            .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        let id = reply.json()["id"].as_u64().unwrap();
        let watchers: Vec<_> = (0..if watched { 3 } else { 0 })
            .map(|_| {
                let addr = web.addr;
                tokio::spawn(follow_events(addr, move |seen| {
                    seen.iter()
                        .any(|s| s["busy"] == false && s["run"]["id"] == id)
                }))
            })
            .collect();
        web.idle().await;
        let mut events = 0;
        for watcher in watchers {
            events += watcher.await.unwrap().len();
        }
        let report = web.get(&format!("/api/runs/{id}/report.json")).await.json();
        let rps = report["throughput_rps"].as_f64().unwrap();
        println!(
            "run {id}: watched by {} streams ({events} events): {rps:.0} req/s",
            if watched { 3 } else { 0 }
        );
        rates[usize::from(watched)].push(rps);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (none, three) = (mean(&rates[0]), mean(&rates[1]));
    println!(
        "unwatched {none:.0} req/s, three streams {three:.0} req/s: ratio {:.3}",
        three / none
    );
}
