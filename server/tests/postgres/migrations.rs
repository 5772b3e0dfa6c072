//! Start-up: migrations, a newer schema, a second replica joining, an unreachable database.

use std::time::{Duration, Instant};

use flashsale_server::store::PgError;
use flashsale_server::store::postgres::migrate;
use flashsale_server::{PgSettings, PgStore, Store, Strategy};

use crate::support::{cluster, config, connect, fresh_database, open};

#[tokio::test]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let first = open(&url, &config(7, Strategy::RowLock, 0, 0)).await;
    let db = connect(&url).await;
    let versions: Vec<i32> = db
        .query(
            "SELECT version FROM flashsale_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known: Vec<i32> = migrate::MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(versions, known);
    let snap = first.snapshot().await.unwrap();
    assert_eq!(
        (snap.round, snap.stock, snap.initial_stock, snap.strategy),
        (1, 7, 7, Strategy::RowLock)
    );

    // A second replica with other settings joins the sale as it is: nothing is migrated
    // twice and the round is not restarted; only its strategy applies from its start.
    let second = open(&url, &config(500, Strategy::Mutex, 0, 0)).await;
    let joined = second.snapshot().await.unwrap();
    assert_eq!(
        (joined.round, joined.stock, joined.initial_stock),
        (1, 7, 7)
    );
    assert_eq!(joined.strategy, Strategy::Mutex);
    let count: i64 = db
        .query_one("SELECT count(*) FROM flashsale_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, known.len() as i64);

    // A schema from a newer server: refused, and said so.
    let newer = migrate::latest() + 1;
    db.execute(
        "INSERT INTO flashsale_migrations (version, name) VALUES ($1, 'from the future')",
        &[&newer],
    )
    .await
    .unwrap();
    let settings = PgSettings {
        url: url.clone(),
        pool_size: 2,
    };
    let err = PgStore::open(&settings, 1, Strategy::Atomic, Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PgError::SchemaTooNew { found, known } if found == newer && known == newer - 1),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&format!("version {newer}")), "{message}");
    assert!(
        message.contains("newer than this server knows"),
        "{message}"
    );
}

/// Needs no database: the port is one nothing listens on.
#[tokio::test]
async fn an_unreachable_database_is_a_clear_error_at_start_up() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let settings = PgSettings {
        url: format!("postgres://flashsale:s3cret@127.0.0.1:{port}/sale"),
        pool_size: 2,
    };
    let started = Instant::now();
    let err = PgStore::open(&settings, 1, Strategy::Atomic, Default::default())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, PgError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "cannot reach the database at flashsale@127.0.0.1:{port}/sale"
        )),
        "{message}"
    );
    assert!(
        !message.contains("s3cret"),
        "the password leaked: {message}"
    );

    // The same through the binary's path: `open_store` with --store postgres.
    let store = flashsale_server::StoreConfig {
        kind: flashsale_server::StoreKind::Postgres,
        database_url: Some(settings.url.clone()),
        pool_size: 2,
        stock_shards: 1,
        batch_window: flashsale_server::store::postgres::DEFAULT_BATCH_WINDOW,
        batch_size: flashsale_server::store::postgres::DEFAULT_BATCH_SIZE,
    };
    let err = flashsale_server::open_store(&store, &Default::default())
        .await
        .err()
        .expect("an unreachable database must fail start-up");
    assert!(
        err.to_string()
            .starts_with("PostgreSQL store: cannot reach the database"),
        "{err}"
    );
}

/// The binary itself: exit status 1 and the reason on stderr, before listening.
#[tokio::test]
async fn the_server_binary_exits_with_the_reason_when_the_database_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--store", "postgres", "--listen", "127.0.0.1:0"])
        .env(
            "FLASHSALE_DATABASE_URL",
            format!("postgres://u:pw@127.0.0.1:{port}/db"),
        )
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the server must give up on its own")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "server: PostgreSQL store: cannot reach the database at u@127.0.0.1:{port}/db"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("checkout server listening"), "{stderr}");
}
