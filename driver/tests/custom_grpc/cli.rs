//! The driver binary against the shop, described only by flags or by a spec file: the buggy
//! shop fails the audit (it oversells), the safe one passes; with reflection and with
//! `--proto`; a wrong method, a shop without reflection or a dead shop is exit 2.

use std::process::Command;

use serde_json::Value;

use super::shop::{self, RunningShop, Variant};

const USERS: &str = "300";
const STOCK: &str = "30";

/// The flags that describe the shop's checkout (all but `--proto`).
fn shop_flags() -> Vec<String> {
    let mut flags = shop::checkout_flags();
    flags.extend(["--stock-after-field", "remaining"].map(String::from));
    flags
}

/// The same checkout as a spec file (its .proto named relative to the file).
const SPEC: &str = r#"
[purchase]
call = "shop.v1.Orders/PlaceOrder"
data = '{"customer":"{{user}}","sku":"A1","qty":{{quantity}},"idempotency_key":"{{request_id}}"}'

[stock]
call = "shop.v1.Inventory/GetInventory"
data = '{"sku":"A1"}'
field = "available"

[reset]
call = "shop.v1.Inventory/Restock"
data = '{"sku":"A1","available":{{stock}}}'

[outcome]
purchased = 'reply.status == "CONFIRMED"'
sold_out = "code == FAILED_PRECONDITION"
order_id = "order_ref"
stock_after = "remaining"

[grpc]
proto = ["shop.proto"]
"#;

/// Runs the driver against `shop` with `args`: exit code, JSON report, stderr.
fn driver(target: &str, args: &[String]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_driver"))
        .args(["--target", target, "--users", USERS, "--stock", STOCK])
        .args(["--output", "json"])
        .args(args)
        .output()
        .expect("the driver runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().expect("an exit code"), json, stderr)
}

/// A spec file next to a copy of shop.proto, in a folder of this test's own.
fn spec_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "flashsale-custom-grpc-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(shop::proto_path(), dir.join("shop.proto")).unwrap();
    let path = dir.join("shop.toml");
    std::fs::write(&path, SPEC).unwrap();
    path
}

fn assert_oversold(code: i32, json: &Value, stderr: &str, shop: &RunningShop) {
    assert_eq!(code, 1, "{stderr}\n{json:#}");
    assert_eq!(json["verdict"], "fail", "{json:#}");
    let oversold = json["audit"]["oversold_units"].as_i64().unwrap();
    assert!(oversold > 0, "{json:#}");
    // What the driver counts is what the shop did.
    let sold = shop.shop.units_sold() as i64;
    assert_eq!(
        json["outcomes"]["purchased"].as_i64(),
        Some(sold),
        "{json:#}"
    );
    assert_eq!(
        json["audit"]["final_stock"].as_i64(),
        Some(shop.shop.stock())
    );
    assert_eq!(shop.shop.stock(), 30 - sold);
}

fn assert_held(code: i32, json: &Value, stderr: &str, shop: &RunningShop) {
    assert_eq!(code, 0, "{stderr}\n{json:#}");
    assert_eq!(json["verdict"], "pass");
    assert_eq!(json["outcomes"]["purchased"], 30, "{json:#}");
    assert_eq!(json["outcomes"]["sold_out"], 270, "{json:#}");
    assert_eq!(json["audit"]["final_stock"], 0);
    assert_eq!(shop.shop.units_sold(), 30);
}

#[test]
fn buggy_shop_fails_by_flags_through_reflection() {
    // Restocked by the run: the shop starts with a stock the run replaces.
    let shop = RunningShop::start(Variant::Buggy, 7, true);
    let (code, json, stderr) = driver(&shop.url(), &shop_flags());
    assert_oversold(code, &json, &stderr, &shop);
}

#[test]
fn safe_shop_passes_by_flags_through_reflection() {
    let shop = RunningShop::start(Variant::Safe, 7, true);
    let (code, json, stderr) = driver(&shop.url(), &shop_flags());
    assert_held(code, &json, &stderr, &shop);
}

#[test]
fn buggy_shop_fails_by_flags_with_proto_and_no_reflection() {
    let shop = RunningShop::start(Variant::Buggy, 7, false);
    let mut flags = shop_flags();
    flags.extend(["--proto".to_string(), shop::proto_path()]);
    let (code, json, stderr) = driver(&shop.url(), &flags);
    assert_oversold(code, &json, &stderr, &shop);
}

#[test]
fn spec_file_with_proto_safe_passes_and_buggy_fails() {
    let spec = spec_file("both").display().to_string();
    let args = ["--checkout".to_string(), spec];
    let safe = RunningShop::start(Variant::Safe, 7, false);
    let (code, json, stderr) = driver(&safe.url(), &args);
    assert_held(code, &json, &stderr, &safe);
    let buggy = RunningShop::start(Variant::Buggy, 7, false);
    let (code, json, stderr) = driver(&buggy.url(), &args);
    assert_oversold(code, &json, &stderr, &buggy);
    if let Some(dir) = std::path::Path::new(&args[1]).parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_wrong_method_is_exit_2_naming_the_methods() {
    let shop = RunningShop::start(Variant::Safe, 7, true);
    let mut flags = shop_flags();
    flags[1] = "shop.v1.Orders/Place".into();
    let (code, _, stderr) = driver(&shop.url(), &flags);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no method `Place`"), "{stderr}");
    assert!(stderr.contains("PlaceOrder"), "{stderr}");
    assert_eq!(shop.shop.units_sold(), 0);
}

#[test]
fn no_reflection_and_no_proto_is_exit_2_asking_for_proto() {
    let shop = RunningShop::start(Variant::Safe, 7, false);
    let (code, _, stderr) = driver(&shop.url(), &shop_flags());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("give the service's .proto files with --proto"),
        "{stderr}"
    );
}

#[test]
fn a_dead_shop_is_exit_2() {
    let target = format!("http://{}", shop::dead_address());
    let (code, _, stderr) = driver(&target, &shop_flags());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}
