//! A sync step's writes on SQLite through one rusqlite connection on tokio's blocking pool,
//! beside sqlx's pool that does everything else.
//!
//! sqlx's SQLite driver runs each statement on its connection's own thread and hands it over
//! and back across a channel: a step's dozen statements cost a dozen thread switches each way,
//! ~30 % of an ingest's CPU. Here a whole step (its transaction, fence and checkpoint included)
//! is one blocking call. SQLite has one writer at a time anyway; queueing the steps on one
//! connection here, instead of letting pool connections race for the lock, also spares them
//! SQLite's busy handler, which sleeps between attempts.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::{StoreError, StoreResult};

#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    /// Opened on first use; `None` again after a failure that may have broken it.
    conn: Mutex<Option<Connection>>,
    /// One write at a time, waited for on the async side rather than by a blocking thread.
    turn: Arc<Semaphore>,
}

impl Writer {
    /// A writer for the database file `url` names; `None` for an in-memory database, which only
    /// sqlx's own connections can see.
    pub fn for_url(url: &str) -> Option<Writer> {
        Some(Writer {
            path: super::reader::file_path(url)?,
            conn: Mutex::new(None),
            turn: Arc::new(Semaphore::new(1)),
        })
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The pragmas of sqlx's connections (`Db::connect`).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
             PRAGMA temp_store = MEMORY;",
        )?;
        // cache_size: the pages every step touches (the shipments indexes' inner pages and the
        // leaves being filled) stay in memory; at SQLite's default 2 MB, reading them back was
        // 7 % of an ingest's CPU. wal_autocheckpoint: a checkpoint copies each page once
        // however often it was rewritten since the last one, and fsyncs twice; 4,000 pages
        // (16 MB of WAL) instead of 1,000 spreads that over four times the steps.
        conn.execute_batch("PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4000;")?;
        // A step's multi-row statements differ by their row count: room for each count of a
        // list page (up to 50) and of a detail batch besides the fixed statements.
        conn.set_prepared_statement_cache_capacity(128);
        Ok(conn)
    }

    /// Runs `write` on the writer's connection on the blocking pool, after the writes queued
    /// before it. `write` opens and ends its own transaction.
    pub async fn write<T, F>(self: &Arc<Self>, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = self
            .turn
            .clone()
            .acquire_owned()
            .await
            .expect("the writer's semaphore is never closed");
        let writer = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut slot = writer.conn.lock().unwrap_or_else(|e| e.into_inner());
            let conn = match slot.as_mut() {
                Some(conn) => conn,
                None => slot.insert(writer.open()?),
            };
            let result = write(conn);
            if result.is_err() && !conn.is_autocommit() {
                // A transaction left open by a failed step would hold the write lock: start
                // afresh on the next write.
                *slot = None;
            }
            result
        })
        .await
        .map_err(|e| StoreError::Sqlite(e.into()))?
        .map_err(super::reader::store_error)
    }
}
