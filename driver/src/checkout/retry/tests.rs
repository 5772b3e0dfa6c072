//! The retry loop and the budget on tokio's paused clock, against scripted answers.

use std::cell::RefCell;
use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;

use super::*;
use crate::spec::retry::Backoff;

fn purchased() -> Outcome {
    Outcome::Purchased {
        order_id: "r1-1".into(),
        quantity: 1,
        stock_after: None,
    }
}

fn policy(retries: u32) -> Retry {
    Retry {
        retries,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
        },
        ..Retry::default()
    }
}

/// Runs the loop over `script` (one answer per try, each after `took`), and returns what it
/// came to, the per-try deadlines it gave and when each try was sent (ms after the start).
async fn run(
    retry: &Retry,
    throttle: &Throttle,
    script: &[Outcome],
    took: Duration,
) -> (Tried, Vec<Duration>, Vec<u128>) {
    let start = Instant::now();
    let log = RefCell::new((Vec::new(), Vec::new()));
    let next = RefCell::new(script.iter().cloned());
    let tried = tries(retry, throttle, Duration::from_secs(1), async |per_try| {
        log.borrow_mut().0.push(per_try);
        log.borrow_mut().1.push(start.elapsed().as_millis());
        let outcome = next
            .borrow_mut()
            .next()
            .unwrap_or(Outcome::Status(Code::Unavailable));
        tokio::time::sleep(took.min(per_try)).await;
        // A try that hangs past its deadline: the client's timeout.
        if took >= per_try {
            return Outcome::Timeout;
        }
        outcome
    })
    .await;
    let (deadlines, sent) = log.into_inner();
    (tried, deadlines, sent)
}

#[tokio::test(start_paused = true)]
async fn unavailable_is_retried_with_backoff_until_an_answer() {
    let unavailable = Outcome::Status(Code::Unavailable);
    let throttle = Throttle::new(Budget::default());
    let script = [unavailable.clone(), unavailable, purchased()];
    let (tried, _, sent) = run(&policy(5), &throttle, &script, Duration::ZERO).await;
    assert_eq!(
        (tried.outcome, tried.tries, tried.exhausted),
        (purchased(), 3, false)
    );
    // Full jitter: the first pause at most 100 ms, the second at most 200 ms.
    assert_eq!(sent[0], 0);
    assert!(sent[1] <= 100, "{sent:?}");
    assert!(sent[2] - sent[1] <= 200, "{sent:?}");
}

#[tokio::test(start_paused = true)]
async fn answers_not_retried_and_no_retries_are_one_try() {
    let throttle = Throttle::new(Budget::default());
    for answer in [
        Outcome::SoldOut { stock_after: None },
        Outcome::Status(Code::Internal),
        Outcome::Status(Code::Aborted),
    ] {
        let (tried, _, _) = run(
            &policy(5),
            &throttle,
            std::slice::from_ref(&answer),
            Duration::ZERO,
        )
        .await;
        assert_eq!((tried.outcome, tried.tries), (answer, 1));
    }
    let (tried, _, _) = run(
        &policy(0),
        &throttle,
        &[Outcome::Status(Code::Unavailable)],
        Duration::ZERO,
    )
    .await;
    assert_eq!(tried.tries, 1);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_the_last_one() {
    let throttle = Throttle::new(Budget {
        tokens: 100,
        ratio: 0.1,
    });
    let (tried, _, sent) = run(&policy(3), &throttle, &[], Duration::ZERO).await;
    assert_eq!(
        (tried.outcome, tried.tries, tried.exhausted, tried.throttled),
        (Outcome::Status(Code::Unavailable), 4, true, false)
    );
    // Pauses of at most 100, 200 and 300 (the ceiling) ms.
    assert!(sent[3] <= 600, "{sent:?}");
}

#[tokio::test(start_paused = true)]
async fn expired_tries_are_timeouts_retried_within_the_overall_deadline() {
    let throttle = Throttle::new(Budget {
        tokens: 100,
        ratio: 0.1,
    });
    let retry = Retry {
        deadline: Some(Duration::from_millis(2500)),
        on: RetryOn::parse("timeout").unwrap(),
        ..policy(10)
    };
    let start = Instant::now();
    // Every try hangs past its deadline.
    let (tried, deadlines, _) = run(&retry, &throttle, &[], Duration::from_secs(60)).await;
    assert_eq!(tried.outcome, Outcome::Timeout);
    assert!(
        start.elapsed() <= Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    // Two whole tries of 1 s, then a third cut to what was left.
    assert!(tried.tries >= 3, "{tried:?}");
    assert_eq!(&deadlines[..2], [Duration::from_secs(1); 2]);
    assert!(deadlines[2] < Duration::from_secs(1), "{deadlines:?}");
    // UNAVAILABLE is not in this list: not retried.
    let (tried, _, _) = run(
        &retry,
        &throttle,
        &[Outcome::Status(Code::Unavailable)],
        Duration::ZERO,
    )
    .await;
    assert_eq!(tried.tries, 1);
}

#[test]
fn the_budget_stops_retries_while_failures_are_many() {
    let throttle = Throttle::new(Budget::default());
    assert!(throttle.allows());
    for _ in 0..4 {
        throttle.failed();
    }
    // 6 of 10 tokens left: more than half.
    assert!(throttle.allows());
    throttle.failed();
    assert!(!throttle.allows(), "5 of 10 is not more than half");
    throttle.failed();
    // 0.1 back per answer: 10 answers make one token (4 -> 5: still not more than half).
    for _ in 0..10 {
        throttle.answered();
    }
    assert!(!throttle.allows());
    throttle.answered();
    assert!(throttle.allows());
    // Never above the full bucket, never below empty.
    for _ in 0..1000 {
        throttle.answered();
    }
    for _ in 0..6 {
        throttle.failed();
    }
    assert!(!throttle.allows());
    for _ in 0..100 {
        throttle.failed();
    }
    for _ in 0..51 {
        throttle.answered();
    }
    assert!(throttle.allows());
}

#[tokio::test(start_paused = true)]
async fn a_throttled_retry_is_not_sent() {
    let throttle = Throttle::new(Budget {
        tokens: 2,
        ratio: 0.1,
    });
    // 2 tokens: the first failure leaves 1, not more than half.
    let (tried, _, _) = run(&policy(5), &throttle, &[], Duration::ZERO).await;
    assert_eq!(
        (tried.tries, tried.exhausted, tried.throttled),
        (1, true, true)
    );
}

/// A try whose effect is unknown, then UNAVAILABLE ("nothing written" by that try): the
/// request stays unknown, the first try may have been applied.
#[tokio::test(start_paused = true)]
async fn a_definite_no_after_an_unknown_try_leaves_the_request_unknown() {
    let throttle = Throttle::new(Budget {
        tokens: 100,
        ratio: 0.1,
    });
    let retry = Retry {
        on: RetryOn::parse("unavailable,timeout").unwrap(),
        ..policy(1)
    };
    let script = [Outcome::Timeout, Outcome::Status(Code::Unavailable)];
    let (tried, _, _) = run(&retry, &throttle, &script, Duration::ZERO).await;
    assert_eq!((tried.outcome, tried.tries), (Outcome::Timeout, 2));
    // A later answer that says what happened stands.
    let script = [Outcome::Timeout, purchased()];
    let (tried, _, _) = run(&retry, &throttle, &script, Duration::ZERO).await;
    assert_eq!((tried.outcome, tried.tries), (purchased(), 2));
}

/// A deadline past what an `Instant` holds (a plan that skipped validation) is no deadline,
/// not a panic.
#[tokio::test(start_paused = true)]
async fn huge_timeouts_do_not_panic() {
    let throttle = Throttle::new(Budget {
        tokens: 100,
        ratio: 0.1,
    });
    let retry = Retry {
        deadline: None,
        ..policy(2)
    };
    let script = [Outcome::Status(Code::Unavailable), purchased()];
    let tried = tries(&retry, &throttle, Duration::MAX, async |_| {
        script[0].clone()
    })
    .await;
    assert_eq!(tried.tries, 3);
    let retry = Retry {
        deadline: Some(Duration::MAX),
        ..policy(1)
    };
    let tried = tries(&retry, &throttle, Duration::MAX, async |_| purchased()).await;
    assert_eq!((tried.outcome, tried.tries), (purchased(), 1));
}
