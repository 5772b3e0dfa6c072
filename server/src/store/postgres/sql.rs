//! Every statement the PostgreSQL store sends, in one place.

/// The stock of the round of the sale row `s`: its `stock` column, or the sum of its shards when
/// the round is sharded (`--stock-shards`; the subquery runs only then).
macro_rules! round_stock {
    () => {
        "CASE WHEN s.shards = 1 THEN s.stock ELSE (SELECT coalesce(sum(sh.stock), 0)::bigint \
         FROM sale_shards sh WHERE sh.round = s.round) END"
    };
}

/// The current round and its strategy.
pub const CURRENT: &str = "SELECT round, strategy FROM sale";
/// Round and stock, and the user's units of that round (the check of check-then-act), and the
/// round's shard count (the naive paths refuse a sharded round).
pub const PEEK_UNITS: &str = "SELECT s.round, s.stock, coalesce((SELECT b.units FROM buyers b \
     WHERE b.round = s.round AND b.user_id = $1), 0::bigint), s.shards FROM sale s";
pub const PEEK: &str = "SELECT round, stock, 0::bigint, shards FROM sale";
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
/// Round, stock, strategy and shard count: why a guarded take matched nothing.
pub const STATE: &str = concat!(
    "SELECT s.round, ",
    round_stock!(),
    ", s.strategy, s.shards FROM sale s"
);
/// The order a request id placed in the current round, with the round and its stock.
pub const PLACED_NOW: &str = concat!(
    "SELECT s.round, o.order_id, ",
    round_stock!(),
    " FROM sale s JOIN orders o ON o.round = s.round AND o.request_id = $1"
);
/// Decrement under a lock already held (row-lock strategy).
pub const TAKE: &str = "UPDATE sale SET stock = stock - $1 WHERE round = $2 RETURNING stock";
/// Round and stock, nothing locked.
pub const STOCK: &str = concat!("SELECT s.round, ", round_stock!(), " FROM sale s");

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

/// Starts the first round if there is none (the first replica to start sets it) with stock $1,
/// strategy $2 and $3 shards (1: the stock in the sale row; more: the sale row holds none and
/// `SPREAD` fills the shards in the same transaction). Returns the round when it started one.
pub const SEED: &str = "INSERT INTO sale (round, stock, initial_stock, strategy, shards) \
     VALUES (1, CASE WHEN $3::integer > 1 THEN 0 ELSE $1::bigint END, $1::bigint, $2, \
     $3::integer) ON CONFLICT (id) DO NOTHING RETURNING round";
/// The current round's shard count.
pub const SHARDS: &str = "SELECT shards FROM sale";
/// The current round, its strategy and shard count, the sale row locked (a starting server
/// switching the round to its strategy).
pub const CURRENT_FOR_UPDATE: &str = "SELECT round, strategy, shards FROM sale FOR UPDATE";
/// Round $1's shards' stock back in the sale row, unsharded (their rows locked before).
pub const GATHER_SHARDS: &str = "UPDATE sale SET stock = (SELECT coalesce(sum(stock), 0)::bigint \
     FROM sale_shards WHERE round = $1), shards = 1 WHERE round = $1";
pub const FORGET_ROUND_SHARDS: &str = "DELETE FROM sale_shards WHERE round = $1";
/// The current round's strategy.
pub const SET_STRATEGY: &str = "UPDATE sale SET strategy = $1";
/// Starts the next round with stock $1 and strategy $2 (NULL: the current one); it is split
/// over $3 shards if that strategy is `atomic` (the only one that takes from shards), else kept
/// in the sale row. Returns the new round and its shard count.
pub const NEXT_ROUND: &str = "UPDATE sale SET round = round + 1, \
     stock = CASE WHEN coalesce($2, strategy) = 'atomic' AND $3::integer > 1 THEN 0 \
     ELSE $1::bigint END, initial_stock = $1::bigint, strategy = coalesce($2, strategy), \
     shards = CASE WHEN coalesce($2, strategy) = 'atomic' THEN $3::integer ELSE 1 END \
     RETURNING round, shards";
pub const FORGET_ORDERS: &str = "DELETE FROM orders WHERE round < $1";
pub const FORGET_BUYERS: &str = "DELETE FROM buyers WHERE round < $1";
/// The shards of the rounds before $1, locked in shard order (as the spread purchase locks
/// them, so a Reset and a purchase cannot deadlock), then deleted: a purchase still taking
/// from an ended round's shards finishes first, any later one finds none.
pub const LOCK_OLD_SHARDS: &str =
    "SELECT 1 FROM sale_shards WHERE round < $1 ORDER BY round, shard FOR UPDATE";
pub const FORGET_SHARDS: &str = "DELETE FROM sale_shards WHERE round < $1";
/// Round $1's stock $2 over $3 shards: `stock / n` each, the remainder one unit each to the
/// first shards.
pub const SPREAD: &str = "INSERT INTO sale_shards (round, shard, stock) \
     SELECT $1::bigint, g, $2::bigint / $3::integer \
     + CASE WHEN g < $2::bigint % $3::integer THEN 1 ELSE 0 END \
     FROM generate_series(0, $3::integer - 1) g";

/// The round's state.
pub const SALE: &str = concat!(
    "SELECT s.round, ",
    round_stock!(),
    ", s.initial_stock, s.strategy FROM sale s"
);
pub const TOTALS: &str = "SELECT count(*), coalesce(sum(quantity), 0)::bigint \
     FROM orders WHERE round = $1";
/// A page of the book after order `$2`.
pub const PAGE: &str = "SELECT order_id, user_id, quantity, coalesce(request_id, '') \
     FROM orders WHERE round = $1 AND order_id > $2 ORDER BY order_id LIMIT $3";

/// The shard a sharded take prefers ($P, any non-negative number, modulo the round's count) and
/// the others by distance from it: one shard of the current round ($2: its number, 0: any) whose
/// stock covers $1 in the statement's snapshot, then q taken from it: the UPDATE waits for that
/// one shard if another purchase holds it (holding no other lock, so it cannot deadlock), then
/// re-checks its stock.
macro_rules! pick_shard {
    ($preferred:literal) => {
        concat!(
            "pick AS MATERIALIZED (SELECT sh.round, sh.shard FROM sale s \
             JOIN sale_shards sh ON sh.round = s.round \
             WHERE s.strategy = 'atomic' AND s.shards > 1 AND ($2::bigint = 0 OR s.round = $2) \
             AND sh.stock >= $1 ORDER BY (sh.shard - ",
            $preferred,
            "::integer % s.shards + s.shards) % s.shards LIMIT 1), \
             take AS (UPDATE sale_shards sh SET stock = sh.stock - $1 FROM pick \
             WHERE sh.round = pick.round AND sh.shard = pick.shard AND sh.stock >= $1 \
             RETURNING sh.round, sh.shard, sh.stock)"
        )
    };
}

/// The round's stock after `take` (its shard now, the others as this statement saw them).
macro_rules! stock_after_take {
    () => {
        "take.stock + (SELECT coalesce(sum(o.stock), 0)::bigint FROM sale_shards o \
         WHERE o.round = take.round AND o.shard <> take.shard)"
    };
}

/// The order row of `take` (user $3, request id $4) and what the purchase returns.
macro_rules! place_taken {
    () => {
        concat!(
            ", placed AS (INSERT INTO orders (round, user_id, quantity, request_id) \
             SELECT round, $3, $1, NULLIF($4, '') FROM take RETURNING order_id) \
             SELECT take.round, placed.order_id, ",
            stock_after_take!(),
            " FROM take, placed"
        )
    };
}

/// `BUY_IF_ATOMIC` on a sharded round: q ($1) from one shard that covers it (preferred: $5) and
/// the order row (user $3, request id $4), in one statement. No row back: no shard could cover
/// it alone (or the round is not sharded, not `atomic`, not $2); a request id placed before
/// fails it on `orders_request_once`, undoing the take.
pub const BUY_FROM_SHARD: &str = concat!("WITH ", pick_shard!("$5"), place_taken!());
/// The take alone, first in a transaction (a per-user limit applies): preferred shard $3; the
/// round and its stock after.
pub const TAKE_FROM_SHARD: &str = concat!(
    "WITH ",
    pick_shard!("$3"),
    " SELECT take.round, ",
    stock_after_take!(),
    " FROM take"
);
/// Every shard of round $1, locked in shard order (the spread purchase).
pub const LOCK_SHARDS: &str =
    "SELECT shard, stock FROM sale_shards WHERE round = $1 ORDER BY shard FOR UPDATE";
/// Takes $3[i] units from shard $2[i] of round $1 (shards already locked).
pub const TAKE_SPREAD: &str = "UPDATE sale_shards sh SET stock = sh.stock - t.q \
     FROM unnest($2::integer[], $3::bigint[]) AS t(shard, q) \
     WHERE sh.round = $1 AND sh.shard = t.shard AND sh.stock >= t.q";

/// The backend serving this connection: its pid and start time (`conn.rs`).
pub const BACKEND: &str =
    "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()";
/// Asks backend ($1, started at $2) to end, if it still runs: no row back once it has exited.
pub const END_BACKEND: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
     WHERE pid = $1 AND backend_start = $2";
/// A purchase in doubt, by request id ($1) in round $2 (0: the current one): the current round,
/// the order's round and id (NULL: none), and the current round's stock.
pub const IN_DOUBT: &str = concat!(
    "SELECT s.round, o.round, o.order_id, ",
    round_stock!(),
    " FROM sale s LEFT JOIN orders o ON o.request_id = $1 \
     AND o.round = CASE WHEN $2::bigint = 0 THEN s.round ELSE $2::bigint END"
);

/// The batched strategy's lock: the sale row, locked until the batch commits (every replica's
/// batch waits here for the one before it), with the round, stock and strategy the batch then
/// allocates against. The batch statement runs after it, in the same transaction, so its
/// snapshot sees every batch committed before it (the orders and per-user totals too).
pub const BATCH_LOCK: &str = "SELECT round, stock, strategy FROM sale FOR UPDATE";

/// One batch of purchases in one statement: round $1, per-user limit $2 (0: none), the members
/// in arrival order as arrays (users $3, quantities $4, request ids $5, '' for none) and the
/// stock $6 the sale row held under the lock. `pre` reads, once per member, whether its request
/// id placed an order in this round before (a retry), the user's units before the batch and
/// whether the user has an earlier member in the batch. `alloc` then walks the members in order
/// (by index into the arrays, nothing scanned per step but an earlier member's units) carrying
/// the stock left and a code per member: 3 a retry (that order, nothing taken), 2 over the limit
/// (units before the batch plus what the batch gave the user already, plus this order), 1
/// granted when its quantity fits the stock left (all or nothing: a refused order takes nothing
/// and a later smaller one may still fit), 0 sold out. The sale row is written only if it still
/// holds $6 (conditional on the row the allocation read) and the stock left is not negative,
/// and the orders (ids drawn in arrival order) and the per-user totals only if it was. One row
/// per member back: its index, code, order id (new or replayed), the stock right after it, and
/// whether the sale row was written.
macro_rules! batch {
    ($fits:literal, $guard:literal) => {
        concat!(
            "WITH RECURSIVE \
             req AS (SELECT t.i, t.user_id, t.q, NULLIF(t.rid, '') AS rid, \
             count(*) OVER (PARTITION BY t.user_id ORDER BY t.i ROWS UNBOUNDED PRECEDING) > 1 \
             AS earlier FROM unnest($3::text[], $4::bigint[], $5::text[]) \
             WITH ORDINALITY AS t(user_id, q, rid, i)), \
             prior AS (SELECT r.i, o.order_id FROM req r \
             JOIN orders o ON o.round = $1 AND o.request_id = r.rid), \
             pre AS (SELECT array_agg(p.i IS NOT NULL ORDER BY r.i) AS replay, \
             array_agg(coalesce(b.units, 0) ORDER BY r.i) AS had, \
             array_agg(r.earlier ORDER BY r.i) AS earlier FROM req r \
             LEFT JOIN prior p ON p.i = r.i \
             LEFT JOIN buyers b ON $2::bigint > 0 AND b.round = $1 AND b.user_id = r.user_id), \
             alloc (i, stock, codes) AS (SELECT 0::bigint, $6::bigint, ARRAY[]::smallint[] \
             UNION ALL \
             SELECT a.i + 1, a.stock - CASE WHEN v.code = 1 THEN ($4::bigint[])[a.i + 1] ELSE 0 END, \
             a.codes || v.code FROM alloc a CROSS JOIN pre CROSS JOIN LATERAL (SELECT CASE \
             WHEN pre.replay[a.i + 1] THEN 3::smallint \
             WHEN $2::bigint > 0 AND pre.had[a.i + 1] + ($4::bigint[])[a.i + 1] \
             + CASE WHEN pre.earlier[a.i + 1] THEN coalesce((SELECT sum(e.q) FROM req e \
             WHERE e.i <= a.i AND e.user_id = ($3::text[])[a.i + 1] AND a.codes[e.i] = 1), 0) \
             ELSE 0 END > $2::bigint THEN 2::smallint \
             WHEN ",
            $fits,
            " THEN 1::smallint ELSE 0::smallint END AS code) v \
             WHERE a.i < cardinality($4::bigint[])), \
             last AS (SELECT stock, codes FROM alloc ORDER BY i DESC LIMIT 1), \
             won AS (SELECT r.i, r.user_id, r.q, r.rid FROM req r, last WHERE last.codes[r.i] = 1), \
             take AS (UPDATE sale SET stock = last.stock FROM last \
             WHERE sale.round = $1 AND sale.stock = $6 AND EXISTS (SELECT 1 FROM won) ",
            $guard,
            " RETURNING sale.stock), \
             ids AS (SELECT w.i, w.user_id, w.q, w.rid, \
             nextval('orders_order_id_seq'::regclass) AS order_id \
             FROM won w WHERE EXISTS (SELECT 1 FROM take) ORDER BY w.i), \
             placed AS (INSERT INTO orders (order_id, round, user_id, quantity, request_id) \
             OVERRIDING SYSTEM VALUE SELECT order_id, $1, user_id, q, rid FROM ids), \
             units AS (INSERT INTO buyers (round, user_id, units) \
             SELECT $1, user_id, sum(q) FROM ids WHERE $2::bigint > 0 GROUP BY user_id \
             ON CONFLICT (round, user_id) DO UPDATE SET units = buyers.units + EXCLUDED.units) \
             SELECT r.i, last.codes[r.i], coalesce(ids.order_id, p.order_id), st.stock, \
             EXISTS (SELECT 1 FROM take) \
             FROM req r CROSS JOIN last JOIN alloc st ON st.i = r.i \
             LEFT JOIN ids ON ids.i = r.i LEFT JOIN prior p ON p.i = r.i ORDER BY r.i"
        )
    };
}

/// The batch: a member is granted when its quantity fits the stock left after the members
/// before it.
pub const BATCH: &str = batch!("($4::bigint[])[a.i + 1] <= a.stock", "AND last.stock >= 0");
/// A deliberately wrong batch (tests only, `BatchFault::StaleStock`): each member checked
/// against the stock before the batch, as if alone: the batch oversells.
pub const BATCH_STALE_STOCK: &str = batch!("($4::bigint[])[a.i + 1] <= $6::bigint", "");
