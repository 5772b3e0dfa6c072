//! Versioned schema migrations, embedded in the binary and applied at start-up, one
//! transaction for all of them under an advisory lock (replicas starting together apply them
//! once). A database whose schema is newer than this binary knows is refused.

use tokio_postgres::Client;

use super::PgError;

/// Every migration this binary knows, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "sale_orders_buyers",
        include_str!("migrations/0001_sale_orders_buyers.sql"),
    ),
    (
        2,
        "sale_shards",
        include_str!("migrations/0002_sale_shards.sql"),
    ),
];

/// The schema version this binary expects.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Any number, the same for every replica: the advisory lock the migrations run under.
const LOCK_KEY: i64 = 0x666c_6173_6873_616c;

/// Brings the schema to [`latest`]; returns the version it found.
pub async fn apply(client: &mut Client) -> Result<i32, PgError> {
    let tx = client.transaction().await.map_err(PgError::Migrate)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(PgError::Migrate)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS flashsale_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(PgError::Migrate)?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM flashsale_migrations",
            &[],
        )
        .await
        .map_err(PgError::Migrate)?
        .get(0);
    if found > latest() {
        return Err(PgError::SchemaTooNew {
            found,
            known: latest(),
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        tx.batch_execute(sql).await.map_err(PgError::Migrate)?;
        tx.execute(
            "INSERT INTO flashsale_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(PgError::Migrate)?;
        tracing::info!(version, name, "applied a schema migration");
    }
    tx.commit().await.map_err(PgError::Migrate)?;
    Ok(found)
}
