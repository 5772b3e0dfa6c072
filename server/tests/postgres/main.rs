//! The PostgreSQL store against a real PostgreSQL: migrations, the purchase paths' behaviour
//! under concurrency, and three server replicas on one database.
//!
//! The database comes from `FLASHSALE_TEST_DATABASE_URL` (`source .ci/postgres.sh` starts a
//! throwaway cluster and sets it); every test creates its own database in it, so the tests run
//! in parallel. The tests that need it are `#[ignore = "needs PostgreSQL: …"]`: a plain `cargo
//! test` reports them as ignored (never as passed), `-- --ignored` runs them (`.ci/run` does,
//! with its cluster up) and fails, saying how to start one, when the variable is not set.

mod support;

mod atomic;
mod batched;
mod in_doubt;
mod migrations;
mod outage;
mod paths;
mod proxy;
mod replicas;
mod shards;
mod shards_load;
mod strategy;
