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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("driver").chain(args.iter().copied()))
    }

    #[test]
    fn web_subcommand_and_coordinator_flag() {
        let Some(Command::Web(web)) = parse(&["web"]).unwrap().command else {
            panic!("not web");
        };
        assert_eq!(web.listen.to_string(), "127.0.0.1:8089");
        assert!(web.target.is_none() && web.token.is_none());
        let Some(Command::Web(web)) = parse(&[
            "web",
            "--listen",
            "0.0.0.0:9000",
            "--target",
            "x:1",
            "--token",
            "t0k",
        ])
        .unwrap()
        .command
        else {
            panic!("not web");
        };
        assert_eq!(web.listen.port(), 9000);
        assert_eq!(web.token.unwrap().expose(), "t0k");
        assert!(parse(&["web", "--listen", "nowhere"]).is_err());
        assert!(parse(&["web", "--token", ""]).is_err());
        let Some(Command::Coordinator(c)) = parse(&["coordinator", "--web", "127.0.0.1:8089"])
            .unwrap()
            .command
        else {
            panic!("not coordinator");
        };
        assert_eq!(c.web.map(|a| a.port()), Some(8089));
    }
}
