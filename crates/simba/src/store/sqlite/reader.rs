//! Reads of the API's hottest paths (shipment lists and details) on SQLite through rusqlite on
//! tokio's blocking pool, beside sqlx's pool that does everything else.
//!
//! sqlx's SQLite driver hands every row from its connection thread to the async task over a
//! channel and copies each value, then `Any` converts it again: in a profile of the list
//! endpoint, thread hand-offs and copies took most of the CPU and the query itself under 10 %.
//! Here a request's queries and row decoding run in one blocking call. Writes go through
//! [`super::writer`], the one writer; WAL lets these readers run beside it.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::SqliteConnectOptions;
use tokio::sync::Semaphore;

use crate::store::{StoreError, StoreResult};

/// Reads running at once, each on its own connection. Beyond the machine's cores more only
/// queue in the kernel; fewer would leave a core idle while another read waits on the disk.
const MAX_CONNECTIONS: usize = 8;

#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Reader {
    /// A reader for the database file `url` names; `None` for an in-memory database, which only
    /// sqlx's own connections can see.
    pub fn for_url(url: &str) -> Option<Reader> {
        Some(Reader {
            path: file_path(url)?,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        })
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // Read-write but query-only: a read-only connection cannot create the WAL index when
        // no other connection has the file open.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "query_only", true)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// Runs `read` on one of the reader's connections on the blocking pool.
    pub async fn read<T, F>(self: &Arc<Self>, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the reader's semaphore is never closed");
        let reader = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = reader.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => reader.open()?,
            };
            let result = read(&conn);
            reader
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Sqlite(e.into()))?
        .map_err(store_error)
    }
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
