//! Flags of the cluster subcommands: `driver coordinator`, `driver worker`, `driver probe`.

use std::time::Duration;

use clap::Args;

use super::parse_positive_duration;
use crate::cluster::auth::{ClusterToken, TOKEN_ENV};

/// `--token` of every cluster command.
pub(super) fn parse_token(raw: &str) -> Result<ClusterToken, String> {
    ClusterToken::new(raw).map_err(|e| e.to_string())
}

/// Flags of `driver coordinator`.
#[derive(Debug, Clone, Args)]
pub struct CoordinatorArgs {
    /// Address to listen on for workers and runs.
    #[arg(
        long,
        env = "FLASHSALE_COORDINATOR_LISTEN",
        default_value = "0.0.0.0:7000"
    )]
    pub listen: std::net::SocketAddr,

    /// Workers a run waits for; every worker present when it starts takes part.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub expect_workers: u32,

    /// Checkout the workers load when a run names none, as the workers reach it.
    #[arg(long, env = "FLASHSALE_TARGET")]
    pub target: Option<String>,

    /// How long a run waits for the expected workers before failing.
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration)]
    pub join_timeout: Duration,

    /// Admin token of the checkout server (its --admin-token), sent on Reset.
    #[arg(long, env = "FLASHSALE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Cluster token that workers and clients must present [default: a random one, printed
    /// once on stderr].
    #[arg(long, env = TOKEN_ENV, hide_env_values = true, value_parser = parse_token)]
    pub token: Option<ClusterToken>,

    /// Also serve the live web dashboard on this address (e.g. 127.0.0.1:8089); its runs are
    /// distributed over this coordinator's workers.
    #[arg(long, env = "FLASHSALE_COORDINATOR_WEB")]
    pub web: Option<std::net::SocketAddr>,
}

/// Flags of `driver worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Coordinator as host:port or http://host:port; retried until it answers.
    #[arg(long, env = "FLASHSALE_COORDINATOR")]
    pub coordinator: String,

    /// Name in reports [default: the host name].
    #[arg(long, env = "FLASHSALE_WORKER_NAME")]
    pub name: Option<String>,

    /// Cluster token of the coordinator (printed by `driver coordinator` when it made one).
    #[arg(long, env = TOKEN_ENV, hide_env_values = true, value_parser = parse_token)]
    pub token: Option<ClusterToken>,
}

impl WorkerArgs {
    /// The given name, else the host name, else one made from the process id.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("worker-{}", std::process::id()))
    }
}

/// Flags of `driver probe`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Server as host:port, http://host:port or https://host:port.
    pub target: String,

    #[command(flatten)]
    pub connect: super::ConnectArgs,

    /// Service name to ask about; the empty default means the whole server.
    #[arg(long, default_value = "")]
    pub service: String,

    /// How long the check may take.
    #[arg(long, default_value = "3s", value_parser = parse_positive_duration)]
    pub timeout: Duration,
}
