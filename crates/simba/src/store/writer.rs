//! A sync step's writes on SQLite through one rusqlite connection on tokio's blocking pool,
//! beside sqlx's pool that does everything else.
//!
//! sqlx's SQLite driver runs each statement on its connection's own thread and hands it over
//! and back across a channel: a step's dozen statements cost a dozen thread switches each way,
//! ~30 % of an ingest's CPU. Here a whole step (its fence and checkpoint included) is one
//! blocking call. SQLite has one writer at a time anyway; queueing the steps on one connection
//! here, instead of letting pool connections race for the lock, also spares them SQLite's busy
//! handler, which sleeps between attempts.
//!
//! Steps that queue while the connection is busy commit together (group commit): each in a
//! savepoint of its own, so that one step's lost lease, cancelled run or failure undoes that
//! step alone, and all in one transaction, so that the pages they share (the indexes' leaves,
//! the shop and run rows) are written to the WAL once per group instead of once per step. A
//! step's result is handed back only after its group committed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// A queued write: runs in the group's transaction and returns what hands its result back
/// once the group's COMMIT succeeded (`None`) or failed (its error).
type Job = Box<dyn FnOnce(Option<&mut Connection>) -> Deliver + Send>;
type Deliver = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A blocking task is draining the queue; new jobs join its next group.
    draining: bool,
}

pub struct Writer {
    path: PathBuf,
    /// Opened on first use; `None` again after a failure that may have broken it. Only the
    /// draining task uses it.
    conn: Mutex<Option<Connection>>,
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer for the database file `url` names; `None` for an in-memory database, which only
    /// sqlx's own connections can see.
    pub fn for_url(url: &str) -> Option<Writer> {
        Some(Writer {
            path: super::reader::file_path(url)?,
            conn: Mutex::new(None),
            queue: Mutex::new(Queue::default()),
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
        // leaves being filled) stay in memory instead of being read back from the file on every
        // step, as at SQLite's default of 2 MB. wal_autocheckpoint: a checkpoint copies each page once
        // however often it was rewritten since the last one, and fsyncs twice; 4,000 pages
        // (16 MB of WAL) instead of 1,000 spreads that over four times the steps.
        conn.execute_batch("PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4000;")?;
        // A step's multi-row statements differ by their row count: room for each count of a
        // list page (up to 50) and of a detail batch besides the fixed statements.
        conn.set_prepared_statement_cache_capacity(128);
        Ok(conn)
    }

    /// Runs `write` on the writer's connection on the blocking pool, in a savepoint of the
    /// transaction that the writes queued with it share. `write` returns its value and whether
    /// to keep its changes; an error undoes them too. The value comes back once the shared
    /// transaction committed; if it failed, so does every write of the group.
    pub async fn write<T, F>(self: &Arc<Self>, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<(T, bool)> + Send + 'static,
    {
        let (sender, receiver) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = conn.map(|conn| in_savepoint(conn, write));
            Box::new(move |failed| {
                let result = match (failed, result) {
                    (None, Some(result)) => result,
                    (Some(e), _) => Err(copy_error(e)),
                    (None, None) => unreachable!("a job that did not run is given the failure"),
                };
                sender.send(result).ok();
            })
        });
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.jobs.push(job);
            !std::mem::replace(&mut queue.draining, true)
        };
        if start {
            let writer = self.clone();
            tokio::task::spawn_blocking(move || writer.drain());
        }
        receiver
            .await
            .map_err(|e| StoreError::Sqlite(e.into()))?
            .map_err(super::reader::store_error)
    }

    /// Commits the queued jobs group by group until none is left.
    fn drain(&self) {
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let jobs = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if queue.jobs.is_empty() {
                    queue.draining = false;
                    return;
                }
                std::mem::take(&mut queue.jobs)
            };
            self.commit_group(&mut slot, jobs);
        }
    }

    fn commit_group(&self, slot: &mut Option<Connection>, jobs: Vec<Job>) {
        let begun = match slot {
            Some(conn) => Ok(conn),
            None => self.open().map(|conn| slot.insert(conn)),
        }
        .and_then(|conn| {
            // IMMEDIATE: the write lock is taken (or waited for) before any job runs.
            conn.execute_batch("BEGIN IMMEDIATE")?;
            Ok(conn)
        });
        let conn = match begun {
            Ok(conn) => conn,
            Err(e) => {
                *slot = None;
                for job in jobs {
                    job(None)(Some(&e));
                }
                return;
            }
        };
        let mut delivers = Vec::with_capacity(jobs.len());
        for job in jobs {
            // A job that panics drops its sender (its caller gets an error) and its savepoint
            // (its changes are undone); the group goes on.
            if let Ok(deliver) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Some(&mut *conn))))
            {
                delivers.push(deliver);
            }
        }
        // Fails, too, when SQLite rolled the whole transaction back after a job's I/O error.
        match conn.execute_batch("COMMIT") {
            Ok(()) => delivers.into_iter().for_each(|deliver| deliver(None)),
            Err(e) => {
                delivers.into_iter().for_each(|deliver| deliver(Some(&e)));
                // Start afresh: the connection may still hold the transaction and its lock.
                *slot = None;
            }
        }
    }
}

fn in_savepoint<T>(
    conn: &mut Connection,
    write: impl FnOnce(&Connection) -> rusqlite::Result<(T, bool)>,
) -> rusqlite::Result<T> {
    let savepoint = conn.savepoint()?;
    let (value, keep) = write(&savepoint)?;
    if keep {
        savepoint.commit()?;
    }
    // Otherwise dropped: rolled back.
    Ok(value)
}

/// The group's failure for each of its writes (rusqlite's errors are not `Clone`), keeping its
/// SQLite code so that busy stays busy.
fn copy_error(error: &rusqlite::Error) -> rusqlite::Error {
    let code = error
        .sqlite_error()
        .copied()
        .unwrap_or_else(|| rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR));
    rusqlite::Error::SqliteFailure(code, Some(error.to_string()))
}
