//! The real `driver` binary run from a test: off the runtime's threads (the test's servers keep
//! serving), without a target or admin token the environment may hold.

use std::process::Output;

/// Runs `driver ARGS` to its end.
pub async fn driver<S: AsRef<str>>(args: &[S]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_driver"))
            .args(&args)
            .env_remove("FLASHSALE_TARGET")
            .env_remove("FLASHSALE_ADMIN_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}
