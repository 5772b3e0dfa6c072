//! Checkout settings shared by the `server` binary (flags and `FLASHSALE_*` env vars) and the
//! driver's embedded server.

use std::time::Duration;

use crate::store::{DEFAULT_BOOK_CAP, Policy, Strategy};

/// Initial stock of a round when nobody says otherwise.
pub const DEFAULT_STOCK: i64 = 100;
/// Simulated database round trip of the purchase paths.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(10);
/// Share of unstable purchases answered with `UNAVAILABLE`.
pub const DEFAULT_FAILURE_RATE: f64 = 0.05;
/// Largest quantity one order may ask for.
pub const DEFAULT_MAX_QUANTITY: u32 = 10;

/// How the checkout behaves.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ServerConfig {
    /// Stock of the first round (a Reset call may set another).
    #[arg(long, env = "FLASHSALE_STOCK", default_value_t = DEFAULT_STOCK,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub stock: i64,

    /// Simulated database latency of a purchase, e.g. 10ms, 0ms, 1s.
    #[arg(long, env = "FLASHSALE_LATENCY", default_value = "10ms",
          value_parser = humantime::parse_duration)]
    pub latency: Duration,

    /// Probability (0.0 to 1.0) that PurchaseUnstable answers UNAVAILABLE.
    #[arg(long, env = "FLASHSALE_FAILURE_RATE", default_value_t = DEFAULT_FAILURE_RATE,
          value_parser = parse_rate)]
    pub failure_rate: f64,

    /// How PurchaseSafe avoids overselling. Applies from the start (a PostgreSQL store's
    /// current round is switched to it) and to every round whose Reset names no strategy; a
    /// Reset that names one uses it for that round only.
    #[arg(long, env = "FLASHSALE_STRATEGY", value_enum, default_value_t = Strategy::Atomic)]
    pub strategy: Strategy,

    /// Largest quantity a single order may ask for; larger ones get INVALID_ARGUMENT.
    #[arg(long, env = "FLASHSALE_MAX_QUANTITY", default_value_t = DEFAULT_MAX_QUANTITY,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_quantity: u32,

    /// Most units one user_id may buy per round (refused with OUTCOME_LIMIT_REACHED); 0: no
    /// limit.
    #[arg(long, env = "FLASHSALE_PER_USER_LIMIT", default_value_t = 0)]
    pub per_user_limit: u32,

    /// Most orders a round's book keeps for ListOrders; later orders are placed and counted
    /// (StockReply.book_overflow) but not listed.
    #[arg(long, env = "FLASHSALE_BOOK_CAP", default_value_t = DEFAULT_BOOK_CAP,
          value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
    pub book_cap: u64,

    #[command(flatten)]
    pub hardening: crate::hardening::Hardening,

    #[command(flatten)]
    pub tls: crate::tls::TlsConfig,
}

/// Where a server keeps its stock and order book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StoreKind {
    /// In this process: no database needed; every replica would have its own stock.
    #[default]
    Memory,
    /// In PostgreSQL (`--database-url`): one stock shared by every replica.
    Postgres,
}

/// Default size of the PostgreSQL connection pool.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// The `server` binary's choice of store (the driver's embedded server always uses memory).
#[derive(Clone, PartialEq, clap::Args)]
pub struct StoreConfig {
    /// Where the stock and the order book live: memory (this process) or postgres (shared by
    /// every replica pointed at the same database; needs --database-url).
    #[arg(long = "store", env = "FLASHSALE_STORE", value_enum, default_value_t = StoreKind::Memory)]
    pub kind: StoreKind,

    /// PostgreSQL URL for --store postgres, e.g. postgres://user:password@127.0.0.1:5432/flashsale.
    /// The schema is created or migrated at start-up.
    #[arg(
        long,
        env = "FLASHSALE_DATABASE_URL",
        hide_env_values = true,
        required_if_eq("kind", "postgres")
    )]
    pub database_url: Option<String>,

    /// Most PostgreSQL connections this server holds.
    #[arg(long, env = "FLASHSALE_POOL_SIZE", default_value_t = DEFAULT_POOL_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pool_size: u32,

    /// Split the stock of a round of the atomic (conditional) strategy over this many rows
    /// (1..=256), so purchases stop queueing on one hot row: each takes from one shard, falling
    /// back to taking across all of them; never oversells, never leaves stock unsold. 1: the
    /// one sale row. Needs --store postgres; rounds of other strategies keep one row.
    #[arg(long, env = "FLASHSALE_STOCK_SHARDS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(crate::store::postgres::MAX_SHARDS)))]
    pub stock_shards: u16,

    /// The batched strategy: how long a batch waits for more purchases after its first one
    /// (e.g. 2ms; 0ms: only those already queued). Under load a batch is whatever queued while
    /// the one before it ran, so the window matters most at low load, where it is added latency.
    #[arg(long, env = "FLASHSALE_BATCH_WINDOW", default_value = "2ms",
          value_parser = parse_window)]
    pub batch_window: Duration,

    /// The batched strategy: most purchases applied by one statement (1..=4096). The queue
    /// holds 8 batches' worth; a purchase that finds it full gets UNAVAILABLE (nothing written).
    #[arg(long, env = "FLASHSALE_BATCH_SIZE", default_value_t = crate::store::postgres::DEFAULT_BATCH_SIZE,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub batch_size: u16,
}

impl std::fmt::Debug for StoreConfig {
    // The URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("kind", &self.kind)
            .field("database_url", &self.database_url.as_ref().map(|_| "…"))
            .field("pool_size", &self.pool_size)
            .field("stock_shards", &self.stock_shards)
            .field("batch_window", &self.batch_window)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl ServerConfig {
    /// The store's share of the configuration.
    pub fn policy(&self) -> Policy {
        Policy {
            per_user_limit: self.per_user_limit,
            book_cap: self.book_cap,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            stock: DEFAULT_STOCK,
            latency: DEFAULT_LATENCY,
            failure_rate: DEFAULT_FAILURE_RATE,
            strategy: Strategy::Atomic,
            max_quantity: DEFAULT_MAX_QUANTITY,
            per_user_limit: 0,
            book_cap: DEFAULT_BOOK_CAP,
            hardening: crate::hardening::Hardening::default(),
            tls: crate::tls::TlsConfig::default(),
        }
    }
}

/// Parses a batch window: a duration of at most one second.
pub fn parse_window(raw: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(raw).map_err(|err| err.to_string())?;
    if window <= Duration::from_secs(1) {
        Ok(window)
    } else {
        Err(format!("{raw} is longer than 1s"))
    }
}

/// Parses a probability in `[0, 1]`.
pub fn parse_rate(raw: &str) -> Result<f64, String> {
    let rate: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("`{raw}` is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is outside 0.0..=1.0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: ServerConfig,
    }

    #[derive(Parser)]
    struct StoreCli {
        #[command(flatten)]
        store: StoreConfig,
    }

    #[test]
    fn store_flags() {
        let cli = StoreCli::try_parse_from(["server"]).unwrap();
        assert_eq!(cli.store.kind, StoreKind::Memory);
        assert_eq!(cli.store.pool_size, DEFAULT_POOL_SIZE);
        assert!(StoreCli::try_parse_from(["server", "--store", "postgres"]).is_err());
        assert!(StoreCli::try_parse_from(["server", "--pool-size", "0"]).is_err());
        assert_eq!(cli.store.stock_shards, 1);
        assert_eq!(cli.store.batch_window, Duration::from_millis(2));
        assert_eq!(cli.store.batch_size, 256);
        for bad in [
            ["--batch-size", "0"],
            ["--batch-size", "4097"],
            ["--batch-window", "2s"],
            ["--batch-window", "soon"],
        ] {
            assert!(
                StoreCli::try_parse_from(["server", bad[0], bad[1]]).is_err(),
                "{bad:?}"
            );
        }
        for bad in ["0", "257", "-1", "x"] {
            assert!(
                StoreCli::try_parse_from(["server", "--stock-shards", bad]).is_err(),
                "{bad}"
            );
        }
        let cli = StoreCli::try_parse_from(["server", "--stock-shards", "256"]).unwrap();
        assert_eq!(cli.store.stock_shards, 256);
        let cli = StoreCli::try_parse_from([
            "server",
            "--store",
            "postgres",
            "--database-url",
            "postgres://u:secret@h/db",
            "--pool-size",
            "4",
        ])
        .unwrap();
        assert_eq!(
            (cli.store.kind, cli.store.pool_size),
            (StoreKind::Postgres, 4)
        );
        assert!(!format!("{:?}", cli.store).contains("secret"));
    }

    #[test]
    fn clap_defaults_match_default_impl() {
        let cli = Cli::try_parse_from(["server"]).unwrap();
        assert_eq!(cli.config, ServerConfig::default());
    }

    #[test]
    fn budget_flags() {
        let cli = Cli::try_parse_from(["server"]).unwrap();
        assert_eq!(cli.config.hardening.total_streams(), 65_536);
        let cli = Cli::try_parse_from(["server", "--memory-budget", "64MiB"]).unwrap();
        assert_eq!(cli.config.hardening.total_streams(), 8192);
        let cli = Cli::try_parse_from([
            "server",
            "--memory-budget",
            "1G",
            "--max-total-streams",
            "10",
        ])
        .unwrap();
        assert_eq!(cli.config.hardening.stream_budget().max_streams(), 10);
        let cli = Cli::try_parse_from(["server", "--request-read-timeout", "250ms"]).unwrap();
        assert_eq!(
            cli.config.hardening.stream_budget().read_timeout(),
            Duration::from_millis(250)
        );
        for bad in [
            ["--memory-budget", "0"],
            ["--memory-budget", "lots"],
            ["--max-total-streams", "0"],
            ["--request-read-timeout", "0s"],
        ] {
            assert!(
                Cli::try_parse_from(["server", bad[0], bad[1]]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Cli::try_parse_from(["server", "--failure-rate", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["server", "--failure-rate", "x"]).is_err());
        assert!(Cli::try_parse_from(["server", "--stock", "-1"]).is_err());
        assert!(Cli::try_parse_from(["server", "--max-quantity", "0"]).is_err());
        assert!(Cli::try_parse_from(["server", "--latency", "fast"]).is_err());
        assert!(Cli::try_parse_from(["server", "--book-cap", "0"]).is_err());
        assert!(Cli::try_parse_from(["server", "--book-cap", "4294967296"]).is_err());
        assert!(Cli::try_parse_from(["server", "--per-user-limit", "-1"]).is_err());
        let cli =
            Cli::try_parse_from(["server", "--per-user-limit", "2", "--book-cap", "5"]).unwrap();
        assert_eq!(
            cli.config.policy(),
            Policy {
                per_user_limit: 2,
                book_cap: 5
            }
        );
        let cli =
            Cli::try_parse_from(["server", "--latency", "0ms", "--strategy", "mutex"]).unwrap();
        assert_eq!(cli.config.latency, Duration::ZERO);
        assert_eq!(cli.config.strategy, Strategy::Mutex);
    }
}
