-- Stock shards (`--stock-shards N`): a round of the conditional (`atomic`) strategy may keep its
-- stock split over N rows of `sale_shards` instead of the one hot `sale` row. `sale.shards` is
-- the current round's count; 1 (every round before this migration) keeps the stock in
-- `sale.stock`. A sharded round keeps `sale.stock` at 0, so a statement that takes from the
-- sale row (`stock >= q`) matches nothing there.
ALTER TABLE sale ADD COLUMN shards integer NOT NULL DEFAULT 1
    CHECK (shards BETWEEN 1 AND 256);
ALTER TABLE sale ADD CONSTRAINT sale_sharded_stock_in_shards CHECK (shards = 1 OR stock = 0);

CREATE TABLE sale_shards (
    round bigint NOT NULL,
    shard integer NOT NULL CHECK (shard >= 0),
    stock bigint NOT NULL CHECK (stock >= 0),
    PRIMARY KEY (round, shard)
);
