//! The PostgreSQL store against a real PostgreSQL: migrations, the purchase paths' behaviour
//! under concurrency, and three server replicas on one database.
//!
//! The database comes from `FLASHSALE_TEST_DATABASE_URL` (`source .ci/postgres.sh` starts a
//! throwaway cluster and sets it); every test creates its own database in it, so the tests run
//! in parallel. Without the variable each test says loudly that it was skipped, and fails when
//! `CI` is set: CI must never skip them.

mod support;

mod atomic;
mod in_doubt;
mod migrations;
mod outage;
mod paths;
mod proxy;
mod replicas;
mod shards;
mod shards_load;
