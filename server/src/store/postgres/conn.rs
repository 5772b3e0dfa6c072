//! The store's pooled connections, each knowing the PostgreSQL backend process that serves it.
//!
//! A purchase whose connection is lost while its commit is in flight is resolved later by its
//! request id (`in_doubt.rs`); a lookup that finds no order proves nothing while the backend that
//! ran the purchase may still commit it (a statement waiting for a row lock goes on after its
//! client is gone). Knowing that backend (its pid and start time, read once when the connection
//! opens) lets the resolution end it and wait until it has exited: after that, whatever it did
//! is final. The start time guards against a pid reused by a later backend.

use std::ops::{Deref, DerefMut};
use std::time::SystemTime;

use deadpool::managed::{self, Metrics, RecycleResult};
use deadpool_postgres::ClientWrapper;

use super::sql;

/// The pool of the store's connections.
pub(super) type Pool = managed::Pool<Connections>;
/// One pooled connection, lent out.
pub(super) type Object = managed::Object<Connections>;

/// The PostgreSQL backend process serving one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Backend {
    pub(super) pid: i32,
    pub(super) started: SystemTime,
}

/// A connection and its backend (`None` when the database did not say, e.g. a role that may not
/// read its own row of `pg_stat_activity`: purchases in doubt on it stay unresolved when absent).
pub(super) struct Conn {
    client: ClientWrapper,
    pub(super) backend: Option<Backend>,
}

impl Deref for Conn {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        &self.client
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut ClientWrapper {
        &mut self.client
    }
}

/// deadpool-postgres' manager, plus one query per new connection: which backend serves it.
pub(super) struct Connections(pub(super) deadpool_postgres::Manager);

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Connections").finish_non_exhaustive()
    }
}

impl managed::Manager for Connections {
    type Type = Conn;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Conn, tokio_postgres::Error> {
        let client = self.0.create().await?;
        let row = client.query_opt(sql::BACKEND, &[]).await?;
        let backend = row.and_then(|row| {
            let started: Option<SystemTime> = row.get(1);
            started.map(|started| Backend {
                pid: row.get(0),
                started,
            })
        });
        Ok(Conn { client, backend })
    }

    async fn recycle(
        &self,
        conn: &mut Conn,
        metrics: &Metrics,
    ) -> RecycleResult<tokio_postgres::Error> {
        self.0.recycle(&mut conn.client, metrics).await
    }

    fn detach(&self, conn: &mut Conn) {
        self.0.detach(&mut conn.client);
    }
}
