//! The SQLite family: the hot paths on a SQLite file through rusqlite. Reads run on
//! [`reader`]'s threads and connections, a request's queries in one call; a sync step's writes
//! run on [`writer`]'s one connection on tokio's blocking pool, committed in groups. sqlx's
//! pool still does everything else.

mod ingest;
mod read;
pub(super) mod reader;
mod writer;

use std::sync::Arc;

use super::batch::{self, Batch, Executed, Outcome};
use super::hot::HotPath;
use super::shipments::sql::{Page, Selection, Walk};
use super::shipments::{Feed, ShipmentDetail, ShipmentRow, Versions};
use super::steps::{StepCommit, StepData, StepWrite};
use super::{Db, StoreResult};
use reader::Reader;
use writer::Writer;

/// The readers and the writer of one SQLite file.
#[derive(Debug)]
pub(crate) struct SqliteFile {
    /// The API's reads.
    reader: Reader,
    /// The engine's reads (the details a run still needs), on connections and permits of their
    /// own: a thousand runs asking between their steps must not queue the API's reads behind
    /// theirs (they did: list requests waited up to 0.4 s for a reader during a sync burst).
    engine_reader: Reader,
    writer: Arc<Writer>,
}

impl SqliteFile {
    /// The family for the database file `url` names; `None` for an in-memory database, which
    /// only sqlx's own connections can see.
    pub(super) fn for_url(url: &str) -> Option<SqliteFile> {
        Some(SqliteFile {
            reader: Reader::for_url(url)?,
            engine_reader: Reader::for_url(url)?,
            writer: Arc::new(Writer::for_url(url)?),
        })
    }
}

impl HotPath for SqliteFile {
    async fn commit_step(&self, _db: &Db, step: StepWrite) -> StoreResult<StepCommit> {
        self.writer
            .write(move |conn| ingest::commit_step(conn, &step))
            .await
    }

    async fn write(
        &self,
        _db: &Db,
        user_id: i64,
        shop_id: i64,
        data: StepData,
    ) -> StoreResult<u64> {
        self.writer
            .write(move |conn| {
                let (inserted, _) = ingest::write_data(conn, user_id, shop_id, &data)?;
                ingest::bump_epoch(conn, user_id)?;
                Ok((inserted, true))
            })
            .await
    }

    async fn list(&self, _db: &Db, page: Page) -> StoreResult<(Vec<ShipmentRow>, i64)> {
        self.reader.read(move |conn| read::page(conn, &page)).await
    }

    async fn walk(&self, _db: &Db, walk: Walk) -> StoreResult<(Versions, Vec<ShipmentRow>)> {
        // One hand-off to a reader thread for both reads: at thousands of cursor pages a
        // second, a second hand-off for the version cost a fifth of the CPU in task switches.
        self.reader
            .read(move |conn| {
                let version = read::version(conn, walk.selection.user_id)?;
                Ok((version, read::walk(conn, &walk)?))
            })
            .await
    }

    async fn list_after(
        &self,
        _db: &Db,
        selection: Selection,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<ShipmentRow>> {
        self.reader
            .read(move |conn| read::after(conn, &selection, after_id, limit))
            .await
    }

    async fn changes(&self, _db: &Db, feed: Feed) -> StoreResult<Vec<ShipmentRow>> {
        self.reader
            .read(move |conn| read::changes(conn, &feed))
            .await
    }

    async fn get(&self, _db: &Db, user_id: i64, id: i64) -> StoreResult<Option<ShipmentDetail>> {
        self.reader
            .read(move |conn| read::detail(conn, user_id, id))
            .await
    }

    async fn version(&self, _db: &Db, user_id: i64) -> StoreResult<Versions> {
        self.reader
            .read(move |conn| read::version(conn, user_id))
            .await
    }

    async fn pending_details(
        &self,
        _db: &Db,
        shop_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<String>> {
        // Once per detail step: one hand-off to a reader thread instead of one per row.
        self.engine_reader
            .read(move |conn| read::pending_details(conn, shop_id, limit))
            .await
    }

    async fn write_batch(&self, _db: &Db, batch: Batch) -> StoreResult<Outcome> {
        self.writer
            .write(move |conn| {
                let outcome = batch::apply(&batch, |statement, values| {
                    // Not cached: the step's statements fill the connection's cache, and these
                    // run once a run or less.
                    let mut prepared = conn.prepare(&statement.sql)?;
                    let rows = prepared.execute(rusqlite::params_from_iter(values))? as u64;
                    let inserted_id = statement.inserts.then(|| conn.last_insert_rowid());
                    Ok::<_, rusqlite::Error>(Executed { rows, inserted_id })
                })?;
                let keep = outcome.is_some();
                Ok((outcome, keep))
            })
            .await
    }
}
