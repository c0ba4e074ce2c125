//! The hot paths, a sync step's commit and the shipment reads of every list request, have one
//! definition per backend family, behind [`HotPath`]: a SQLite file runs them on rusqlite
//! ([`super::sqlite`]: its reader and its group-commit writer), PostgreSQL and MySQL on sqlx's
//! pool ([`super::server`]). The family is chosen once, in [`Family::for_url`]; the conformance
//! suite (`conformance.rs`) runs every family through the same tests. Everything else (users,
//! tokens, shops, runs' bookkeeping) is one sqlx `Any` definition for all backends.

use std::sync::Arc;

use super::batch::{Batch, Outcome};
use super::server::Server;
use super::shipments::sql::{Page, Selection, Walk};
use super::shipments::{Feed, ShipmentDetail, ShipmentRow, Versions};
use super::sqlite::SqliteFile;
use super::steps::{StepCommit, StepData, StepWrite};
use super::{Backend, Db, StoreResult};

/// The operations each backend family defines its own way.
pub(crate) trait HotPath {
    /// Commits a sync step: see [`super::steps::commit`].
    async fn commit_step(&self, db: &Db, step: StepWrite) -> StoreResult<StepCommit>;

    /// Stores shipments outside a sync step, in a transaction of their own; returns how many
    /// were new.
    async fn write(&self, db: &Db, user_id: i64, shop_id: i64, data: StepData) -> StoreResult<u64>;

    /// A page and the total of its selection; another seller's shop reads as empty.
    async fn list(&self, db: &Db, page: Page) -> StoreResult<(Vec<ShipmentRow>, i64)>;

    /// The seller's shipments version, then a keyset page read after it; another seller's shop
    /// reads as empty.
    async fn walk(&self, db: &Db, walk: Walk) -> StoreResult<(Versions, Vec<ShipmentRow>)>;

    /// Up to `limit` of the selection above `after_id`, in id order.
    async fn list_after(
        &self,
        db: &Db,
        selection: Selection,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<ShipmentRow>>;

    /// The change feed's next shipments: see [`super::shipments::changes`].
    async fn changes(&self, db: &Db, feed: Feed) -> StoreResult<Vec<ShipmentRow>>;

    async fn get(&self, db: &Db, user_id: i64, id: i64) -> StoreResult<Option<ShipmentDetail>>;

    async fn version(&self, db: &Db, user_id: i64) -> StoreResult<Versions>;

    async fn pending_details(&self, db: &Db, shop_id: i64, limit: i64) -> StoreResult<Vec<String>>;

    /// Runs a batch of the engine's short writes in one transaction: see [`super::batch`].
    async fn write_batch(&self, db: &Db, batch: Batch) -> StoreResult<Outcome>;
}

/// The backend family a [`Db`] runs its hot paths on.
#[derive(Clone, Debug)]
pub(crate) enum Family {
    SqliteFile(Arc<SqliteFile>),
    Server(Server),
}

impl Family {
    /// The family for the database `url` names.
    ///
    /// An in-memory SQLite database (`sqlite::memory:`) runs the server family: rusqlite's
    /// connections cannot see sqlx's private in-memory database, and backing it by a temporary
    /// file instead would make it a file database in all but name. The server family's logic
    /// is the same on SQLite as on PostgreSQL and MySQL, and the conformance suite runs it on
    /// SQLite too.
    pub(super) fn for_url(backend: Backend, url: &str) -> Family {
        match backend {
            Backend::Sqlite => match SqliteFile::for_url(url) {
                Some(file) => Family::SqliteFile(Arc::new(file)),
                None => Family::Server(Server),
            },
            Backend::Postgres | Backend::Mysql => Family::Server(Server),
        }
    }
}

impl HotPath for Family {
    async fn commit_step(&self, db: &Db, step: StepWrite) -> StoreResult<StepCommit> {
        match self {
            Family::SqliteFile(file) => file.commit_step(db, step).await,
            Family::Server(server) => server.commit_step(db, step).await,
        }
    }

    async fn write(&self, db: &Db, user_id: i64, shop_id: i64, data: StepData) -> StoreResult<u64> {
        match self {
            Family::SqliteFile(file) => file.write(db, user_id, shop_id, data).await,
            Family::Server(server) => server.write(db, user_id, shop_id, data).await,
        }
    }

    async fn list(&self, db: &Db, page: Page) -> StoreResult<(Vec<ShipmentRow>, i64)> {
        match self {
            Family::SqliteFile(file) => file.list(db, page).await,
            Family::Server(server) => server.list(db, page).await,
        }
    }

    async fn walk(&self, db: &Db, walk: Walk) -> StoreResult<(Versions, Vec<ShipmentRow>)> {
        match self {
            Family::SqliteFile(file) => file.walk(db, walk).await,
            Family::Server(server) => server.walk(db, walk).await,
        }
    }

    async fn list_after(
        &self,
        db: &Db,
        selection: Selection,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<ShipmentRow>> {
        match self {
            Family::SqliteFile(file) => file.list_after(db, selection, after_id, limit).await,
            Family::Server(server) => server.list_after(db, selection, after_id, limit).await,
        }
    }

    async fn changes(&self, db: &Db, feed: Feed) -> StoreResult<Vec<ShipmentRow>> {
        match self {
            Family::SqliteFile(file) => file.changes(db, feed).await,
            Family::Server(server) => server.changes(db, feed).await,
        }
    }

    async fn get(&self, db: &Db, user_id: i64, id: i64) -> StoreResult<Option<ShipmentDetail>> {
        match self {
            Family::SqliteFile(file) => file.get(db, user_id, id).await,
            Family::Server(server) => server.get(db, user_id, id).await,
        }
    }

    async fn version(&self, db: &Db, user_id: i64) -> StoreResult<Versions> {
        match self {
            Family::SqliteFile(file) => file.version(db, user_id).await,
            Family::Server(server) => server.version(db, user_id).await,
        }
    }

    async fn pending_details(&self, db: &Db, shop_id: i64, limit: i64) -> StoreResult<Vec<String>> {
        match self {
            Family::SqliteFile(file) => file.pending_details(db, shop_id, limit).await,
            Family::Server(server) => server.pending_details(db, shop_id, limit).await,
        }
    }

    async fn write_batch(&self, db: &Db, batch: Batch) -> StoreResult<Outcome> {
        match self {
            Family::SqliteFile(file) => file.write_batch(db, batch).await,
            Family::Server(server) => server.write_batch(db, batch).await,
        }
    }
}
