//! The server family: the hot paths on sqlx's pool, for PostgreSQL and MySQL (and an
//! in-memory SQLite database, which only sqlx's connections can see). Each operation is a
//! transaction or a few statements on the pool, written once for every backend with
//! [`crate::store::Db::query`]'s placeholders.

mod ingest;
pub(super) mod read;

use super::batch::{Batch, Outcome};
use super::hot::HotPath;
use super::shipments::sql::{Page, Selection, Walk};
use super::shipments::{Feed, ShipmentDetail, ShipmentRow, Versions};
use super::steps::{StepCommit, StepData, StepWrite};
use super::{Db, StoreResult};

/// The server family; what it needs, the pool and the dialect, comes with each call's [`Db`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Server;

impl HotPath for Server {
    async fn commit_step(&self, db: &Db, step: StepWrite) -> StoreResult<StepCommit> {
        ingest::commit_step(db, &step).await
    }

    async fn write(&self, db: &Db, user_id: i64, shop_id: i64, data: StepData) -> StoreResult<u64> {
        let mut tx = db.begin_write().await?;
        let (inserted, _) = ingest::write_data(db, &mut tx, user_id, shop_id, &data).await?;
        db.query(super::shipments::sql::BUMP_EPOCH)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(inserted)
    }

    async fn list(&self, db: &Db, page: Page) -> StoreResult<(Vec<ShipmentRow>, i64)> {
        read::page(db, &page).await
    }

    async fn walk(&self, db: &Db, walk: Walk) -> StoreResult<(Versions, Vec<ShipmentRow>)> {
        let version = read::version(db, walk.selection.user_id).await?;
        Ok((version, read::walk(db, &walk).await?))
    }

    async fn list_after(
        &self,
        db: &Db,
        selection: Selection,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<ShipmentRow>> {
        read::after(db, &selection, after_id, limit).await
    }

    async fn changes(&self, db: &Db, feed: Feed) -> StoreResult<Vec<ShipmentRow>> {
        read::changes(db, &feed).await
    }

    async fn get(&self, db: &Db, user_id: i64, id: i64) -> StoreResult<Option<ShipmentDetail>> {
        read::detail(db, user_id, id).await
    }

    async fn version(&self, db: &Db, user_id: i64) -> StoreResult<Versions> {
        read::version(db, user_id).await
    }

    async fn pending_details(&self, db: &Db, shop_id: i64, limit: i64) -> StoreResult<Vec<String>> {
        read::pending_details(db, shop_id, limit).await
    }

    async fn write_batch(&self, db: &Db, batch: Batch) -> StoreResult<Outcome> {
        super::batch::run_on_pool(db, &batch).await
    }
}
