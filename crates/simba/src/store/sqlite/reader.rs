//! Reads of the API's hottest paths (shipment lists and details) on SQLite through rusqlite on
//! threads of the reader's own, beside sqlx's pool that does everything else.
//!
//! sqlx's SQLite driver hands every row from its connection thread to the async task over a
//! channel and copies each value, then `Any` converts it again: in a profile of the list
//! endpoint, thread hand-offs and copies took most of the CPU and the query itself under 10 %.
//! Here a request's queries and row decoding run in one call on a reader thread. Writes go
//! through [`super::writer`], the one writer; WAL lets these readers run beside it.
//!
//! Each thread keeps its connection for the reader's life. On tokio's blocking pool instead, a
//! read finishing as the next was handed over started another thread, up to 40 a runtime in a
//! sync burst, each exiting after ten idle seconds: 1,000 shops' sync peaked 40-50 MB higher,
//! with 116-125 threads instead of 40.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::SqliteConnectOptions;
use tokio::sync::oneshot;

use crate::store::{StoreError, StoreResult};

/// Reads running at once, each on its own thread and connection. Beyond the machine's cores
/// more only queue in the kernel; fewer would leave a core idle while another read waits on the
/// disk.
const THREADS: usize = 8;

/// A read, given its thread's connection or the failure to open one.
type Job = Box<dyn FnOnce(rusqlite::Result<&Connection>) + Send>;

#[derive(Debug)]
pub struct Reader {
    /// Dropped with the reader, which ends its threads once they finish what is queued.
    jobs: Sender<Job>,
}

impl Reader {
    /// A reader for the database file `url` names; `None` for an in-memory database, which only
    /// sqlx's own connections can see.
    pub fn for_url(url: &str) -> Option<Reader> {
        let path = file_path(url)?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..THREADS {
            let (path, queue) = (path.clone(), queue.clone());
            std::thread::Builder::new()
                .name("sqlite-reader".into())
                .spawn(move || serve(&path, &queue))
                .inspect_err(|e| tracing::warn!(error = %e, "starting a SQLite reader thread"))
                .ok()?;
        }
        Some(Reader { jobs })
    }

    /// Runs `read` on one of the reader's connections, on its thread.
    pub async fn read<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (sender, receiver) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            sender.send(conn.and_then(read)).ok();
        });
        // Neither fails unless the read panicked (its sender dropped) or every thread is gone.
        let lost = || StoreError::Sqlite("a SQLite reader thread lost the read".into());
        self.jobs.send(job).map_err(|_| lost())?;
        receiver.await.map_err(|_| lost())?.map_err(store_error)
    }
}

/// A reader thread: runs the queued reads on its connection, opened on first use and again
/// after a read panicked, until the reader is dropped.
fn serve(path: &Path, queue: &Mutex<Receiver<Job>>) {
    let mut conn: Option<Connection> = None;
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = next else { return };
        let opened = match conn.take() {
            Some(open) => Ok(open),
            None => open(path),
        };
        match opened {
            Ok(open) => {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(&open))));
                if ran.is_ok() {
                    conn = Some(open);
                }
            }
            Err(e) => job(Err(e)),
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    // Read-write but query-only: a read-only connection cannot create the WAL index when no
    // other connection has the file open.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "query_only", true)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// The file a SQLite URL names; `None` for an in-memory database.
pub(in crate::store) fn file_path(url: &str) -> Option<PathBuf> {
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    let name = path.to_str()?;
    if name.is_empty() || name.starts_with(":memory:") || name.starts_with("file:") {
        return None;
    }
    Some(path.to_owned())
}

/// A rusqlite failure as the store reports it: busy or locked is [`StoreError::Busy`].
pub(super) fn store_error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Busy(error)
        }
        _ => StoreError::Sqlite(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn reader_of_a_new_file(dir: &tempfile::TempDir) -> Arc<Reader> {
        let path = dir.path().join("reader.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (7);",
            )
            .unwrap();
        Arc::new(Reader::for_url(&format!("sqlite://{}?mode=rwc", path.display())).unwrap())
    }

    /// A burst of reads runs on the reader's own threads, however many wait at once: the threads
    /// (and what the allocator keeps for each) do not grow with the burst.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_reads_runs_on_the_readers_threads_only() {
        let dir = tempfile::tempdir().unwrap();
        let reader = reader_of_a_new_file(&dir);
        let mut reads = tokio::task::JoinSet::new();
        for _ in 0..1_000 {
            let reader = reader.clone();
            reads.spawn(async move {
                reader
                    .read(|conn| {
                        let n: i64 = conn.query_row("SELECT n FROM t", [], |row| row.get(0))?;
                        Ok((n, std::thread::current().id()))
                    })
                    .await
                    .unwrap()
            });
        }
        let mut threads = HashSet::new();
        while let Some(read) = reads.join_next().await {
            let (n, thread) = read.unwrap();
            assert_eq!(n, 7);
            threads.insert(thread);
        }
        assert!(threads.len() <= THREADS, "{} threads", threads.len());
    }

    /// A read that panics fails alone; the reader goes on serving on a fresh connection.
    #[tokio::test]
    async fn a_read_that_panics_fails_without_taking_the_reader_down() {
        let dir = tempfile::tempdir().unwrap();
        let reader = reader_of_a_new_file(&dir);
        for _ in 0..THREADS * 2 {
            let failed = reader
                .read(|_| -> rusqlite::Result<()> { panic!("a bug") })
                .await;
            assert!(matches!(failed, Err(StoreError::Sqlite(_))));
        }
        let n: i64 = reader
            .read(|conn| conn.query_row("SELECT n FROM t", [], |row| row.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 7);
    }
}
