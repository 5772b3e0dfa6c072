-- The sale (one row: the current round, its stock and strategy), the orders of the current
-- round (the book) and the per-user totals the per-customer limit needs.
CREATE TABLE sale (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    round bigint NOT NULL CHECK (round > 0),
    stock bigint NOT NULL,
    initial_stock bigint NOT NULL CHECK (initial_stock >= 0),
    strategy text NOT NULL
);

CREATE TABLE orders (
    order_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    round bigint NOT NULL,
    user_id text NOT NULL,
    quantity bigint NOT NULL CHECK (quantity > 0),
    -- NULL when the client sent none (NULLs never collide).
    request_id text,
    CONSTRAINT orders_request_once UNIQUE (round, request_id)
);
CREATE INDEX orders_by_round ON orders (round, order_id) INCLUDE (quantity);

CREATE TABLE buyers (
    round bigint NOT NULL,
    user_id text NOT NULL,
    units bigint NOT NULL CHECK (units >= 0),
    PRIMARY KEY (round, user_id)
);
