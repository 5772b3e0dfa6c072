//! Request ids on the memory store: a retry of a placed request is answered its order (the same
//! order id, nothing taken) on every path, even once the stock is gone; concurrent tries of one
//! request place one order; a Reset forgets them. On a paused clock, called directly.

use std::sync::Arc;

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::{CheckoutService, MemoryStore, ServerConfig, Store, Strategy};
use tonic::{Request, Response, Status};

#[derive(Clone, Copy, Debug)]
enum Path {
    Buggy,
    Unstable,
    Safe(Strategy),
}

const PATHS: [Path; 6] = [
    Path::Buggy,
    Path::Unstable,
    Path::Safe(Strategy::Mutex),
    Path::Safe(Strategy::Atomic),
    Path::Safe(Strategy::RowLock),
    Path::Safe(Strategy::Serializable),
];

fn service(path: Path, stock: i64) -> (Arc<CheckoutService>, Arc<MemoryStore>) {
    let config = ServerConfig {
        stock,
        strategy: match path {
            Path::Safe(strategy) => strategy,
            _ => Strategy::Atomic,
        },
        failure_rate: 0.0,
        ..ServerConfig::default()
    };
    let store = Arc::new(MemoryStore::from_config(&config));
    (
        Arc::new(CheckoutService::new(store.clone(), &config)),
        store,
    )
}

async fn buy(
    svc: &CheckoutService,
    path: Path,
    user: &str,
    request_id: &str,
) -> Result<Response<pb::PurchaseReply>, Status> {
    let req = Request::new(pb::PurchaseRequest {
        user_id: user.into(),
        quantity: 1,
        request_id: request_id.into(),
        ..Default::default()
    });
    match path {
        Path::Buggy => svc.purchase_buggy(req).await,
        Path::Unstable => svc.purchase_unstable(req).await,
        Path::Safe(_) => svc.purchase_safe(req).await,
    }
}

fn bought(reply: Result<Response<pb::PurchaseReply>, Status>) -> String {
    let reply = reply.unwrap().into_inner();
    assert_eq!(reply.outcome, pb::Outcome::Purchased as i32, "{reply:?}");
    reply.order_id
}

#[tokio::test(start_paused = true)]
async fn a_retried_request_id_gets_its_order_back_on_every_path() {
    for path in PATHS {
        let (svc, store) = service(path, 1);
        let first = bought(buy(&svc, path, "a", "req-1").await);
        // The stock is gone: a new order is refused, the retry is answered its order.
        let again = bought(buy(&svc, path, "a", "req-1").await);
        assert_eq!(first, again, "{path:?}");
        let other = buy(&svc, path, "b", "req-2").await.unwrap().into_inner();
        assert_ne!(other.outcome, pb::Outcome::Purchased as i32, "{path:?}");
        let snap = store.snapshot().await.unwrap();
        assert_eq!((snap.stock, snap.orders), (0, 1), "{path:?}");
        // A Reset forgets the round's request ids.
        store.reset(1, None).await.unwrap();
        let next = bought(buy(&svc, path, "a", "req-1").await);
        assert_ne!(next, first, "{path:?}");
    }
}

/// Tries of one request in flight together (every one passes its check before any acts, on
/// the buggy path) still place one order.
#[tokio::test(start_paused = true)]
async fn concurrent_tries_of_one_request_place_one_order() {
    for path in PATHS {
        let (svc, store) = service(path, 100);
        let tries: Vec<_> = (0..20)
            .map(|_| {
                let svc = svc.clone();
                tokio::spawn(async move { buy(&svc, path, "a", "req-1").await })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        for t in tries {
            if let Ok(reply) = t.await.unwrap() {
                let reply = reply.into_inner();
                if reply.outcome == pb::Outcome::Purchased as i32 {
                    ids.insert(reply.order_id);
                }
            }
        }
        assert_eq!(ids.len(), 1, "{path:?}: {ids:?}");
        let snap = store.snapshot().await.unwrap();
        assert_eq!((snap.stock, snap.orders), (99, 1), "{path:?}");
    }
}

/// Without a request id nothing is deduplicated: two purchases are two orders.
#[tokio::test(start_paused = true)]
async fn purchases_without_a_request_id_are_distinct() {
    let (svc, store) = service(Path::Safe(Strategy::Atomic), 5);
    let a = bought(buy(&svc, Path::Safe(Strategy::Atomic), "a", "").await);
    let b = bought(buy(&svc, Path::Safe(Strategy::Atomic), "a", "").await);
    assert_ne!(a, b);
    assert_eq!(store.snapshot().await.unwrap().orders, 2);
}
