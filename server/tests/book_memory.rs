//! Measures the order book's memory per order with a counting allocator: live heap bytes after
//! recording 1M orders, minus before. Run with `--nocapture` to see the numbers; the asserted
//! bounds catch a regression of the compact encoding (16-byte entries, interned users, request
//! ids in a per-shard arena).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use flashsale_server::store::Book;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout as requested of us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ORDERS: u64 = 1_000_000;

/// Live bytes per order of a book holding `ORDERS` orders by `users` distinct users.
fn bytes_per_order(users: u64, request_id: impl Fn(u64) -> String) -> f64 {
    let names: Vec<String> = (0..users).map(|u| format!("user-{u}")).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let book = Book::new(ORDERS);
    for i in 0..ORDERS {
        let recorded = book.record(&names[(i % users) as usize], 1, &request_id(i), false);
        assert!(recorded.kept);
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(book.orders(), ORDERS);
    drop(book);
    (after - before) as f64 / ORDERS as f64
}

/// One test, so that no other test allocates while it measures.
#[test]
fn bytes_per_order_of_the_book() {
    let uuid = |i: u64| {
        format!(
            "{:08x}-0000-4000-8000-{:012x}",
            i,
            i.wrapping_mul(2654435761)
        )
    };
    let cases = [
        ("1000 users, no request id", 1000, None),
        ("1000 users, 36-byte request ids", 1000, Some(uuid)),
        ("1M distinct users, 36-byte request ids", ORDERS, Some(uuid)),
    ];
    let mut measured = Vec::new();
    for (name, users, ids) in cases {
        let per_order = match ids {
            None => bytes_per_order(users, |_| String::new()),
            Some(ids) => bytes_per_order(users, ids),
        };
        println!("book: {per_order:.1} bytes per order ({name}, {ORDERS} orders)");
        measured.push(per_order);
    }
    // Measured: 17.1, 65.2 and 176.3. A 16-byte entry plus chunk slack and the interned users;
    // a request id adds its 36 bytes, a length byte and its slot in the shard's request index
    // (5 bytes a bucket: ~9 bytes an order); a distinct user per order adds the interned id
    // (one Arc<str>), its index slot and its total.
    assert!(measured[0] <= 20.0, "{measured:?}");
    assert!(measured[1] <= 70.0, "{measured:?}");
    assert!(measured[2] <= 200.0, "{measured:?}");
}
