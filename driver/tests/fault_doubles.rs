//! Sanity tests of the fault-injecting doubles themselves, through the generated client: the
//! correct mode keeps the contract and every fault misbehaves exactly as designed. These do
//! not involve the driver; `audit_faults.rs` checks that the driver catches each fault.

mod faults;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use faults::state::GHOSTS_PER_ROUND;
use faults::{Config, Fault, Running, start};
use flashsale::pb::{self, checkout_client::CheckoutClient};
use futures::future::join_all;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Client = CheckoutClient<Channel>;

async fn client(double: &Running) -> Client {
    CheckoutClient::connect(double.url().to_string())
        .await
        .expect("connect to the double")
}

fn request(user: &str, quantity: u32, round: u64) -> pb::PurchaseRequest {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    pb::PurchaseRequest {
        user_id: user.to_string(),
        quantity,
        request_id: format!("req-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        round,
    }
}

async fn buy(client: &mut Client, user: &str, quantity: u32) -> Result<pb::PurchaseReply, Status> {
    let reply = client.purchase_safe(request(user, quantity, 0)).await;
    reply.map(tonic::Response::into_inner)
}

fn outcome(reply: &pb::PurchaseReply) -> pb::Outcome {
    pb::Outcome::try_from(reply.outcome).expect("known outcome")
}

/// `n` purchases of one unit by distinct users, all in flight at once.
async fn burst(client: &Client, n: usize, quantity: u32) -> Vec<Result<pb::PurchaseReply, Status>> {
    join_all((0..n).map(|i| {
        let mut client = client.clone();
        async move { buy(&mut client, &format!("u{i}"), quantity).await }
    }))
    .await
}

/// `n` purchases one after another by distinct users.
async fn sequence(client: &mut Client, n: usize) -> Vec<pb::PurchaseReply> {
    let mut replies = Vec::new();
    for i in 0..n {
        replies.push(buy(client, &format!("s{i}"), 1).await.expect("purchase"));
    }
    replies
}

fn count(replies: &[Result<pb::PurchaseReply, Status>], wanted: pb::Outcome) -> usize {
    replies
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| outcome(r) == wanted))
        .count()
}

async fn stock(client: &mut Client) -> pb::StockReply {
    client
        .get_stock(pb::GetStockRequest {})
        .await
        .expect("GetStock")
        .into_inner()
}

async fn reset(client: &mut Client, stock: i64) -> pb::StockReply {
    client
        .reset(pb::ResetRequest {
            stock: Some(stock),
            safe_strategy: 0,
        })
        .await
        .expect("Reset")
        .into_inner()
}

async fn list(client: &mut Client, round: u64) -> Result<Vec<pb::OrderBatch>, Status> {
    let mut stream = client
        .list_orders(pb::ListOrdersRequest { round })
        .await?
        .into_inner();
    let mut batches = Vec::new();
    while let Some(batch) = stream.message().await? {
        batches.push(batch);
    }
    Ok(batches)
}

async fn book(client: &mut Client) -> Vec<pb::Order> {
    let batches = list(client, 0).await.expect("ListOrders");
    batches.into_iter().flat_map(|b| b.orders).collect()
}

fn units(book: &[pb::Order]) -> i64 {
    book.iter().map(|o| i64::from(o.quantity)).sum()
}

fn assert_conserved(before: i64, after: &pb::StockReply, book: &[pb::Order]) {
    assert_eq!(
        before - after.stock,
        units(book),
        "initial - final vs the book"
    );
    assert_eq!(after.units_sold as i64, units(book));
    assert_eq!(after.orders as usize, book.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_atomic_sells_exactly_the_stock_under_concurrency() {
    let double = start(Config::new(Fault::Correct).stock(100));
    let mut client = client(&double).await;
    let replies = burst(&client, 300, 1).await;
    assert_eq!(count(&replies, pb::Outcome::Purchased), 100);
    assert_eq!(count(&replies, pb::Outcome::SoldOut), 200);
    let after = stock(&mut client).await;
    assert_eq!(after.stock, 0);
    let book = book(&mut client).await;
    assert_conserved(100, &after, &book);
    let ids: HashSet<_> = book.iter().map(|o| &o.order_id).collect();
    let requests: HashSet<_> = book.iter().map(|o| &o.request_id).collect();
    assert_eq!((ids.len(), requests.len()), (100, 100));
    let acked: HashSet<_> = replies
        .iter()
        .flatten()
        .filter(|r| outcome(r) == pb::Outcome::Purchased)
        .map(|r| &r.order_id)
        .collect();
    assert_eq!(acked, ids, "every acknowledged order is in the book");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_serial_sells_exactly_the_stock_with_a_quantity_mix() {
    let double = start(
        Config::new(Fault::Correct)
            .serial(Duration::from_millis(1))
            .stock(50),
    );
    let mut client = client(&double).await;
    let replies = join_all((0..60).map(|i| {
        let mut client = client.clone();
        async move { buy(&mut client, &format!("m{i}"), 1 + i % 3).await }
    }))
    .await;
    let after = stock(&mut client).await;
    assert_eq!(after.safe_strategy, pb::SafeStrategy::Mutex as i32);
    assert!((0..3).contains(&after.stock), "{after:?}");
    let book = book(&mut client).await;
    assert_conserved(50, &after, &book);
    assert!(replies.iter().all(Result::is_ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_for_another_round_is_failed_precondition_and_changes_nothing() {
    let double = start(Config::new(Fault::Correct).stock(10));
    let mut client = client(&double).await;
    let round = reset(&mut client, 10).await.round;
    for wrong in [round - 1, round + 1] {
        let err = client
            .purchase_safe(request("r", 1, wrong))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    }
    let now = stock(&mut client).await;
    assert_eq!((now.stock, now.orders), (10, 0));
    for right in [0, round] {
        let reply = client
            .purchase_safe(request("r", 1, right))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(outcome(&reply), pb::Outcome::Purchased);
        assert_eq!(reply.round, round);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_starts_a_new_round_with_an_empty_book() {
    let config = Config::new(Fault::Correct)
        .stock(5)
        .per_user_limit(3)
        .book_cap(500);
    let double = start(config);
    let mut client = client(&double).await;
    let first = stock(&mut client).await;
    assert_eq!(
        (first.per_user_limit, first.book_cap, first.max_quantity),
        (3, 500, 10)
    );
    sequence(&mut client, 3).await;
    let new = reset(&mut client, 7).await;
    assert_eq!(new.round, first.round + 1);
    assert_eq!(
        (new.stock, new.initial_stock, new.orders, new.units_sold),
        (7, 7, 0, 0)
    );
    assert!(book(&mut client).await.is_empty());
    let old = list(&mut client, first.round).await.unwrap_err();
    assert_eq!(old.code(), Code::FailedPrecondition);
    let batches = list(&mut client, new.round).await.unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].round, new.round);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_rejected_and_changes_nothing() {
    let double = start(Config::new(Fault::Correct));
    let mut client = client(&double).await;
    let long = "x".repeat(129);
    let bad = [
        request("", 1, 0),
        request(&long, 1, 0),
        request("u", 11, 0),
        pb::PurchaseRequest {
            request_id: long.clone(),
            ..request("u", 1, 0)
        },
    ];
    for req in bad {
        let err = client.purchase_safe(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    assert_eq!(stock(&mut client).await.stock, 100);
    // Quantity 0 means 1.
    assert_eq!(buy(&mut client, "u", 0).await.unwrap().quantity, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_limit_answers_limit_reached() {
    let double = start(Config::new(Fault::Correct).per_user_limit(2));
    let mut client = client(&double).await;
    assert_eq!(
        outcome(&buy(&mut client, "a", 1).await.unwrap()),
        pb::Outcome::Purchased
    );
    assert_eq!(
        outcome(&buy(&mut client, "a", 1).await.unwrap()),
        pb::Outcome::Purchased
    );
    let third = buy(&mut client, "a", 1).await.unwrap();
    assert_eq!(outcome(&third), pb::Outcome::LimitReached);
    assert_eq!(third.order_id, "");
    assert_eq!(
        outcome(&buy(&mut client, "b", 2).await.unwrap()),
        pb::Outcome::Purchased
    );
    assert_eq!(stock(&mut client).await.stock, 96);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_orders_streams_the_book_in_batches_of_at_most_1024() {
    let double = start(
        Config::new(Fault::Correct)
            .stock(5000)
            .latency(Duration::ZERO),
    );
    let mut client = client(&double).await;
    let replies = burst(&client, 2100, 1).await;
    assert_eq!(count(&replies, pb::Outcome::Purchased), 2100);
    let batches = list(&mut client, 0).await.unwrap();
    let sizes: Vec<_> = batches.iter().map(|b| b.orders.len()).collect();
    assert_eq!(sizes, [1024, 1024, 52]);
    let book: Vec<_> = batches.into_iter().flat_map(|b| b.orders).collect();
    assert_eq!(book, double.book(), "in the order placed");
    assert!(book.iter().all(|o| !o.order_id.is_empty()
        && !o.user_id.is_empty()
        && o.quantity == 1
        && o.request_id.starts_with("req-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_book_counts_the_overflow() {
    let double = start(Config::new(Fault::Correct).book_cap(10));
    let mut client = client(&double).await;
    sequence(&mut client, 15).await;
    let now = stock(&mut client).await;
    assert_eq!((now.orders, now.units_sold, now.book_overflow), (15, 15, 5));
    assert_eq!(book(&mut client).await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_answers_unavailable() {
    let double = start(Config::new(Fault::Dead));
    let mut client = client(&double).await;
    let err = buy(&mut client, "u", 1).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(stock(&mut client).await.stock, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_sells_answers_sold_out_with_stock_left() {
    let double = start(Config::new(Fault::NeverSells));
    let mut client = client(&double).await;
    let reply = buy(&mut client, "u", 1).await.unwrap();
    assert_eq!(outcome(&reply), pb::Outcome::SoldOut);
    assert_eq!(reply.stock_after, 100);
    assert_eq!(stock(&mut client).await.stock, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_as_an_error_status() {
    for (fault, code) in [
        (Fault::SoldOutAsInternal, Code::Internal),
        (Fault::SoldOutAsResourceExhausted, Code::ResourceExhausted),
    ] {
        let double = start(Config::new(fault).stock(10));
        let client = client(&double).await;
        let replies = burst(&client, 50, 1).await;
        assert_eq!(count(&replies, pb::Outcome::Purchased), 10, "{fault:?}");
        let errors = replies
            .iter()
            .filter(|r| r.as_ref().is_err_and(|e| e.code() == code));
        assert_eq!(errors.count(), 40, "{fault:?}");
        assert_eq!(double.stock(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_without_retry_undersells_under_concurrency() {
    let double = start(
        Config::new(Fault::OptimisticNoRetry)
            .latency(Duration::from_millis(20))
            .stock(100),
    );
    let mut client = client(&double).await;
    let replies = burst(&client, 200, 1).await;
    let sold = count(&replies, pb::Outcome::Purchased);
    assert!((1..100).contains(&sold), "sold {sold} of 100");
    assert_eq!(count(&replies, pb::Outcome::SoldOut), 200 - sold);
    let after = stock(&mut client).await;
    assert!(
        after.stock > 0,
        "stock left while customers were turned away"
    );
    assert_conserved(100, &after, &book(&mut client).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_without_decrement_books_sales_the_stock_never_lost() {
    let double = start(Config::new(Fault::AckWithoutDecrement { every: 10 }));
    let mut client = client(&double).await;
    let replies = sequence(&mut client, 30).await;
    assert!(replies.iter().all(|r| outcome(r) == pb::Outcome::Purchased));
    assert_eq!(book(&mut client).await.len(), 30);
    assert_eq!(stock(&mut client).await.stock, 100 - 27);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decrement_then_sold_out_loses_stock_and_books_nothing() {
    let double = start(Config::new(Fault::DecrementThenSoldOut { every: 10 }));
    let mut client = client(&double).await;
    let replies = sequence(&mut client, 30).await;
    let sold_out: Vec<_> = replies
        .iter()
        .enumerate()
        .filter(|(_, r)| outcome(r) == pb::Outcome::SoldOut)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(sold_out, [9, 19, 29]);
    assert_eq!(book(&mut client).await.len(), 27);
    assert_eq!(stock(&mut client).await.stock, 70);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_record_books_one_request_twice() {
    let double = start(Config::new(Fault::DoubleRecord { every: 10 }));
    let mut client = client(&double).await;
    sequence(&mut client, 30).await;
    let book = book(&mut client).await;
    assert_eq!(book.len(), 33);
    let mut per_request: HashMap<&str, Vec<&str>> = HashMap::new();
    for order in &book {
        per_request
            .entry(&order.request_id)
            .or_default()
            .push(&order.order_id);
    }
    let twice: Vec<_> = per_request.values().filter(|ids| ids.len() == 2).collect();
    assert_eq!(twice.len(), 3);
    assert!(twice.iter().all(|ids| ids[0] != ids[1]), "two order ids");
    assert_eq!(stock(&mut client).await.stock, 70, "decremented once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_noop_keeps_the_old_state() {
    let double = start(Config::new(Fault::ResetNoop).stock(0));
    let mut client = client(&double).await;
    let before = stock(&mut client).await;
    let after = reset(&mut client, 100).await;
    assert_eq!((after.stock, after.round), (0, before.round));
    assert_eq!(
        outcome(&buy(&mut client, "u", 1).await.unwrap()),
        pb::Outcome::SoldOut
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignores_per_user_limit_reports_it_and_sells_past_it() {
    let double = start(Config::new(Fault::IgnoresPerUserLimit { limit: 1 }));
    let mut client = client(&double).await;
    assert_eq!(stock(&mut client).await.per_user_limit, 1);
    for _ in 0..3 {
        let reply = buy(&mut client, "greedy", 1).await.unwrap();
        assert_eq!(outcome(&reply), pb::Outcome::Purchased);
    }
    let mine = book(&mut client).await;
    assert_eq!(units(&mine), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greater_than_zero_check_sells_below_zero() {
    let double = start(Config::new(Fault::GreaterThanZeroCheck).stock(4));
    let mut client = client(&double).await;
    for _ in 0..2 {
        let reply = buy(&mut client, "q", 3).await.unwrap();
        assert_eq!(outcome(&reply), pb::Outcome::Purchased);
    }
    assert_eq!(stock(&mut client).await.stock, -2);
    let third = buy(&mut client, "q", 3).await.unwrap();
    assert_eq!(outcome(&third), pb::Outcome::SoldOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_order_acknowledges_what_the_book_lacks() {
    let double = start(Config::new(Fault::LostOrder { every: 10 }));
    let mut client = client(&double).await;
    let replies = sequence(&mut client, 30).await;
    assert!(replies.iter().all(|r| outcome(r) == pb::Outcome::Purchased));
    let booked: HashSet<_> = book(&mut client)
        .await
        .into_iter()
        .map(|o| o.order_id)
        .collect();
    let lost: Vec<_> = replies
        .iter()
        .filter(|r| !booked.contains(&r.order_id))
        .collect();
    assert_eq!(lost.len(), 3);
    assert_eq!(stock(&mut client).await.stock, 70);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghost_orders_appear_in_the_book() {
    let double = start(Config::new(Fault::GhostOrders).stock(1000));
    let mut client = client(&double).await;
    let replies = sequence(&mut client, 150).await;
    let sent: HashSet<_> = replies.iter().map(|r| r.order_id.clone()).collect();
    let book = book(&mut client).await;
    let ghosts: Vec<_> = book
        .iter()
        .filter(|o| !sent.contains(&o.order_id))
        .collect();
    assert_eq!(ghosts.len() as u64, GHOSTS_PER_ROUND);
    assert!(ghosts.iter().all(|g| g.request_id.starts_with("foreign-")));
    let after = stock(&mut client).await;
    assert_conserved(1000, &after, &book);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_order_book_answers_unimplemented_but_sells() {
    let double = start(Config::new(Fault::NoOrderBook));
    let mut client = client(&double).await;
    assert_eq!(
        outcome(&buy(&mut client, "u", 1).await.unwrap()),
        pb::Outcome::Purchased
    );
    assert_eq!(
        list(&mut client, 0).await.unwrap_err().code(),
        Code::Unimplemented
    );
    assert_eq!(stock(&mut client).await.book_cap, 0);
}

/// Sends `n` purchases for the current round at once, each with a deadline of 30 ms, far
/// shorter than the double's serial queue; returns how many were answered in time.
async fn abandon(double: &Running, n: usize) -> usize {
    let client = client(double).await;
    let round = double.round();
    let replies = join_all((0..n).map(|i| {
        let mut client = client.clone();
        async move {
            let mut req = tonic::Request::new(request(&format!("late{i}"), 1, round));
            req.set_timeout(Duration::from_millis(30));
            client.purchase_safe(req).await
        }
    }))
    .await;
    let answered = replies.iter().filter(|r| r.is_ok()).count();
    assert!(answered <= n / 2, "{answered} of {n} answered in time");
    answered
}

/// [`abandon`], then a new round while the stragglers are still queued.
async fn abandon_then_reset(double: &Running, n: usize) -> u64 {
    abandon(double, n).await;
    let new = reset(&mut client(double).await, 100).await.round;
    assert!(double.busy() > 0, "stragglers still queued at the Reset");
    new
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignores_round_lets_stragglers_land_in_the_next_round() {
    let double = start(Config::new(Fault::IgnoresRound).serial(Duration::from_millis(20)));
    let mut client = client(&double).await;
    let reply = client.purchase_safe(request("u", 1, 99)).await.unwrap();
    assert_eq!(
        outcome(&reply.into_inner()),
        pb::Outcome::Purchased,
        "round 99 accepted"
    );
    abandon_then_reset(&double, 20).await;
    assert!(tokio::task::block_in_place(
        || double.wait_idle(Duration::from_secs(5))
    ));
    let leaked = book(&mut client).await;
    assert!(
        !leaked.is_empty(),
        "previous round's stragglers booked in this one"
    );
    assert!(leaked.iter().all(|o| o.user_id.starts_with("late")));
    assert_eq!(stock(&mut client).await.stock, 100 - leaked.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_round_check_keeps_abandoned_stragglers_out_of_the_next_round() {
    let config = Config::new(Fault::Correct)
        .serial(Duration::from_millis(20))
        .finish_abandoned();
    let double = start(config);
    let mut client = client(&double).await;
    abandon_then_reset(&double, 20).await;
    assert!(tokio::task::block_in_place(
        || double.wait_idle(Duration::from_secs(5))
    ));
    assert!(book(&mut client).await.is_empty());
    assert_eq!(stock(&mut client).await.stock, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_drops_purchases_whose_client_gave_up() {
    let double = start(Config::new(Fault::Correct).serial(Duration::from_millis(20)));
    let answered = abandon(&double, 20).await;
    assert!(tokio::task::block_in_place(
        || double.wait_idle(Duration::from_secs(1))
    ));
    let booked = double.book().len();
    assert!(
        booked <= answered + 1,
        "{booked} booked, {answered} answered: work went on after the deadline"
    );
    assert_eq!(double.stock(), 100 - booked as i64);
}
