//! Flags of `driver web`, the live dashboard.

use clap::Args;

use crate::cluster::auth::{ClusterToken, TOKEN_ENV};

/// Flags of `driver web`.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Address to serve the dashboard on. Beyond loopback, starting and stopping runs needs
    /// the cluster token (see docs/web.md before exposing it).
    #[arg(long, env = "FLASHSALE_WEB_LISTEN", default_value = "127.0.0.1:8089")]
    pub listen: std::net::SocketAddr,

    /// Checkout server every run loads, as host:port or http://host:port [default: the
    /// form's target, else a server embedded in the driver].
    #[arg(long, env = "FLASHSALE_TARGET")]
    pub target: Option<String>,

    /// Cluster token required to start or stop runs when the listener is not loopback
    /// [default there: a random one, printed once on stderr].
    #[arg(long, env = TOKEN_ENV, hide_env_values = true, value_parser = super::cluster::parse_token)]
    pub token: Option<ClusterToken>,
}
