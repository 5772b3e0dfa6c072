//! The spec file: compiling gRPC and HTTP descriptions, the round trip of `source`, and
//! what is refused.

use super::*;

const GRPC: &str = r#"
[purchase]
call = "shop.v1.Orders/PlaceOrder"
data = '{"customer":"{{user}}","qty":{{quantity}},"key":"{{request_id}}"}'
[stock]
call = "shop.v1.Inventory/GetInventory"
field = "available"
[reset]
call = "shop.v1.Inventory/Restock"
data = '{"quantity":{{stock}}}'
[outcome]
purchased = 'reply.status == "CONFIRMED"'
sold_out = "code == FAILED_PRECONDITION"
order_id = "reply.order_ref"
"#;

#[test]
fn compiles_a_grpc_spec_and_round_trips_its_source() {
    let api = CustomFile::parse(GRPC).unwrap().compile().unwrap();
    assert_eq!(api.name, "shop.v1.Orders/PlaceOrder");
    assert!(matches!(api.transport, Transport::Grpc(ref g) if g.protos.is_empty()));
    assert!(api.can_reset() && api.origin.is_none());
    let again = CustomFile::parse(&api.source).unwrap().compile().unwrap();
    assert_eq!(again.source, api.source);
    assert_eq!(again.rules, api.rules);
}

#[test]
fn compiles_an_http_spec_with_an_origin() {
    let text = r#"
[purchase]
url = "http://127.0.0.1:8000/api/v1/checkout/safe"
body = '{"user":"{{user}}"}'
[stock]
url = "http://127.0.0.1:8000/api/v1/debug/stock"
field = "stock"
[outcome]
sold_out = "code == 409"
[http]
version = "2"
"#;
    let api = CustomFile::parse(text).unwrap().compile().unwrap();
    assert_eq!(api.origin.as_deref(), Some("http://127.0.0.1:8000"));
    assert_eq!(api.name, "POST http://127.0.0.1:8000/api/v1/checkout/safe");
    assert_eq!(api.stock_call.target, "GET");
    assert_eq!(api.transport, Transport::Http(HttpOptions { http2: true }));
}

#[test]
fn refuses_what_cannot_work() {
    for (text, want) in [
        ("", "no purchase call"),
        ("[purchase]\ncall = \"A/B\"", "not a gRPC method"),
        (
            "[purchase]\ncall = \"a.B/C\"\n[stock]\nurl = \"/s\"",
            "mixes gRPC",
        ),
        (
            "[purchase]\ncall = \"a.B/C\"\n[stock]\ncall = \"a.B/S\"\nfield = \"n\"",
            "--sold-out",
        ),
        (
            "[purchase]\ncall = \"a.B/C\"\n[stock]\ncall = \"a.B/S\"",
            "--stock-field",
        ),
        (
            "[purchase]\ncall = \"a.B/C\"\n[stock]\ncall = \"a.B/S\"\nfield = \"n\"\n[outcome]\nsold_out = \"code == 9\"\n[wat]\n",
            "unknown field",
        ),
        ("[purchase]\nurl = \"api\"", "give a path"),
        (
            "[purchase]\nurl = \"http://a:1/x\"\n[stock]\nurl = \"http://b:1/s\"",
            "different servers",
        ),
    ] {
        let err = CustomFile::parse(text)
            .and_then(|f| f.compile())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn dev_zero_as_a_spec_is_refused_at_the_cap() {
    let err = CustomFile::read(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/dev/zero"), "{err}");
    assert!(err.contains("262144-byte cap"), "{err}");
}
