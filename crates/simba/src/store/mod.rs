//! Persistence over SQLite, PostgreSQL and MySQL/MariaDB. Queries are written once with `?`
//! placeholders and adapted to the backend here. Most operations are one definition on sqlx's
//! `Any` driver for every backend; the hot paths (a sync step's commit, the shipment reads of
//! the API) have one definition per backend family instead ([`hot`]): on rusqlite for a SQLite
//! file ([`sqlite`]), on sqlx's pool for the others ([`server`]).

pub(crate) mod batch;
#[cfg(test)]
mod conformance;
pub mod erasure;
mod file_mode;
mod hot;
pub mod keyset;
pub mod leases;
pub mod login_failures;
pub mod marketplace;
mod migrations;
mod param;
pub mod push;
mod server;
pub mod settings;
pub mod shipments;
pub mod shops;
mod sqlite;
pub mod steps;
pub mod sync_runs;
pub mod tokens;
pub mod users;
pub mod webhooks;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor};

use hot::Family;
use sqlx::Row;

use crate::domain::Timestamp;
pub use migrations::migrate;

/// Which database engine a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres" | "postgresql") => Ok(Backend::Postgres),
            Some("mysql" | "mariadb") => Ok(Backend::Mysql),
            _ => Err(format!(
                "DATABASE_URL must start with sqlite:, postgres: or mysql: (got {:?})",
                url.split(':').next().unwrap_or_default()
            )),
        }
    }
}

/// Every MySQL session's setting: see `Db::connect_pool`.
const MYSQL_SESSION: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// A connection pool, the dialect it speaks, and the family that runs the hot paths.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    family: Family,
}

/// Any storage failure; the API maps the variants to status codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a row with the same unique key exists")]
    UniqueViolation,
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error(transparent)]
    Other(sqlx::Error),
    #[error("the database is busy")]
    Busy(#[source] rusqlite::Error),
    /// A failure of the rusqlite side ([`sqlite`]).
    #[error("the SQLite database failed")]
    Sqlite(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::UniqueViolation,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(error)
            }
            _ => StoreError::Other(error),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Whether the same call may succeed if tried again: the pool had no free connection, the
    /// server refused one (too many connections), the transaction lost a deadlock or a
    /// serialization conflict or waited too long for a lock, or SQLite was busy.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(error) | StoreError::Other(error) => is_transient_sqlx(error),
            StoreError::Busy(_) => true,
            StoreError::UniqueViolation | StoreError::Sqlite(_) => false,
        }
    }
}

fn is_transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            matches!(
                db.code().as_deref(),
                // SQLSTATEs: serialization failure or deadlock (PostgreSQL and MySQL), deadlock
                // and lock timeout (PostgreSQL), too many connections (PostgreSQL, MySQL);
                // SQLite busy/locked.
                Some("40001" | "40P01" | "55P03" | "53300" | "08004" | "5" | "6" | "517")
            ) || db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                // MySQL's lock wait timeout has only the catch-all SQLSTATE HY000.
                .is_some_and(|mysql| mysql.number() == 1205)
        }
        _ => false,
    }
}

/// [`Db::connect_pool`]'s: a SQLite file's writer ([`sqlite`]) checkpoints it, not the pool.
const WRITER_CHECKPOINTS: bool = true;

/// How long a request waits for a pooled connection before it fails (503).
pub const API_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process that drives sync runs waits for one ([`Db::connect_waiting`]).
pub const ENGINE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(600);

impl Db {
    /// Opens a pool on `url`, and the backend family's own connections for the hot paths.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        Self::connect_waiting(url, max_connections, API_ACQUIRE_TIMEOUT).await
    }

    /// [`Db::connect`] with the longest a caller waits for a pooled connection before failing.
    ///
    /// A process that drives sync runs waits long (`ENGINE_ACQUIRE_TIMEOUT`): ten thousand runs
    /// sharing a pool of 16 connections is the database being the bottleneck, and runs waiting
    /// their turn for a connection is the back-pressure that belongs there. With a short wait,
    /// 5,000 runs per worker on PostgreSQL failed their drives by the thousand ("pool timed
    /// out"), each retried a lease later.
    pub async fn connect_waiting(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> anyhow::Result<Db> {
        let (pool, backend) =
            Self::connect_pool(url, max_connections, acquire_timeout, WRITER_CHECKPOINTS).await?;
        Ok(Db {
            pool,
            backend,
            family: Family::for_url(backend, url),
        })
    }

    /// A transaction that writes: on SQLite it takes the write lock as it begins (`BEGIN
    /// IMMEDIATE`), waiting for it under the busy timeout. SQLite's default deferred transaction
    /// that reads first cannot become the writer once another connection (the sync writer, a
    /// background loop) has committed since its read: it fails at once, whatever the timeout.
    pub async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres | Backend::Mysql => self.pool.begin().await?,
        })
    }

    /// A connection outside the pool, for work that must not queue behind the pool's users,
    /// set up as the pool's are.
    pub async fn dedicated_connection(&self) -> StoreResult<sqlx::AnyConnection> {
        use sqlx::{ConnectOptions, Executor};
        let mut conn = self.pool.connect_options().connect().await?;
        if self.backend == Backend::Mysql {
            conn.execute(MYSQL_SESSION).await?;
        }
        Ok(conn)
    }

    /// A database whose hot paths run the server family whatever the backend: the
    /// conformance suite's way of running that family's logic on a SQLite file.
    #[cfg(test)]
    pub(crate) async fn connect_server_family(url: &str, max_connections: u32) -> Db {
        let (pool, backend) = Self::connect_pool(
            url,
            max_connections,
            API_ACQUIRE_TIMEOUT,
            !WRITER_CHECKPOINTS,
        )
        .await
        .unwrap();
        Db {
            pool,
            backend,
            family: Family::Server(server::Server),
        }
    }

    /// Opens a pool on `url`. SQLite gets WAL and a busy timeout so that readers never wait
    /// for the writer and concurrent writers queue instead of failing, and a database file
    /// only its owner can read (`file_mode`).
    async fn connect_pool(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
        writer_checkpoints: bool,
    ) -> anyhow::Result<(AnyPool, Backend)> {
        sqlx::any::install_default_drivers();
        let backend: Backend = url.parse().map_err(anyhow::Error::msg)?;
        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout);
        if backend == Backend::Sqlite {
            file_mode::make_private(url).context("making the SQLite database file private")?;
            // A SQLite file's rusqlite writer checkpoints on a thread of its own, in every
            // process that opens the file. A pool connection left to SQLite's automatic
            // checkpoint ran one in the COMMIT of nearly every API write during a sync (the
            // writer lets its WAL reach 256 MB before it restarts it): a checkpoint and its two
            // fsyncs inside a request, and the same pages copied twice.
            let autocheckpoint = if writer_checkpoints && sqlite::reader::file_path(url).is_some() {
                "PRAGMA wal_autocheckpoint = 0"
            } else {
                "PRAGMA wal_autocheckpoint = 1000"
            };
            options = options.after_connect(move |conn, _| {
                Box::pin(async move {
                    // temp_store: statement journals of a sync step's many statements stay in
                    // memory instead of a temporary file written on every update.
                    // secure_delete: erased personal data is overwritten, not left readable in
                    // free space (see `erasure`).
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                         PRAGMA temp_store = MEMORY; PRAGMA secure_delete = ON;",
                    )
                    .await?;
                    conn.execute(autocheckpoint).await?;
                    Ok(())
                })
            });
        }
        if backend == Backend::Mysql {
            // READ COMMITTED, as on PostgreSQL: under MySQL's default REPEATABLE READ, replacing
            // one shipment's items locks the index gaps around them, and workers storing the
            // details of neighbouring shipments deadlock.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(MYSQL_SESSION).await?;
                    Ok(())
                })
            });
        }
        Ok((options.connect(url).await?, backend))
    }

    /// Adapts a query written with `?` placeholders to this backend.
    pub fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        if self.backend != Backend::Postgres || !sql.contains('?') {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// A prepared query for this backend, ready for `.bind(...)`.
    pub fn query<'q>(&self, sql: &'q str) -> Query<'q, Any, AnyArguments> {
        match self.sql(sql) {
            Cow::Borrowed(sql) => sqlx::query(AssertSqlSafe(sql)),
            Cow::Owned(sql) => sqlx::query(AssertSqlSafe(sql)),
        }
    }

    /// Runs an `INSERT` and returns the new row's id, whichever way the backend reports it.
    pub async fn insert<'q, 'e, E>(
        &self,
        executor: E,
        query: Query<'q, Any, AnyArguments>,
    ) -> StoreResult<i64>
    where
        E: Executor<'e, Database = Any>,
    {
        if self.backend == Backend::Mysql {
            let done = query.execute(executor).await?;
            return done
                .last_insert_id()
                .ok_or_else(|| StoreError::Other(sqlx::Error::RowNotFound));
        }
        let row: AnyRow = query.fetch_one(executor).await?;
        Ok(sqlx::Row::try_get(&row, 0)?)
    }

    /// `RETURNING id` where the backend reports ids that way; see [`Db::insert`].
    pub fn returning_id(&self) -> &'static str {
        if self.backend == Backend::Mysql {
            ""
        } else {
            " RETURNING id"
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// Deletes the rows of `table` with these ids, in one statement; returns how many went.
/// Housekeeping selects its batch with a plain read first and deletes it through this: by
/// primary key, a delete locks only the rows it removes, where one that scans a secondary index
/// locks rows in that index's order and can deadlock with deletes that go by another.
pub async fn delete_by_ids(db: &Db, table: &'static str, ids: &[i64]) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "DELETE FROM {table} WHERE id IN ({})",
        vec!["?"; ids.len()].join(", ")
    );
    let mut query = db.query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    Ok(query.execute(&db.pool).await?.rows_affected())
}

/// An instant from a column of Unix seconds, how most columns store one.
pub(crate) fn seconds_at<I: sqlx::ColumnIndex<AnyRow>>(
    row: &AnyRow,
    index: I,
) -> Result<Timestamp, sqlx::Error> {
    row.try_get(index).map(Timestamp::from_unix_seconds)
}

/// An instant, if any, from a nullable column of Unix seconds.
pub(crate) fn maybe_seconds_at<I: sqlx::ColumnIndex<AnyRow>>(
    row: &AnyRow,
    index: I,
) -> Result<Option<Timestamp>, sqlx::Error> {
    row.try_get::<Option<i64>, _>(index)
        .map(|s| s.map(Timestamp::from_unix_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_read_from_the_url_scheme() {
        assert_eq!(
            "sqlite://simba.db?mode=rwc".parse::<Backend>(),
            Ok(Backend::Sqlite)
        );
        assert_eq!(
            "postgresql://localhost/x".parse::<Backend>(),
            Ok(Backend::Postgres)
        );
        assert_eq!(
            "mysql://root@localhost/x".parse::<Backend>(),
            Ok(Backend::Mysql)
        );
        assert!("redis://localhost".parse::<Backend>().is_err());
    }

    /// A SQLite file's writer checkpoints it; in-memory and the server family's pools keep
    /// SQLite's own checkpoint in their COMMITs.
    #[tokio::test]
    async fn only_a_sqlite_file_with_its_writer_leaves_checkpoints_to_it() {
        async fn autocheckpoint(db: &Db) -> i64 {
            let row = sqlx::query("PRAGMA wal_autocheckpoint")
                .fetch_one(&db.pool)
                .await
                .unwrap();
            sqlx::Row::get(&row, 0)
        }
        let dir = tempfile::tempdir().unwrap();
        let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
        let file = Db::connect(&url("a.db"), 2).await.unwrap();
        assert_eq!(autocheckpoint(&file).await, 0);
        let server_family = Db::connect_server_family(&url("b.db"), 2).await;
        assert_eq!(autocheckpoint(&server_family).await, 1000);
        let memory = Db::connect("sqlite::memory:", 1).await.unwrap();
        assert_eq!(autocheckpoint(&memory).await, 1000);
    }
}
