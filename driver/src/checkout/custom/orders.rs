//! A custom checkout's own order listing ([`crate::spec::custom::OrdersSpec`]) read into the
//! audit's [`Book`]: the array at `list`, each element's order id, user, quantity and request
//! id at their paths. Nothing in the reply is trusted: a reply that is not an array, an element
//! without an order id or a valid quantity, or more orders than the run can explain make the
//! book unavailable, with the reason; never a panic.

use serde_json::Value;

use crate::checkout::book::{Book, BookState, ListedOrder};
use crate::spec::custom::OrdersSpec;

/// Most bytes of the listing's reply read (the other calls: 64 KiB).
pub const MAX_ORDERS_REPLY_BYTES: usize = 32 * 1024 * 1024;

/// Most orders a listing may hold when `acknowledged` purchases were acknowledged: twice that,
/// plus room for indeterminate replies that were applied.
pub fn listing_limit(acknowledged: u64) -> u64 {
    acknowledged.saturating_mul(2).saturating_add(100_000)
}

/// Reads the listing `reply` into a book (round 0: a custom checkout has no rounds), with the
/// run's user `prefix`; at most `limit` orders.
pub fn read_listing(spec: &OrdersSpec, reply: &Value, prefix: &str, limit: u64) -> BookState {
    match read(spec, reply, prefix, limit) {
        Ok(book) => BookState::Complete(book),
        Err(reason) => BookState::Failed(format!("the order listing {reason}")),
    }
}

fn read(spec: &OrdersSpec, reply: &Value, prefix: &str, limit: u64) -> Result<Book, String> {
    let list = match &spec.list {
        Some(path) => path
            .get(reply)
            .ok_or_else(|| format!("has nothing at `{path}`"))?,
        None => reply,
    };
    let where_ = || {
        spec.list
            .as_ref()
            .map_or("the reply".to_string(), |p| format!("`{p}`"))
    };
    let Value::Array(elements) = list else {
        return Err(format!("is not a JSON array at {}", where_()));
    };
    if elements.len() as u64 > limit {
        return Err(format!(
            "holds {} orders, more than the {limit} this run can explain; not used",
            elements.len()
        ));
    }
    let mut book = Book {
        round: 0,
        entries: Vec::with_capacity(elements.len()),
        ..Book::default()
    };
    for (i, element) in elements.iter().enumerate() {
        let text = |path: &Option<crate::spec::custom::FieldPath>| {
            path.as_ref()
                .and_then(|p| p.get_text(element))
                .unwrap_or_default()
        };
        let (user, request_id) = (text(&spec.user), text(&spec.request_id));
        let order_id = match &spec.order_id {
            Some(path) => path
                .get_text(element)
                .ok_or_else(|| format!("has an order (#{i}) without an id at `{path}`"))?,
            // Purchases are told apart by their request ids: so are the orders.
            None => request_id.clone(),
        };
        let quantity = spec
            .quantity
            .get_i64(element)
            .and_then(|q| u32::try_from(q).ok())
            .filter(|&q| q > 0)
            .ok_or_else(|| {
                format!(
                    "has an order (#{i}, id {order_id}) without a positive quantity at `{}`",
                    spec.quantity
                )
            })?;
        book.push(
            prefix,
            ListedOrder {
                order_id: &order_id,
                user: &user,
                quantity,
                request_id: &request_id,
            },
        );
    }
    Ok(book)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::custom::CustomFile;
    use crate::spec::ids::AttemptKey;
    use serde_json::json;

    fn spec(list: &str) -> OrdersSpec {
        let text = format!(
            r#"
[purchase]
url = "/buy"
[stock]
url = "/stock"
field = "remaining"
[outcome]
sold_out = "code == 409"
order_id = "order_id"
[orders]
url = "/orders"
list = "{list}"
order_id = "order_id"
user = "user"
quantity = "qty"
request_id = "request_id"
"#
        );
        let api = CustomFile::parse(&text).unwrap().compile().unwrap();
        let again = CustomFile::parse(&api.source).unwrap().compile().unwrap();
        assert_eq!(
            again.source, api.source,
            "the listing survives the round trip"
        );
        api.orders.unwrap()
    }

    fn order(id: &str, user: &str, qty: Value, request: &str) -> Value {
        json!({"order_id": id, "user": user, "qty": qty, "request_id": request})
    }

    #[test]
    fn reads_a_listing_into_a_book() {
        let reply = json!({"orders": [
            order("o-1", "u3", json!(2), "u3.0"),
            order("o-2", "someone", json!("1"), "elsewhere"),
        ]});
        let book = read_listing(&spec("orders"), &reply, "u", 10);
        let book = book.complete().expect("complete");
        assert_eq!(book.units(), 3);
        assert_eq!(
            book.entries[0].request,
            Some(AttemptKey { user: 3, seq: 0 })
        );
        assert_eq!(book.entries[0].user, Some(3));
        assert_eq!(book.entries[1].request, None);
        assert_ne!(book.entries[0].order, book.entries[1].order);
        let bare = json!([order("o-1", "u3", json!(2), "u3.0")]);
        for list in ["", "."] {
            assert_eq!(
                read_listing(&spec(list), &bare, "u", 10)
                    .complete()
                    .unwrap()
                    .entries
                    .len(),
                1
            );
        }
    }

    #[test]
    fn a_malformed_listing_is_unavailable_with_the_reason() {
        let s = spec("orders");
        for (reply, want) in [
            (json!({"orders": {"o-1": 1}}), "not a JSON array"),
            (json!({"items": []}), "nothing at `orders`"),
            (
                json!({"orders": [{"order_id": "o-1", "user": "u1"}]}),
                "positive quantity",
            ),
            (
                json!({"orders": [order("o-1", "u1", json!(-1), "u1.0")]}),
                "positive quantity",
            ),
            (
                json!({"orders": [order("o-1", "u1", json!(1u64 << 33), "u1.0")]}),
                "positive quantity",
            ),
            (json!({"orders": [{"qty": 1}]}), "without an id"),
            (
                json!({"orders": vec![order("a", "u1", json!(1), "u1.0"); 3]}),
                "more than the 2",
            ),
        ] {
            match read_listing(&s, &reply, "u", 2) {
                BookState::Failed(why) => assert!(why.contains(want), "{reply}: {why}"),
                other => panic!("{reply}: read as {other:?}"),
            }
        }
    }

    #[test]
    fn the_limit_grows_with_the_acknowledged_orders() {
        assert_eq!(listing_limit(0), 100_000);
        assert_eq!(listing_limit(10), 100_020);
        assert_eq!(listing_limit(u64::MAX), u64::MAX);
    }
}

#[cfg(test)]
mod by_request_id {
    use super::*;
    use crate::spec::custom::CustomFile;
    use crate::spec::ids::fnv1a;
    use serde_json::json;

    const SPEC: &str = r#"
[purchase]
url = "/buy"
[stock]
url = "/stock"
field = "remaining"
[outcome]
sold_out = "code == 409"
[orders]
url = "/orders"
list = "."
order_id = "order_id"
quantity = "qty"
request_id = "request_id"
"#;

    #[test]
    fn without_purchase_order_ids_the_request_id_is_the_order_id() {
        let spec = CustomFile::parse(SPEC)
            .unwrap()
            .compile()
            .unwrap()
            .orders
            .unwrap();
        assert!(spec.order_id.is_none());
        let reply = json!([{"order_id": "o-1", "qty": 1, "request_id": "u1.0"}]);
        let book = read_listing(&spec, &reply, "u", 10);
        // As the purchase's rules do without --order-id-field.
        assert_eq!(book.complete().unwrap().entries[0].order, fnv1a(b"u1.0"));
    }

    #[test]
    fn with_purchase_order_ids_the_listing_needs_one() {
        let text = SPEC.replace("order_id = \"order_id\"\n", "").replace(
            "sold_out = \"code == 409\"",
            "sold_out = \"code == 409\"\norder_id = \"id\"",
        );
        let err = CustomFile::parse(&text).unwrap().compile().unwrap_err();
        assert!(err.to_string().contains("--orders-order-id"), "{err}");
    }
}
