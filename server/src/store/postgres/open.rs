//! Opening the PostgreSQL store: the settings, the connection pool, the migrations and the
//! first round, and why that can fail.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::batch::{BatchFault, Batcher, Batching};
use super::conn::{Connections, Pool};
use super::{MAX_SHARDS, PgStore, ShardFault, describe, migrate, sql};
use crate::store::{Policy, Strategy};

/// How long start-up waits for the database before saying it is unreachable, and how long a
/// purchase waits for a pooled connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the PostgreSQL store could not start.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("invalid database URL: {0}")]
    Url(tokio_postgres::Error),
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    #[error("cannot reach the database at {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("cannot migrate the database schema: {}", describe(.0))]
    Migrate(tokio_postgres::Error),
    #[error(
        "the database schema is at version {found}, newer than this server knows (version \
         {known}): run a newer server, or point this one at another database"
    )]
    SchemaTooNew { found: i32, known: i32 },
    #[error("cannot start the sale in the database: {}", describe(.0))]
    Seed(tokio_postgres::Error),
    #[error("--stock-shards {0} is out of range: 1..={max}", max = MAX_SHARDS)]
    Shards(u16),
}

/// Where the database is and how to use it.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user[:password]@host:port/dbname` (libpq URL or key=value form).
    pub url: String,
    /// Most connections this server holds.
    pub pool_size: u32,
}

impl std::fmt::Debug for PgSettings {
    // The URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// `user@host:port/dbname`, without the password.
fn target(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        hosts.join(","),
        if ports.is_empty() {
            "5432".to_string()
        } else {
            ports.join(",")
        },
        config.get_dbname().unwrap_or("?"),
    )
}

/// Switches the current round of an existing sale to `strategy` (the starting server's), in
/// the seeding transaction. A sharded round (only `atomic` takes from shards) switched to
/// another strategy gets its shards' stock back in the sale row: the shards are locked in
/// order (as a spread purchase locks them), summed and deleted, so a purchase still taking from
/// one finishes first and a later one finds none.
async fn adopt(
    tx: &tokio_postgres::Transaction<'_>,
    strategy: Strategy,
) -> Result<(), tokio_postgres::Error> {
    let row = tx.query_one(sql::CURRENT_FOR_UPDATE, &[]).await?;
    let (round, was, shards): (i64, String, i32) = (row.get(0), row.get(1), row.get(2));
    if was == strategy.name() {
        return Ok(());
    }
    if shards > 1 && strategy != Strategy::Atomic {
        tx.query(sql::LOCK_SHARDS, &[&round]).await?;
        tx.execute(sql::GATHER_SHARDS, &[&round]).await?;
        tx.execute(sql::FORGET_ROUND_SHARDS, &[&round]).await?;
    }
    tx.execute(sql::SET_STRATEGY, &[&strategy.name()]).await?;
    tracing::info!(
        round,
        was,
        strategy = strategy.name(),
        "the current round switched to this server's --strategy"
    );
    Ok(())
}

impl PgStore {
    /// Connects (failing clearly if the database cannot be reached), applies the migrations
    /// and, if the database has no sale yet, starts round 1 with `stock` and `strategy`. A
    /// database that already has a round keeps it (a replica joining does not reset the sale)
    /// but switches it to `strategy`: the server's setting applies from its start, whatever a
    /// Reset chose before ([`adopt`]).
    pub async fn open(
        settings: &PgSettings,
        stock: i64,
        strategy: Strategy,
        policy: Policy,
    ) -> Result<Self, PgError> {
        Self::open_sharded(settings, stock, strategy, policy, 1).await
    }

    /// [`PgStore::open`], splitting the stock of the rounds this server starts with the
    /// `atomic` strategy over `shards` rows (1..=[`MAX_SHARDS`]; 1: the one sale row). A round
    /// of another strategy keeps its stock in the sale row whatever `shards` says.
    pub async fn open_sharded(
        settings: &PgSettings,
        stock: i64,
        strategy: Strategy,
        policy: Policy,
        shards: u16,
    ) -> Result<Self, PgError> {
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(PgError::Shards(shards));
        }
        let shards = i32::from(shards);
        let mut config = tokio_postgres::Config::from_str(&settings.url).map_err(PgError::Url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("flashsale-server");
        }
        let target = target(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let size = usize::try_from(settings.pool_size.max(1)).unwrap_or(1);
        let pool = Pool::builder(Connections(manager))
            .max_size(size)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| PgError::Pool(err.to_string()))?;
        let mut client = pool.get().await.map_err(|err| PgError::Unreachable {
            target: target.clone(),
            reason: match &err {
                deadpool_postgres::PoolError::Backend(e) => describe(e),
                other => other.to_string(),
            },
        })?;
        let found = migrate::apply(&mut client).await?;
        let seeded_shards = if strategy == Strategy::Atomic {
            shards
        } else {
            1
        };
        let tx = client.transaction().await.map_err(PgError::Seed)?;
        let seeded = tx
            .query_opt(sql::SEED, &[&stock, &strategy.name(), &seeded_shards])
            .await
            .map_err(PgError::Seed)?;
        if let Some(row) = &seeded
            && seeded_shards > 1
        {
            let round: i64 = row.get(0);
            tx.execute(sql::SPREAD, &[&round, &stock, &seeded_shards])
                .await
                .map_err(PgError::Seed)?;
        }
        if seeded.is_none() {
            adopt(&tx, strategy).await.map_err(PgError::Seed)?;
        }
        let round_shards: i32 = tx
            .query_one(sql::SHARDS, &[])
            .await
            .map_err(PgError::Seed)?
            .get(0);
        tx.commit().await.map_err(PgError::Seed)?;
        tracing::info!(
            %target,
            schema = migrate::latest(),
            was = found,
            pool = size,
            shards,
            round_shards,
            "PostgreSQL store ready"
        );
        Ok(Self {
            pool,
            policy,
            shards,
            next_shard: AtomicU32::new(0),
            sharded_guess: AtomicBool::new(round_shards > 1),
            fault: ShardFault::None,
            batcher: Batcher::default(),
        })
    }

    /// The batched strategy's window and size (default: [`Batching::default`]). Takes effect
    /// before the first batched purchase.
    pub fn with_batching(mut self, batching: Batching) -> Self {
        self.batcher.batching = batching;
        self
    }

    /// The store with a wrong batch injected (tests: proving that their checks catch it).
    #[doc(hidden)]
    pub fn with_batch_fault(mut self, fault: BatchFault) -> Self {
        self.batcher.fault = fault;
        self
    }

    /// The store with `fault` injected (tests: proving what the spread path is for).
    #[doc(hidden)]
    pub fn with_fault(self, fault: ShardFault) -> Self {
        Self { fault, ..self }
    }
}
