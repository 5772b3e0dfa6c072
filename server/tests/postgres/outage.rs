//! The database goes away in the middle of a sustained run and comes back: purchases answer
//! UNAVAILABLE while it is away (UNKNOWN for one cut mid-commit that could not be resolved), the
//! server recovers without a restart of its own (the pool drops dead connections and opens new
//! ones), every acknowledged order is in the book, and no purchase answered UNAVAILABLE is.
//!
//! "Away" is a TCP proxy between the server and PostgreSQL (`proxy.rs`) that cuts every
//! connection and refuses new ones: to the server that is exactly a database restart, and the
//! test cluster shared with the parallel tests stays up.

use std::time::Duration;

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::Strategy;
use tokio::sync::watch;
use tonic::{Code, Request};

use crate::proxy::{Proxy, upstream};
use crate::support::{audit, cluster, config, fresh_database, req, service};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_database_outage_answers_unavailable_recovers_and_loses_no_acknowledged_order() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let proxy = Proxy::start(upstream(&url)).await;
    let svc = service(&proxy.url(&url), &config(1_000_000, Strategy::Atomic, 1, 0)).await;

    // Buyers purchase back to back until told to stop, keeping what was acknowledged.
    let (stop, stopped) = watch::channel(false);
    let buyers: Vec<_> = (0..8)
        .map(|b| {
            let svc = svc.clone();
            let stopped = stopped.clone();
            tokio::spawn(async move {
                let (mut acked, mut refused, mut unknown) = (Vec::new(), Vec::new(), 0u64);
                for i in 0..100_000 {
                    if *stopped.borrow() {
                        break;
                    }
                    let request_id = format!("b{b}-{i}");
                    let request = req(&format!("b{b}"), &request_id);
                    match svc.purchase_safe(Request::new(request)).await {
                        Ok(reply) => {
                            let reply = reply.into_inner();
                            assert_eq!(reply.outcome, pb::Outcome::Purchased as i32);
                            acked.push(reply.order_id);
                        }
                        Err(status) => {
                            match status.code() {
                                Code::Unavailable => refused.push(request_id),
                                Code::Unknown => unknown += 1,
                                _ => panic!("{status:?}"),
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (acked, refused, unknown)
            })
        })
        .collect();

    let acked_so_far = || async {
        svc.get_stock(Request::new(pb::GetStockRequest {}))
            .await
            .map(|r| r.into_inner().orders)
    };
    wait_until(|| async { acked_so_far().await.is_ok_and(|n| n >= 50) }).await;
    proxy.set(false);
    // While it is away a purchase answers UNAVAILABLE, and so does GetStock.
    wait_until(|| async {
        svc.purchase_safe(Request::new(req("probe", "")))
            .await
            .is_err_and(|s| s.code() == Code::Unavailable)
    })
    .await;
    let status = svc
        .get_stock(Request::new(pb::GetStockRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set(true);
    let before = acked_so_far().await;
    // Back: the same server sells again.
    wait_until(|| async {
        match (acked_so_far().await, &before) {
            (Ok(now), Ok(then)) => now >= then + 50,
            (Ok(now), Err(_)) => now > 0,
            _ => false,
        }
    })
    .await;
    stop.send_replace(true);

    let (mut acked, mut refused, mut unknown) = (Vec::new(), Vec::new(), 0);
    for buyer in buyers {
        let (a, r, u) = buyer.await.unwrap();
        acked.extend(a);
        refused.extend(r);
        unknown += u;
    }
    assert!(!refused.is_empty(), "the buyers never saw the outage");
    eprintln!(
        "outage: {} acknowledged, {} UNAVAILABLE, {unknown} UNKNOWN",
        acked.len(),
        refused.len()
    );
    let audit = audit(&svc).await;
    assert!(audit.reconciles(), "{audit:?}");
    let book: std::collections::HashSet<_> = audit.listed.iter().map(|o| &o.order_id).collect();
    let lost: Vec<_> = acked.iter().filter(|id| !book.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged orders missing from the book: {lost:?}"
    );
    // UNAVAILABLE promised that nothing was written.
    let written: std::collections::HashSet<_> =
        audit.listed.iter().map(|o| &o.request_id).collect();
    let wrong_no: Vec<_> = refused.iter().filter(|id| written.contains(id)).collect();
    assert!(
        wrong_no.is_empty(),
        "answered UNAVAILABLE, yet in the book: {wrong_no:?}"
    );
}

/// Polls `done` every 20 ms for at most 30 s.
async fn wait_until<F, Fut>(mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
