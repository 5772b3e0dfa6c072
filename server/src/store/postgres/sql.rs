//! Every statement the PostgreSQL store sends, in one place.

/// The current round and its strategy.
pub const CURRENT: &str = "SELECT round, strategy FROM sale";
/// Round and stock, and the user's units of that round (the check of check-then-act).
pub const PEEK_UNITS: &str = "SELECT s.round, s.stock, coalesce((SELECT b.units FROM buyers b \
     WHERE b.round = s.round AND b.user_id = $1), 0::bigint) FROM sale s";
pub const PEEK: &str = "SELECT round, stock, 0::bigint FROM sale";
/// The same under the row lock (row-lock strategy).
pub const PEEK_FOR_UPDATE: &str = "SELECT round, stock FROM sale FOR UPDATE";
/// A user's units in a round.
pub const UNITS: &str =
    "SELECT coalesce((SELECT units FROM buyers WHERE round = $1 AND user_id = $2), 0::bigint)";

/// The naive write: whatever the application computed from its read.
pub const WRITE_BACK: &str = "UPDATE sale SET stock = $1 WHERE round = $2 RETURNING stock";
/// Compare-and-decrement.
pub const TAKE_IF_AVAILABLE: &str = "UPDATE sale SET stock = stock - $1 \
     WHERE round = $2 AND stock >= $1 RETURNING stock";
/// The safe path's whole purchase while the sale's strategy is `atomic` and no per-user limit
/// applies, in one statement (one round trip, autocommit): the compare-and-decrement, checked
/// against the strategy and the requested round ($2, 0: the current one), and the order row in
/// the round it took from. No row back: nothing changed (another strategy, another round, or not
/// enough stock). A request id already placed in that round fails the whole statement with a
/// unique violation of `orders_request_once`, undoing the decrement.
pub const BUY_IF_ATOMIC: &str = "WITH take AS (UPDATE sale SET stock = stock - $1 \
     WHERE strategy = 'atomic' AND ($2::bigint = 0 OR round = $2) AND stock >= $1 \
     RETURNING round, stock), \
     placed AS (INSERT INTO orders (round, user_id, quantity, request_id) \
     SELECT round, $3, $1, NULLIF($4, '') FROM take RETURNING order_id) \
     SELECT take.round, placed.order_id, take.stock FROM take, placed";
/// The compare-and-decrement of `BUY_IF_ATOMIC`, inside a transaction (a per-user limit applies).
pub const TAKE_IF_ATOMIC: &str = "UPDATE sale SET stock = stock - $1 \
     WHERE strategy = 'atomic' AND ($2::bigint = 0 OR round = $2) AND stock >= $1 \
     RETURNING round, stock";
/// Round, stock and strategy: why a guarded take matched nothing.
pub const STATE: &str = "SELECT round, stock, strategy FROM sale";
/// The order a request id placed in the current round, with the round and its stock.
pub const PLACED_NOW: &str = "SELECT s.round, o.order_id, s.stock FROM sale s \
     JOIN orders o ON o.round = s.round AND o.request_id = $1";
/// Decrement under a lock already held (row-lock strategy).
pub const TAKE: &str = "UPDATE sale SET stock = stock - $1 WHERE round = $2 RETURNING stock";
/// Round and stock, nothing locked.
pub const STOCK: &str = "SELECT round, stock FROM sale";

/// Adds units to a user's total, unchecked.
pub const ADD_UNITS: &str = "INSERT INTO buyers (round, user_id, units) VALUES ($1, $2, $3) \
     ON CONFLICT (round, user_id) DO UPDATE SET units = buyers.units + EXCLUDED.units";
/// Adds units to a user's total only within the limit ($4); no row back: over the limit.
pub const RESERVE_UNITS: &str = "INSERT INTO buyers (round, user_id, units) \
     SELECT $1::bigint, $2::text, $3::bigint WHERE $3::bigint <= $4::bigint \
     ON CONFLICT (round, user_id) DO UPDATE SET units = buyers.units + EXCLUDED.units \
     WHERE buyers.units + EXCLUDED.units <= $4::bigint RETURNING units";

/// Records an order; no row back: this request id already placed an order in this round.
pub const RECORD: &str = "INSERT INTO orders (round, user_id, quantity, request_id) \
     VALUES ($1, $2, $3, NULLIF($4, '')) \
     ON CONFLICT ON CONSTRAINT orders_request_once DO NOTHING RETURNING order_id";
/// The order a request id placed in a round.
pub const PLACED: &str = "SELECT order_id FROM orders WHERE round = $1 AND request_id = $2";

/// Starts the first round if there is none (the first replica to start sets it).
pub const SEED: &str = "INSERT INTO sale (round, stock, initial_stock, strategy) \
     VALUES (1, $1, $1, $2) ON CONFLICT (id) DO NOTHING";
/// Starts the next round.
pub const NEXT_ROUND: &str = "UPDATE sale SET round = round + 1, stock = $1, initial_stock = $1, \
     strategy = coalesce($2, strategy) RETURNING round";
pub const FORGET_ORDERS: &str = "DELETE FROM orders WHERE round < $1";
pub const FORGET_BUYERS: &str = "DELETE FROM buyers WHERE round < $1";

/// The round's state.
pub const SALE: &str = "SELECT round, stock, initial_stock, strategy FROM sale";
pub const TOTALS: &str = "SELECT count(*), coalesce(sum(quantity), 0)::bigint \
     FROM orders WHERE round = $1";
/// A page of the book after order `$2`.
pub const PAGE: &str = "SELECT order_id, user_id, quantity, coalesce(request_id, '') \
     FROM orders WHERE round = $1 AND order_id > $2 ORDER BY order_id LIMIT $3";
