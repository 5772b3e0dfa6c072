//! The README's "Benchmark with ghz" commands, checked without ghz (it is on no registry CI
//! uses): every ghz flag must be one of ghz's options, and the payloads ghz would send, rendered
//! from the `-d` templates as ghz renders them, go to the same RPC through grpcurl with the same
//! descriptor source and must be accepted. The section's grpcurl commands run as written.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use flashsale_server::{ServerConfig, spawn};
use serde_json::Value;

use crate::support::{grpcurl, run, workspace_root};

/// The address every command in the README talks to.
const README_TARGET: &str = "localhost:50051";
/// Calls rendered from each ghz command (request numbers 0, 1, 2, ...).
const CALLS_PER_COMMAND: u64 = 3;

/// What a ghz command line asks for.
#[derive(Debug, Default)]
struct Ghz {
    call: String,
    data: String,
    proto: Option<String>,
    import_paths: Vec<String>,
    host: String,
    total: Option<u64>,
    concurrency: Option<u64>,
    connections: Option<u64>,
    insecure: bool,
}

impl Ghz {
    /// Parses `ghz ARGS...`, refusing any flag outside the documented ghz options listed here.
    fn parse(words: &[String]) -> Ghz {
        let mut ghz = Ghz::default();
        let mut words = words.iter().skip(1);
        while let Some(word) = words.next() {
            let mut value = || {
                words
                    .next()
                    .unwrap_or_else(|| panic!("ghz {word} needs a value"))
                    .clone()
            };
            match word.as_str() {
                "--insecure" => ghz.insecure = true,
                "--call" => ghz.call = value(),
                "-d" | "--data" => ghz.data = value(),
                "--proto" => ghz.proto = Some(value()),
                "-i" | "--import-paths" => ghz
                    .import_paths
                    .extend(value().split(',').map(str::to_owned)),
                "-n" | "--total" => ghz.total = Some(value().parse().unwrap()),
                "-c" | "--concurrency" => ghz.concurrency = Some(value().parse().unwrap()),
                "--connections" => ghz.connections = Some(value().parse().unwrap()),
                "-z" | "--duration" => {
                    value();
                }
                flag if flag.starts_with('-') => {
                    panic!("`{flag}` is not a ghz option this check knows")
                }
                host => ghz.host = host.to_owned(),
            }
        }
        ghz
    }

    /// The grpcurl flags that give it the descriptor source this ghz command uses: reflection,
    /// or the proto file with ghz's import paths (ghz puts the proto's directory and `.` before
    /// the given ones).
    fn descriptor_flags(&self) -> Vec<String> {
        let Some(proto) = &self.proto else {
            return Vec::new();
        };
        let proto_dir = Path::new(proto).parent().unwrap().to_str().unwrap();
        let mut flags = Vec::new();
        let given = self.import_paths.iter().map(String::as_str);
        for path in [proto_dir, "."].into_iter().chain(given) {
            flags.extend(["-import-path".to_owned(), path.to_owned()]);
        }
        flags.extend(["-proto".to_owned(), proto.clone()]);
        flags
    }
}

/// Renders a ghz `-d` template for request `number` as ghz does: request numbers count from 0,
/// workers are `g<worker>c<connection>`, `{{.UUID}}` is a new v4 UUID per call. Any other
/// template action fails the test, so the README cannot use one this check does not render.
fn render(template: &str, number: u64, connections: u64) -> String {
    let worker = format!("g{number}c{}", number % connections);
    let rendered = template
        .replace("{{.RequestNumber}}", &number.to_string())
        .replace("{{.WorkerID}}", &worker)
        .replace("{{.UUID}}", &uuid::Uuid::new_v4().to_string());
    assert!(
        !rendered.contains("{{"),
        "template action not rendered by this test: {template}"
    );
    rendered
}

/// The shell commands of the README section `heading`, continuation lines joined, comments
/// dropped.
fn readme_commands(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let section = readme
        .split(&format!("\n{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has no section `{heading}`"));
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in section.lines() {
        match line.trim() {
            "```sh" => in_block = true,
            "```" => in_block = false,
            heading if !in_block && heading.starts_with('#') => break,
            line if !in_block || line.is_empty() || line.starts_with('#') => {}
            line => match line.strip_suffix('\\') {
                Some(start) => pending.push_str(start),
                None => commands.push(std::mem::take(&mut pending) + line),
            },
        }
    }
    commands
}

/// The README's grpcurl command, pointed at the test server.
async fn run_grpcurl(words: &[String], addr: SocketAddr) -> Value {
    let args = words[1..]
        .iter()
        .map(|word| word.replace(README_TARGET, &addr.to_string()));
    run("grpcurl", args).await.json()
}

/// Sends what `ghz` would send for its first calls; returns the RPC and whether the command
/// uses a proto file.
async fn emulate_ghz(ghz: &Ghz, addr: SocketAddr) -> (String, bool) {
    assert!(ghz.insecure, "the server is plaintext: {ghz:?}");
    assert_eq!(ghz.host, README_TARGET, "{ghz:?}");
    // ghz's defaults: -n 200, -c 50, one connection; it refuses -n < -c and more connections
    // than concurrent calls.
    let concurrency = ghz.concurrency.unwrap_or(50);
    assert!(ghz.total.unwrap_or(200) >= concurrency, "-n < -c: {ghz:?}");
    let connections = ghz.connections.unwrap_or(1);
    assert!(connections <= concurrency, "--connections > -c: {ghz:?}");
    let rpc = ghz
        .call
        .strip_prefix("flashsale.v1.Checkout/")
        .unwrap_or_else(|| panic!("not a checkout call: {ghz:?}"));
    let flags = ghz.descriptor_flags();
    let mut users = HashSet::new();
    for number in 0..CALLS_PER_COMMAND {
        let payload = render(&ghz.data, number, connections);
        let user = serde_json::from_str::<Value>(&payload).unwrap()["user_id"].clone();
        assert!(
            users.insert(user.to_string()),
            "user {user} repeats: {ghz:?}"
        );
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.extend(["-d", &payload]);
        let reply = grpcurl(addr, &args, &[&ghz.call]).await.json();
        let outcome = reply["outcome"].as_str().unwrap_or_default();
        assert!(
            ["OUTCOME_PURCHASED", "OUTCOME_SOLD_OUT"].contains(&outcome),
            "{payload} to {}: {reply}",
            ghz.call
        );
    }
    (rpc.to_owned(), ghz.proto.is_some())
}

#[tokio::test]
#[ignore = "needs grpcurl: `bash .ci/tools.sh` (pinned, in CI's virtual environment)"]
async fn readme_ghz_payloads_are_accepted() {
    let server = spawn(ServerConfig {
        failure_rate: 0.0, // a rejected payload must not hide behind an injected UNAVAILABLE
        ..ServerConfig::default()
    })
    .await
    .unwrap();

    let mut covered = HashSet::new();
    let mut last_reset = None;
    for command in readme_commands("### Benchmark with ghz") {
        let words = shell_words::split(&command).unwrap();
        match words[0].as_str() {
            "grpcurl" => {
                let reply = run_grpcurl(&words, server.addr()).await;
                if command.contains("/Reset") {
                    last_reset = Some(reply);
                } else if let Some(reset) = &last_reset {
                    // GetStock after the ghz run: the emulated purchases all landed.
                    assert_eq!(reply["initialStock"], reset["initialStock"], "{reply}");
                    assert_eq!(reply["orders"], CALLS_PER_COMMAND.to_string(), "{reply}");
                }
            }
            "ghz" => {
                covered.insert(emulate_ghz(&Ghz::parse(&words), server.addr()).await);
            }
            other => panic!("unexpected command `{other}` in the ghz section"),
        }
    }

    for rpc in ["PurchaseBuggy", "PurchaseUnstable", "PurchaseSafe"] {
        for proto in [false, true] {
            assert!(
                covered.contains(&(rpc.to_owned(), proto)),
                "no ghz command for {rpc} with proto file {proto}: {covered:?}"
            );
        }
    }
    server.shutdown().await.unwrap();
}
