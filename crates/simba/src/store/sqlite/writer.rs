//! A sync step's writes on SQLite, and the engine's other writes ([`crate::store::batch`]),
//! through one rusqlite connection on tokio's blocking pool, beside sqlx's pool that does
//! everything else.
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
//!
//! Checkpoints (copying the WAL back into the database file, with two fsyncs) run on a thread
//! of their own, not in the writer's COMMIT as SQLite's automatic checkpoint would: waiting for
//! those fsyncs held up every step queued behind the writer, a third of its time during an
//! ingest. See `Checkpoints`. The same thread checkpoints what sqlx's pool connections commit:
//! their automatic checkpoint is off (`Db::connect_pool`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::{StoreError, StoreResult};

/// sqlx's connections' `busy_timeout` (`Db::connect`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the writer holds SQLite's write lock through back-to-back groups before it lets it
/// go for [`LOCK_PAUSE`]. A pool connection waiting for the lock (the API's writes) polls it
/// between sleeps, and a writer that begins its next group microseconds after its last COMMIT
/// never leaves it free when they poll: at 5,000 shops such writes (then a token's save, a
/// run's start or end too) waited out their whole busy timeout and failed ("database is
/// locked"), and their runs with them.
const MAX_HOLD: Duration = Duration::from_secs(2);
/// Longer than the longest sleep of SQLite's busy handler (100 ms), so that every connection
/// waiting for the lock tries it within the pause.
const LOCK_PAUSE: Duration = Duration::from_millis(120);

/// A queued write: runs in the group's transaction and returns what hands its result back
/// once the group's COMMIT succeeded (`None`) or failed (its error).
type Job = Box<dyn FnOnce(Option<&mut Connection>) -> Deliver + Send>;
type Deliver = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

struct Slot {
    /// Opened on first use; `None` again after a failure that may have broken it.
    conn: Option<Connection>,
    /// Since when the writer has held the write lock, group after group, without a pause.
    holding_since: Instant,
    /// When the last drain found nothing left to write.
    idle_since: Option<Instant>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A blocking task is draining the queue; new jobs join its next group.
    draining: bool,
}

/// Clears the queue's `draining` flag when the draining task unwinds.
struct Drained<'a>(&'a Mutex<Queue>);

impl Drop for Drained<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
            queue.draining = false;
        }
    }
}

pub struct Writer {
    path: PathBuf,
    /// Only the draining task uses it.
    slot: Mutex<Slot>,
    queue: Mutex<Queue>,
    /// `None` if the checkpoint thread could not be started: SQLite then checkpoints in COMMIT.
    checkpoints: Option<Checkpoints>,
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
        let path = super::reader::file_path(url)?;
        let checkpoints = Checkpoints::start(&path)
            .inspect_err(|e| tracing::warn!(error = %e, "starting the checkpoint thread"))
            .ok();
        Some(Writer {
            path,
            slot: Mutex::new(Slot {
                conn: None,
                holding_since: Instant::now(),
                idle_since: None,
            }),
            queue: Mutex::new(Queue::default()),
            checkpoints,
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
             PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA secure_delete = ON;",
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // cache_size: the pages every step touches (the shipments indexes' inner pages and the
        // leaves being filled) stay in memory instead of being read back from the file on every
        // step, as at SQLite's default of 2 MB.
        conn.execute_batch("PRAGMA cache_size = -16384;")?;
        // The checkpoint thread checkpoints instead. Without it: a checkpoint copies each page
        // once however often it was rewritten since the last one, and fsyncs twice; 4,000
        // pages (16 MB of WAL) instead of 1,000 spread that over four times the steps.
        let autocheckpoint = if self.checkpoints.is_some() { 0 } else { 4000 };
        conn.pragma_update(None, "wal_autocheckpoint", autocheckpoint)?;
        // A step's multi-row statements differ by their row count: room for each count of a
        // list page (up to 50) and of a detail batch (its rows and its items) besides the
        // fixed statements.
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
        let _queued = crate::engine_metrics::CommitTimer::sqlite_writer();
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
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot
            .idle_since
            .is_none_or(|idle| idle.elapsed() >= LOCK_PAUSE)
        {
            slot.holding_since = Instant::now();
        }
        // A panic outside a job's own guard (a result's delivery) must not leave the queue
        // marked as drained by a task that is gone: the next write starts another.
        let _drained = Drained(&self.queue);
        loop {
            if slot.holding_since.elapsed() >= MAX_HOLD {
                // Before the group is taken: what is queued meanwhile joins it.
                std::thread::sleep(LOCK_PAUSE);
                slot.holding_since = Instant::now();
            }
            let jobs = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if queue.jobs.is_empty() {
                    queue.draining = false;
                    slot.idle_since = Some(Instant::now());
                    return;
                }
                std::mem::take(&mut queue.jobs)
            };
            self.commit_group(&mut slot.conn, jobs);
        }
    }

    fn commit_group(&self, slot: &mut Option<Connection>, jobs: Vec<Job>) {
        let begun = match slot {
            Some(conn) => Ok(conn),
            None => self.open().map(|conn| slot.insert(conn)),
        }
        .and_then(|conn| {
            if let Some(checkpoints) = &self.checkpoints {
                checkpoints.restart_if_due(conn);
            }
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
            Ok(()) => {
                delivers.into_iter().for_each(|deliver| deliver(None));
                if let Some(checkpoints) = &self.checkpoints {
                    checkpoints.committed();
                }
            }
            Err(e) => {
                delivers.into_iter().for_each(|deliver| deliver(Some(&e)));
                // Start afresh: the connection may still hold the transaction and its lock.
                *slot = None;
            }
        }
    }
}

/// The WAL's length in frames (pages) past which the writer restarts it: 256 MB of 4 KB pages,
/// room for the commits of [`CHECKPOINT_PAUSE`] at the writer's pace (150 MB/s written at
/// 5,000 shops).
const WAL_RESTART_FRAMES: i64 = 65_536;
/// How long the writer's RESTART checkpoint waits for readers to leave the WAL before it gives
/// up until the checkpoint thread asks again: the steps queued behind it wait as long.
const RESTART_PATIENCE: Duration = Duration::from_millis(50);
/// How long the checkpoint thread lets commits gather before it copies them: one checkpoint,
/// and its fsyncs, for all the pages they rewrote. The pages every group rewrites (the
/// indexes' leaves, the shop and run rows) are copied once a second, not five times: 5,000
/// shops' sync wrote 24.1 GB instead of 29.9 GB with 200 ms. Under `synchronous = NORMAL` the
/// commits since the last checkpoint's fsync are what a power loss can take: about a second.
const CHECKPOINT_PAUSE: Duration = Duration::from_secs(1);
/// How often the checkpoint thread checkpoints without being woken by the writer: sqlx's pool
/// connections leave their commits to it (`Db::connect_pool`). A checkpoint that finds nothing
/// to copy reads the WAL's index and returns, without an fsync.
const POOL_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The writer's side of the checkpoint thread, which checkpoints the database with a
/// connection of its own a little after the writer commits. Its checkpoints are PASSIVE: they
/// never wait for, or hold up, the writer or a reader.
///
/// A passive checkpoint copies frames but cannot restart the log: SQLite rewinds the WAL only
/// when a transaction begins after every frame has been copied, which a busy writer never lets
/// happen, so the file would grow for as long as an ingest lasts (466 MB for 20,000
/// shipments). Once the log is [`WAL_RESTART_FRAMES`] long the thread says so and the writer,
/// between two groups, runs a RESTART checkpoint, which has little left to copy.
struct Checkpoints {
    /// Wakes the thread (a full channel means it is awake already); dropped with the writer,
    /// which ends the thread.
    due: SyncSender<()>,
    restart_due: Arc<AtomicBool>,
}

impl Checkpoints {
    fn start(path: &Path) -> std::io::Result<Checkpoints> {
        let (due, wakeups) = std::sync::mpsc::sync_channel(1);
        let restart_due = Arc::new(AtomicBool::new(false));
        let (path, flag) = (path.to_owned(), restart_due.clone());
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_thread(&path, &wakeups, &flag))?;
        Ok(Checkpoints { due, restart_due })
    }

    fn committed(&self) {
        self.due.try_send(()).ok();
    }

    fn restart_if_due(&self, conn: &Connection) {
        if !self.restart_due.swap(false, Ordering::Relaxed) {
            return;
        }
        // Busy (a reader stayed, or another checkpoint ran) is left to the next request.
        let restarted = conn
            .busy_timeout(RESTART_PATIENCE)
            .and_then(|()| checkpoint(conn, "RESTART"));
        if let Err(e) = restarted.and(conn.busy_timeout(BUSY_TIMEOUT)) {
            tracing::warn!(error = %e, "restarting the WAL");
        }
    }
}

fn checkpoint_thread(path: &Path, wakeups: &Receiver<()>, restart_due: &AtomicBool) {
    let mut conn = None;
    loop {
        match wakeups.recv_timeout(POOL_CHECKPOINT_EVERY) {
            Ok(()) => std::thread::sleep(CHECKPOINT_PAUSE),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // The commits of the pause are copied by this checkpoint.
        if wakeups.try_recv() == Err(TryRecvError::Disconnected) {
            return;
        }
        let checkpointed = match &conn {
            Some(conn) => checkpoint(conn, "PASSIVE"),
            None => Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|opened| checkpoint(conn.insert(opened), "PASSIVE")),
        };
        match checkpointed {
            Ok((_, frames)) if frames >= WAL_RESTART_FRAMES => {
                restart_due.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "checkpointing the WAL");
                conn = None;
                // The writer's own checkpoint keeps the WAL from growing meanwhile.
                restart_due.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Runs a checkpoint of `mode`; returns whether another checkpoint kept it from running, and
/// the WAL's length in frames.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(bool, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get::<_, i64>(0)? != 0, row.get(1)?))
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps queued back to back keep the writer in one group after another; a connection of
    /// sqlx's pool must still get the write lock within its busy timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_kept_busy_still_lets_another_connection_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        let writer =
            Arc::new(Writer::for_url(&format!("sqlite://{}?mode=rwc", path.display())).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER);")
            .unwrap();
        let busy = Arc::new(AtomicBool::new(true));
        let mut feeders = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (writer, busy) = (writer.clone(), busy.clone());
            feeders.spawn(async move {
                while busy.load(Ordering::Relaxed) {
                    let write = |conn: &Connection| {
                        conn.execute("INSERT INTO t VALUES (1)", [])?;
                        // A step's statements hold the lock a while.
                        std::thread::sleep(Duration::from_millis(1));
                        Ok(((), true))
                    };
                    writer.write(write).await.unwrap();
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let other = tokio::task::spawn_blocking(move || {
            let conn = Connection::open(&path)?;
            // Three of the writer's pauses, on a machine slow enough to sleep through one,
            // and short of the 10 s a pool connection waits.
            conn.busy_timeout(MAX_HOLD * 3 + Duration::from_secs(1))?;
            conn.execute("INSERT INTO t VALUES (2)", [])
        })
        .await
        .unwrap();
        busy.store(false, Ordering::Relaxed);
        while let Some(fed) = feeders.join_next().await {
            fed.unwrap();
        }
        assert_eq!(other.map_err(|e| e.to_string()), Ok(1));
    }

    /// What another connection commits, without its own automatic checkpoint and without the
    /// writer committing anything, still reaches the database file.
    #[test]
    fn the_checkpoint_thread_copies_other_connections_commits_unasked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE t (b BLOB);",
        )
        .unwrap();
        let _writer = Writer::for_url(&format!("sqlite://{}?mode=rwc", path.display())).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for _ in 0..64 {
            conn.execute("INSERT INTO t VALUES (zeroblob(4096))", [])
                .unwrap();
        }
        let deadline = Instant::now() + POOL_CHECKPOINT_EVERY * 5;
        while std::fs::metadata(&path).unwrap().len() < before + 64 * 4096 {
            assert!(Instant::now() < deadline, "the WAL was not checkpointed");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
