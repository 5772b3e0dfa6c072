//! Reports for CI end to end: `--junit` and `--csv` from real runs of the driver binary against
//! its embedded server (127.0.0.1:0). The JUnit files are checked for one test case per audit
//! check and (ignored unless xmllint is installed: Debian's libxml2-utils, which .ci/tools.sh
//! installs) validated against the Jenkins JUnit schema in tests/junit/junit-10.xsd.

use std::path::{Path, PathBuf};
use std::process::Command;

use flashsale_driver::audit::{Check, CheckId, Status};
use flashsale_driver::report::junit;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flashsale-ci-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the driver with `args` plus `--junit DIR/junit.xml --csv DIR/csv --output json`;
/// returns its exit status and JSON output.
fn driver(dir: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_driver"))
        .args(args)
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .arg("--csv")
        .arg(dir.join("csv"))
        .args(["--output", "json"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), json)
}

fn count(xml: &str, needle: &str) -> usize {
    xml.matches(needle).count()
}

fn checks_of(report: &serde_json::Value) -> Vec<(String, String)> {
    report["audit"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `xmllint --schema` on `file`: panics with its output when the file is not valid.
fn validate(file: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/junit/junit-10.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .arg(file)
        .output()
        .expect("xmllint (Debian libxml2-utils) is installed");
    assert!(
        out.status.success(),
        "{} is not valid JUnit: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_buggy_run_writes_one_test_case_per_check_and_its_tables() {
    let dir = temp_dir("buggy");
    let (code, report) = driver(&dir, &["--mode", "buggy", "--users", "300"]);
    assert_eq!(code, 1, "the buggy checkout oversells");
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let checks = checks_of(&report);
    assert_eq!(count(&xml, "<testsuite "), 1);
    assert_eq!(count(&xml, "<testcase "), checks.len());
    let failed = checks.iter().filter(|(_, s)| s == "fail").count();
    assert!(failed > 0);
    assert_eq!(count(&xml, "<failure "), failed);
    let skipped = checks.iter().filter(|(_, s)| s == "skipped").count();
    assert_eq!(count(&xml, "<skipped "), skipped);
    for (name, _) in &checks {
        assert!(
            xml.contains(&format!("<testcase name=\"{name}\"")),
            "{name}"
        );
    }
    assert!(xml.contains(&format!("tests=\"{}\" failures=\"{failed}\"", checks.len())));
    assert!(xml.contains("<failure type=\"fail\" message=\""));

    let series = std::fs::read_to_string(dir.join("csv/series.csv")).unwrap();
    let mut lines = series.lines();
    assert_eq!(
        lines.next().unwrap(),
        "t_s,requests_per_s,attempts,purchased,sold_out,errors,timeouts,p50_ms,p90_ms,p99_ms,\
         max_ms,errors_by_status"
    );
    let buckets = report["series"]["buckets"].as_array().unwrap();
    assert_eq!(lines.count(), buckets.len());
    let attempts: u64 = series
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(attempts, 300, "every attempt is in the series");
    let replicas = std::fs::read_to_string(dir.join("csv/replicas.csv")).unwrap();
    assert_eq!(replicas.lines().count(), 2, "{replicas}");
    let stock = std::fs::read_to_string(dir.join("csv/stock.csv")).unwrap();
    assert!(stock.starts_with("t_s,stock\n0,100\n"), "{stock}");
    assert!(
        !dir.join("csv/workers.csv").exists(),
        "no workers in a standalone run"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs xmllint (Debian libxml2-utils; .ci/tools.sh installs it)"]
fn junit_of_a_run_and_of_a_comparison_is_valid_against_the_schema() {
    let dir = temp_dir("schema-run");
    let (_, report) = driver(&dir, &["--mode", "safe", "--users", "200", "--stock", "50"]);
    validate(&dir.join("junit.xml"));
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(count(&xml, "<testcase "), checks_of(&report).len());

    let dir = temp_dir("schema-compare");
    let (code, comparison) = driver(&dir, &["compare", "--users", "100", "--stock", "20"]);
    assert_eq!(code, 0);
    validate(&dir.join("junit.xml"));
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let runs = comparison["runs"].as_array().unwrap();
    assert_eq!(count(&xml, "<testsuite "), runs.len());
    let cases: usize = runs.iter().map(|r| checks_of(r).len()).sum();
    assert_eq!(count(&xml, "<testcase "), cases);
    for label in ["buggy", "unstable", "safe/mutex", "safe/atomic"] {
        assert!(xml.contains(&format!("<testsuite name=\"flashsale.{label}\"")));
        assert!(
            dir.join(format!("csv/{}_series.csv", label.replace('/', "-")))
                .exists()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs xmllint (Debian libxml2-utils; .ci/tools.sh installs it)"]
async fn hostile_strings_stay_valid_xml() {
    let server = flashsale_server::spawn(flashsale_server::ServerConfig::default())
        .await
        .unwrap();
    let url = server.url();
    let argv = [
        "driver", "--mode", "safe", "--users", "50", "--target", &url,
    ];
    let spec = <flashsale_driver::cli::Cli as clap::Parser>::try_parse_from(argv)
        .unwrap()
        .run
        .to_spec()
        .unwrap();
    let mut report = flashsale_driver::run(&spec).await.unwrap();
    server.shutdown().await.unwrap();
    let hostile = "]]> <x a=\"'\"> & \u{0}\u{1b}[31m\u{7}\u{fffe}\u{ffff}\ttab\r\nline é 😀";
    report.run.rpc = hostile.to_string();
    report.add_checks([
        // A threshold's name carries the user's expression: the one place a name is free text.
        Check::threshold(hostile, false, hostile.to_string()),
        Check::new(
            CheckId::Completed,
            Status::Inconclusive,
            hostile.to_string(),
        ),
        Check::new(CheckId::FinalState, Status::Skipped, hostile.to_string()),
    ]);
    let dir = temp_dir("hostile");
    let file = dir.join("junit.xml");
    std::fs::write(&file, junit::report_xml(&report)).unwrap();
    validate(&file);
    let xml = std::fs::read_to_string(&file).unwrap();
    assert_eq!(count(&xml, "<testcase "), report.audit.checks.len());
    assert!(!xml.contains("]]>") && !xml.contains('\u{0}') && !xml.contains('\u{1b}'));
    let inconclusive = report.audit.with_status(Status::Inconclusive).len();
    assert!(inconclusive >= 1);
    assert_eq!(count(&xml, "<error type=\"inconclusive\""), inconclusive);
    let _ = std::fs::remove_dir_all(dir);
}
