//! `docker compose run driver` with no arguments: instead of clap's usage line (which lists
//! `--coordinator` and `--token` as missing although the stack sets them through the
//! environment), a help written for the stack. The compose files set `FLASHSALE_COMPOSE` to
//! the command that runs their driver service.

/// The variable the compose files set on their `driver` service: how to invoke compose for
/// that stack, e.g. `docker compose` or `docker compose -p flashsale-postgres -f
/// docker-compose.postgres.yml`.
pub const COMPOSE_ENV: &str = "FLASHSALE_COMPOSE";

/// The stack's help when the driver runs inside a compose stack (`FLASHSALE_COMPOSE` set)
/// with no arguments; `None` otherwise.
pub fn compose_help(args: usize, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    if args > 1 {
        return None;
    }
    let compose = env(COMPOSE_ENV).filter(|c| !c.trim().is_empty())?;
    let set = |name: &str| env(name).filter(|v| !v.is_empty()).is_some();
    let mut preset = Vec::new();
    if let Some(coordinator) = env("FLASHSALE_COORDINATOR").filter(|v| !v.is_empty()) {
        preset.push(format!(
            "the runs go through the stack's coordinator ({coordinator}) and its workers"
        ));
    } else if let Some(target) = env("FLASHSALE_TARGET").filter(|v| !v.is_empty()) {
        preset.push(format!(
            "the runs load the stack's checkout ({target}) from this container"
        ));
    }
    let tokens: Vec<&str> = [
        ("FLASHSALE_CLUSTER_TOKEN", "the cluster token"),
        ("FLASHSALE_ADMIN_TOKEN", "the admin token"),
    ]
    .into_iter()
    .filter(|(name, _)| set(name))
    .map(|(_, what)| what)
    .collect();
    if !tokens.is_empty() {
        preset.push(format!("{} are set by the stack", tokens.join(" and ")));
    }
    let run = format!("{compose} run --rm driver");
    let v1 = compose.replacen("docker compose", "docker-compose", 1);
    Some(format!(
        "driver, in a compose stack: {}.\n\
         Say what to run, at least a mode:\n\
         \n  {run} --mode safe       # PASS: exactly the stock sold, exit 0\
         \n  {run} --mode buggy      # FAIL: oversold, exit 1\
         \n  {run} --mode safe --users 5000 --duration 30s --stock 1000000\
         \n  {run} --help            # every flag\
         \n\n(with the standalone tool: `{v1} run --rm driver ...`)\n",
        preset.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn only_inside_a_stack_and_only_without_arguments() {
        let stack = [
            (COMPOSE_ENV, "docker compose"),
            ("FLASHSALE_COORDINATOR", "http://coordinator:7000"),
            ("FLASHSALE_CLUSTER_TOKEN", "t"),
            ("FLASHSALE_ADMIN_TOKEN", "a"),
        ];
        let help = compose_help(1, env(&stack)).unwrap();
        assert!(
            help.contains("stack's coordinator (http://coordinator:7000)"),
            "{help}"
        );
        assert!(
            help.contains("the cluster token and the admin token are set"),
            "{help}"
        );
        assert!(
            help.contains("docker compose run --rm driver --mode safe"),
            "{help}"
        );
        assert!(
            help.contains("`docker-compose run --rm driver ...`"),
            "{help}"
        );
        assert!(!help.contains("--token <"), "{help}");
        assert_eq!(compose_help(3, env(&stack)), None, "arguments given");
        assert_eq!(compose_help(1, env(&stack[1..])), None, "not in a stack");

        let postgres = [
            (
                COMPOSE_ENV,
                "docker compose -p flashsale-postgres -f docker-compose.postgres.yml",
            ),
            ("FLASHSALE_TARGET", "server:50051"),
        ];
        let help = compose_help(1, env(&postgres)).unwrap();
        assert!(
            help.contains("the stack's checkout (server:50051)"),
            "{help}"
        );
        assert!(
            help.contains("docker compose -p flashsale-postgres -f docker-compose.postgres.yml run --rm driver --mode buggy"),
            "{help}"
        );
    }
}
