//! The conformance suite of the hot paths ([`super::hot`]): one set of tests that every backend
//! family passes. Each test runs on the SQLite family on a temporary file; on the server family
//! on a SQLite file, so that a plain `cargo test` covers that family's logic; and on PostgreSQL
//! and MySQL when `SIMBA_TEST_POSTGRES_URL` / `SIMBA_TEST_MYSQL_URL` name a server (skipped with
//! a printed line otherwise), each test in a fresh database that is dropped even when it panics.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::shipments::{self, Filter, ItemKey, NewShipment, Ordering, Versions};
use super::steps::{self, StepCommit, StepData, StepWrite};
use super::sync_runs::{self, StepDelta, StepOutcome};
use super::{Db, marketplace, shops, users};
use crate::crypto::Cipher;
use crate::domain::{
    ClientId, ClientSecret, FulfilmentMethod, Marketplace, Mode, RunStatus, ShopName, SyncInterval,
    Timestamp, Trigger,
};

/// Where a test runs.
#[derive(Clone, Copy, Debug)]
enum Target {
    SqliteFamily,
    ServerFamilyOnSqlite,
    Postgres,
    Mysql,
}

/// A migrated database for one test; a server's database is dropped with it.
struct TestDb {
    db: Db,
    _dir: Option<tempfile::TempDir>,
    server: Option<(String, String)>,
}

impl TestDb {
    async fn open(target: Target) -> Option<TestDb> {
        let (db, dir, server) = match target {
            Target::SqliteFamily | Target::ServerFamilyOnSqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("simba.db").display()
                );
                let db = match target {
                    Target::SqliteFamily => Db::connect(&url, 4).await.unwrap(),
                    _ => Db::connect_server_family(&url, 4).await,
                };
                (db, Some(dir), None)
            }
            Target::Postgres | Target::Mysql => {
                let var = match target {
                    Target::Postgres => "SIMBA_TEST_POSTGRES_URL",
                    _ => "SIMBA_TEST_MYSQL_URL",
                };
                let Some(admin_url) = std::env::var(var).ok().filter(|v| !v.is_empty()) else {
                    println!("skipped on {target:?}: {var} is not set");
                    return None;
                };
                let name = format!("simba_conformance_{:016x}", rand::random::<u64>());
                admin_execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
                let mut url = url::Url::parse(&admin_url).unwrap();
                url.set_path(&format!("/{name}"));
                let db = Db::connect(url.as_str(), 4).await.unwrap();
                (db, None, Some((admin_url, name)))
            }
        };
        super::migrate(&db).await.unwrap();
        Some(TestDb {
            db,
            _dir: dir,
            server,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.server.take() else {
            return;
        };
        let sql = if admin_url.starts_with("postgres") {
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        } else {
            format!("DROP DATABASE IF EXISTS {name}")
        };
        // A runtime of its own: the test's may be gone, or be the one that panicked.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(admin_execute(&admin_url, &sql));
        })
        .join()
        .ok();
    }
}

async fn admin_execute(admin_url: &str, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin_url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
}

async fn run<F, Fut>(target: Target, test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(test_db) = TestDb::open(target).await {
        test(test_db.db.clone()).await;
    }
}

/// Generates, for each test of `cases`, one test per [`Target`].
macro_rules! on_every_family {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            use super::{Target, cases, run};

            #[tokio::test]
            async fn on_the_sqlite_family() {
                run(Target::SqliteFamily, cases::$name).await;
            }

            #[tokio::test]
            async fn on_the_server_family_over_sqlite() {
                run(Target::ServerFamilyOnSqlite, cases::$name).await;
            }

            #[tokio::test]
            async fn on_postgres() {
                run(Target::Postgres, cases::$name).await;
            }

            #[tokio::test]
            async fn on_mysql() {
                run(Target::Mysql, cases::$name).await;
            }
        })*
    };
}

on_every_family!(
    a_list_step_inserts_only_new_shipments_and_reports_reaching_known_ones,
    a_detail_step_updates_what_changed_and_inserts_what_was_missing,
    gone_details_are_pending_no_more,
    a_step_whose_lease_was_lost_writes_nothing,
    a_step_of_a_cancelled_run_writes_nothing,
    a_step_extends_its_lease_from_its_commit_and_never_shortens_it,
    rate_budgets_are_saved_with_the_step,
    only_a_step_that_changes_shipments_bumps_the_version,
    what_a_client_must_see_at_once_moves_the_epoch,
    every_change_takes_the_next_number_of_its_sellers_feed,
    a_lease_renewal_skips_a_shop_whose_commit_holds_its_row,
    lists_filter_order_page_and_count,
    another_sellers_shop_reads_as_empty,
    of_runs_queued_together_for_one_shop_one_is_active,
);

/// The owner of every test's lease.
const OWNER: &str = "conformance-worker";

/// A seller with one shop and a running run whose lease [`OWNER`] holds.
struct Seller {
    user_id: i64,
    shop_id: i64,
    run_id: i64,
}

impl Seller {
    async fn new(db: &Db, name: &str) -> Seller {
        let email = format!("{name}@example.com");
        let user = users::create(
            db,
            &users::NewUser {
                username: name,
                email: &email,
                password_hash: "not a hash",
                first_name: name,
                last_name: name,
            },
        )
        .await
        .unwrap();
        let fields = shops::ShopFields {
            name: ShopName::parse(name).unwrap(),
            marketplace: Marketplace::parse("bol").unwrap(),
            client_id: ClientId::parse(&client_id(name)).unwrap(),
            auto_sync: false,
            sync_interval: SyncInterval::parse(60).unwrap(),
            push_enabled: false,
        };
        let secret = ClientSecret::parse(&SecretString::from("secret-value-1")).unwrap();
        let shop = shops::create(db, &cipher(), user.id, &fields, &secret)
            .await
            .unwrap();
        let run = sync_runs::create_queued(db, shop.id, Mode::Full, Trigger::Api)
            .await
            .unwrap();
        assert!(sync_runs::mark_running(db, run.id).await.unwrap());
        let now = Timestamp::now();
        assert!(
            sync_runs::lease(db, shop.id, OWNER, now, now + Duration::from_secs(600))
                .await
                .unwrap()
        );
        Seller {
            user_id: user.id,
            shop_id: shop.id,
            run_id: run.id,
        }
    }

    /// A step of this seller's run that fetched `data`.
    fn step(&self, data: StepData) -> StepWrite {
        StepWrite {
            run_id: self.run_id,
            shop_id: self.shop_id,
            user_id: self.user_id,
            owner: OWNER.into(),
            lease: Duration::from_secs(600),
            data,
            delta: StepDelta {
                pages_fetched: 1,
                ..StepDelta::default()
            },
            checkpoint_all_new: "all new".into(),
            checkpoint_reached_known: "reached known".into(),
            client_id: self.client_id(),
            budgets: Vec::new(),
        }
    }

    fn client_id(&self) -> String {
        client_id(&format!("shop{}", self.shop_id))
    }

    async fn commit(&self, db: &Db, data: StepData) -> StepCommit {
        steps::commit(db, self.step(data)).await.unwrap()
    }

    async fn list(&self, db: &Db, filter: &Filter) -> (Vec<String>, i64) {
        let (rows, count) = shipments::list(db, self.user_id, filter, Ordering::IdAscending, 50, 0)
            .await
            .unwrap();
        (rows.into_iter().map(|row| row.shipment_id).collect(), count)
    }

    async fn progress(&self, db: &Db) -> sync_runs::Progress {
        let run = sync_runs::get(db, self.user_id, self.run_id).await.unwrap();
        run.unwrap().progress
    }

    /// The stored row id of the shop's `i`-th test shipment.
    async fn row_id(&self, db: &Db, i: usize) -> i64 {
        let filter = Filter {
            q: Some(shipment_id(i)),
            ..Filter::default()
        };
        let (rows, _) = shipments::list(db, self.user_id, &filter, Ordering::IdAscending, 1, 0)
            .await
            .unwrap();
        rows[0].id
    }
}

fn client_id(name: &str) -> String {
    format!("client-{name}")
}

fn cipher() -> Cipher {
    Cipher::new(&SecretString::from("conformance secret key"))
}

fn shipment_id(i: usize) -> String {
    format!("9{i:08}")
}

/// The `i`-th test shipment as a list page gives it: FBR at even `i`, FBB at odd, a second
/// apart, without detail.
fn shipment(i: usize) -> NewShipment {
    NewShipment {
        shipment_id: shipment_id(i),
        shipment_date: Timestamp::from_unix_seconds(1_700_000_000 + i as i64),
        shipment_reference: None,
        fulfilment_method: if i.is_multiple_of(2) {
            FulfilmentMethod::Fbr
        } else {
            FulfilmentMethod::Fbb
        },
        order_id: Some(format!("order-{i}")),
        order_placed_at: None,
        pickup_point: None,
        transport_id: None,
        transporter_code: None,
        track_and_trace: None,
        shipping_label_id: None,
        transport_events: None,
        items: "[]".into(),
        item_keys: vec![ItemKey {
            order_item_id: format!("{i}-1"),
            ean: Some(format!("87{i:011}")),
        }],
        customer: None,
        raw: None,
        detail_synced_at: None,
    }
}

fn list(indexes: impl IntoIterator<Item = usize>) -> StepData {
    StepData::List(indexes.into_iter().map(shipment).collect())
}

fn budgets(remaining: u32) -> Vec<bol::BucketSnapshot> {
    vec![bol::BucketSnapshot {
        group: bol::Group::List,
        limit: Some(25),
        remaining: Some(remaining),
        reset_at: None,
    }]
}

const COMMITTED: StepCommit = StepCommit {
    outcome: StepOutcome::Committed,
    reached_known: false,
};

mod cases {
    use super::*;

    pub(super) async fn a_list_step_inserts_only_new_shipments_and_reports_reaching_known_ones(
        db: Db,
    ) {
        let ann = Seller::new(&db, "ann").await;

        let first = ann.commit(&db, list([0, 1])).await;
        let second = ann.commit(&db, list([1, 2])).await;

        assert_eq!(first, COMMITTED);
        let reached_known = StepCommit {
            outcome: StepOutcome::Committed,
            reached_known: true,
        };
        assert_eq!(second, reached_known);
        let ids = [0, 1, 2].map(shipment_id).to_vec();
        assert_eq!(ann.list(&db, &Filter::default()).await, (ids, 3));
        let progress = ann.progress(&db).await;
        assert_eq!((progress.pages_fetched, progress.shipments_stored), (2, 3));
        assert_eq!(progress.details_pending, 3);
        let run = sync_runs::engine_run(&db, ann.run_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.checkpoint.as_deref(), Some("reached known"));
        let shop = shops::get(&db, ann.user_id, ann.shop_id).await.unwrap();
        assert_eq!(shop.unwrap().shipment_count, 3);
    }

    pub(super) async fn a_detail_step_updates_what_changed_and_inserts_what_was_missing(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        ann.commit(&db, list([0, 1])).await;
        let mut changed = shipment(0);
        changed.order_id = Some("order-changed".into());
        changed.track_and_trace = Some("3SABC".into());
        changed.transporter_code = Some("DHL".into());
        changed.customer = Some(r#"{"zip_code":"1234AB"}"#.into());
        changed.detail_synced_at = Some(Timestamp::from_unix_seconds(1_700_000_100));
        changed.item_keys.push(ItemKey {
            order_item_id: "0-2".into(),
            ean: Some("extra-ean".into()),
        });
        let mut unchanged = shipment(1);
        unchanged.detail_synced_at = Some(Timestamp::from_unix_seconds(1_700_000_100));
        let mut missing = shipment(2);
        missing.detail_synced_at = Some(Timestamp::from_unix_seconds(1_700_000_100));

        let details = vec![changed, unchanged, missing];
        let committed = ann
            .commit(
                &db,
                StepData::Details {
                    details: details.into(),
                    gone: Arc::default(),
                },
            )
            .await;

        assert_eq!(committed, COMMITTED);
        let id = ann.row_id(&db, 0).await;
        let detail = shipments::get(&db, ann.user_id, id).await.unwrap().unwrap();
        assert_eq!(detail.row.order_id.as_deref(), Some("order-changed"));
        assert_eq!(detail.row.track_and_trace.as_deref(), Some("3SABC"));
        assert_eq!(detail.row.transporter_code.as_deref(), Some("DHL"));
        assert_eq!(detail.customer.as_deref(), Some(r#"{"zip_code":"1234AB"}"#));
        assert_eq!(
            detail.row.detail_synced_at,
            Some(Timestamp::from_unix_seconds(1_700_000_100))
        );
        let by_ean = |ean: &str| Filter {
            ean: Some(ean.into()),
            ..Filter::default()
        };
        let first_ean = format!("87{:011}", 0);
        assert_eq!(ann.list(&db, &by_ean("extra-ean")).await.1, 1);
        assert_eq!(ann.list(&db, &by_ean(&first_ean)).await.1, 1);
        let by_old_order = Filter {
            order_id: Some("order-0".into()),
            ..Filter::default()
        };
        assert_eq!(ann.list(&db, &by_old_order).await.1, 0);
        assert_eq!(ann.list(&db, &Filter::default()).await.1, 3);
        let pending = shipments::pending_details(&db, ann.shop_id, 10).await;
        assert_eq!(pending.unwrap(), Vec::<String>::new());
        assert_eq!(ann.progress(&db).await.details_pending, 0);
    }

    pub(super) async fn gone_details_are_pending_no_more(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        ann.commit(&db, list([0, 1])).await;
        let pending = shipments::pending_details(&db, ann.shop_id, 10).await;
        assert_eq!(pending.unwrap(), [shipment_id(1), shipment_id(0)]);

        let gone = vec![shipment_id(0)];
        let data = StepData::Details {
            details: Arc::default(),
            gone: gone.into(),
        };
        assert_eq!(ann.commit(&db, data).await, COMMITTED);

        let pending = shipments::pending_details(&db, ann.shop_id, 10).await;
        assert_eq!(pending.unwrap(), [shipment_id(1)]);
        assert_eq!(ann.progress(&db).await.details_pending, 1);
        let id = ann.row_id(&db, 0).await;
        let detail = shipments::get(&db, ann.user_id, id).await.unwrap().unwrap();
        assert!(detail.row.detail_synced_at.is_some());
    }

    pub(super) async fn a_step_whose_lease_was_lost_writes_nothing(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        sync_runs::release_lease(&db, ann.shop_id, OWNER)
            .await
            .unwrap();
        let now = Timestamp::now();
        let later = now + Duration::from_secs(60);
        let taken = sync_runs::lease(&db, ann.shop_id, "another worker", now, later);
        assert!(taken.await.unwrap());
        let version = shipments::version(&db, ann.user_id).await.unwrap();
        let mut step = ann.step(list([0]));
        step.budgets = budgets(7);

        let committed = steps::commit(&db, step).await.unwrap();

        assert_eq!(committed.outcome, StepOutcome::LeaseLost);
        assert_nothing_written(&db, &ann, version).await;
        let holder = sync_runs::lease_holder(&db, ann.shop_id).await.unwrap();
        assert_eq!(holder.unwrap().0, "another worker");
    }

    pub(super) async fn a_step_of_a_cancelled_run_writes_nothing(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        sync_runs::cancel(&db, ann.user_id, ann.run_id)
            .await
            .unwrap();
        let version = shipments::version(&db, ann.user_id).await.unwrap();
        let mut step = ann.step(list([0]));
        step.budgets = budgets(7);

        let committed = steps::commit(&db, step).await.unwrap();

        assert_eq!(committed.outcome, StepOutcome::Cancelled);
        assert_nothing_written(&db, &ann, version).await;
        assert_eq!(ann.progress(&db).await.pages_fetched, 0);
    }

    async fn assert_nothing_written(db: &Db, seller: &Seller, version: Versions) {
        assert_eq!(seller.list(db, &Filter::default()).await, (Vec::new(), 0));
        let shop = shops::get(db, seller.user_id, seller.shop_id)
            .await
            .unwrap();
        assert_eq!(shop.unwrap().shipment_count, 0);
        let narrowed = Filter {
            fulfilment_method: Some(FulfilmentMethod::Fbr),
            ..Filter::default()
        };
        assert_eq!(seller.list(db, &narrowed).await.1, 0);
        assert_eq!(
            shipments::version(db, seller.user_id).await.unwrap(),
            version
        );
        let saved = marketplace::load_budgets(db, &seller.client_id()).await;
        assert_eq!(saved.unwrap(), Vec::new());
    }

    pub(super) async fn a_step_extends_its_lease_from_its_commit_and_never_shortens_it(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        let lease = Duration::from_secs(60);
        let soon = Timestamp::now() + Duration::from_secs(1);
        let held = sync_runs::lease(&db, ann.shop_id, OWNER, Timestamp::now(), soon);
        assert!(held.await.unwrap());
        let mut step = ann.step(list([0]));
        step.lease = lease;
        // Built, then committed later: as a commit that waited for a connection.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let committing = Timestamp::now();
        assert_eq!(steps::commit(&db, step).await.unwrap(), COMMITTED);
        let (_, until) = sync_runs::lease_holder(&db, ann.shop_id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            until.unix_millis() >= (committing + lease).unix_millis(),
            "counted from the commit"
        );

        let far = Timestamp::now() + Duration::from_secs(600);
        let renewed = sync_runs::lease(&db, ann.shop_id, OWNER, Timestamp::now(), far);
        assert!(renewed.await.unwrap());
        let mut step = ann.step(list([1]));
        step.lease = lease;
        assert_eq!(steps::commit(&db, step).await.unwrap(), COMMITTED);
        let (_, until) = sync_runs::lease_holder(&db, ann.shop_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            until.unix_millis(),
            far.unix_millis(),
            "a renewal further out is kept"
        );
    }

    pub(super) async fn rate_budgets_are_saved_with_the_step(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        for remaining in [7, 3] {
            let mut step = ann.step(list([remaining as usize]));
            step.budgets = budgets(remaining);

            assert_eq!(steps::commit(&db, step).await.unwrap(), COMMITTED);

            let saved = marketplace::load_budgets(&db, &ann.client_id()).await;
            assert_eq!(saved.unwrap(), budgets(remaining), "replaced by every step");
        }
    }

    pub(super) async fn only_a_step_that_changes_shipments_bumps_the_version(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        let before = shipments::version(&db, ann.user_id).await.unwrap();

        ann.commit(&db, list([0])).await;
        let after_new = shipments::version(&db, ann.user_id).await.unwrap();
        ann.commit(&db, list([0])).await;
        let after_known = shipments::version(&db, ann.user_id).await.unwrap();
        let mut detail = shipment(0);
        detail.detail_synced_at = Some(Timestamp::from_unix_seconds(1));
        let details = vec![detail];
        ann.commit(
            &db,
            StepData::Details {
                details: details.into(),
                gone: Arc::default(),
            },
        )
        .await;
        let after_detail = shipments::version(&db, ann.user_id).await.unwrap();

        assert!(
            after_new.version > before.version,
            "new shipments bump the version"
        );
        assert_eq!(after_known, after_new, "known ones do not");
        assert!(after_detail.version > after_known.version, "a detail does");
        assert_eq!(
            after_detail.epoch, before.epoch,
            "a run's steps leave the epoch"
        );
    }

    pub(super) async fn what_a_client_must_see_at_once_moves_the_epoch(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        let bob = Seller::new(&db, "bob").await;
        let before = shipments::version(&db, ann.user_id).await.unwrap();
        let bob_before = shipments::version(&db, bob.user_id).await.unwrap();

        let pushed = [shipment(0)];
        let stored = shipments::insert_new(&db, ann.user_id, ann.shop_id, &pushed);
        assert_eq!(stored.await.unwrap(), 1);
        let after_push = shipments::version(&db, ann.user_id).await.unwrap();
        let end = sync_runs::RunFinish {
            status: RunStatus::Succeeded,
            error: None,
            calls: &sync_runs::ApiCalls::default(),
        };
        let ended = sync_runs::finish(&db, ann.run_id, ann.shop_id, Some(OWNER), &end);
        assert!(ended.await.unwrap());
        let after_end = shipments::version(&db, ann.user_id).await.unwrap();

        assert!(after_push.version > before.version);
        assert!(
            after_push.epoch > before.epoch,
            "a write outside a run's steps"
        );
        assert_eq!(after_end.version, after_push.version, "no shipment changed");
        assert!(after_end.epoch > after_push.epoch, "a run's end");
        let untouched = shipments::version(&db, bob.user_id).await.unwrap();
        assert_eq!(untouched, bob_before, "another seller's");
    }

    pub(super) async fn every_change_takes_the_next_number_of_its_sellers_feed(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        let bob = Seller::new(&db, "bob").await;
        let feed = |seller: &Seller, after: i64| shipments::Feed {
            user_id: seller.user_id,
            shop_id: None,
            after,
            limit: 100,
        };
        let numbers = |rows: Vec<shipments::ShipmentRow>| -> Vec<(String, i64)> {
            rows.into_iter()
                .map(|row| (row.shipment_id, row.change_seq))
                .collect()
        };

        ann.commit(&db, list([0, 1, 1, 2])).await;
        bob.commit(&db, list([0])).await;
        ann.commit(&db, list([2])).await;
        let first = numbers(shipments::changes(&db, feed(&ann, 0)).await.unwrap());
        let ids: Vec<_> = first.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(ids, [0, 1, 2].map(shipment_id), "each new shipment once");
        let seqs: Vec<_> = first.iter().map(|&(_, seq)| seq).collect();
        assert_eq!(seqs, [1, 2, 3], "the seller's own sequence, without gaps");

        let mut detail = shipment(1);
        detail.detail_synced_at = Some(Timestamp::from_unix_seconds(1));
        let gone = vec![shipment_id(2)];
        let details = vec![detail];
        let data = StepData::Details {
            details: details.into(),
            gone: gone.into(),
        };
        ann.commit(&db, data).await;
        let later = numbers(shipments::changes(&db, feed(&ann, 3)).await.unwrap());
        assert_eq!(later, [(shipment_id(2), 4), (shipment_id(1), 5)]);
        let bobs = numbers(shipments::changes(&db, feed(&bob, 0)).await.unwrap());
        assert_eq!(
            bobs,
            [(shipment_id(0), 1)],
            "another seller's numbers are its own"
        );

        let one_shop = shipments::Feed {
            shop_id: Some(ann.shop_id),
            limit: 1,
            ..feed(&ann, 0)
        };
        let page = numbers(shipments::changes(&db, one_shop).await.unwrap());
        assert_eq!(page, [(shipment_id(0), 1)]);
        let foreign = shipments::Feed {
            shop_id: Some(ann.shop_id),
            ..feed(&bob, 0)
        };
        assert!(shipments::changes(&db, foreign).await.unwrap().is_empty());
    }

    pub(super) async fn a_lease_renewal_skips_a_shop_whose_commit_holds_its_row(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        let bob = Seller::new(&db, "bob").await;
        let lease_of = |shop_id: i64| {
            let db = db.clone();
            async move {
                let row = db
                    .query("SELECT lease_until FROM shops WHERE id = ?")
                    .bind(shop_id)
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
                sqlx::Row::try_get::<i64, _>(&row, 0).unwrap()
            }
        };
        let shops = [ann.shop_id, bob.shop_id];
        let mut keeper = None;
        let until = Timestamp::now() + Duration::from_secs(600);
        sync_runs::renew_leases(&db, &mut keeper, &shops, OWNER, until)
            .await
            .unwrap();
        assert_eq!(lease_of(ann.shop_id).await, until.unix_millis());
        assert_eq!(lease_of(bob.shop_id).await, until.unix_millis());
        if db.backend == crate::store::Backend::Sqlite {
            return;
        }

        // A step's commit in flight on ann's shop: its fence holds the row until it ends.
        let mut commit = db.pool.begin().await.unwrap();
        db.query(sync_runs::FENCE)
            .bind(until.unix_millis())
            .bind(until.unix_millis())
            .bind(ann.shop_id)
            .bind(OWNER)
            .execute(&mut *commit)
            .await
            .unwrap();
        let later = until + Duration::from_secs(60);
        let renewal = sync_runs::renew_leases(&db, &mut keeper, &shops, OWNER, later);
        let renewed = tokio::time::timeout(Duration::from_secs(5), renewal).await;
        commit.rollback().await.unwrap();
        renewed
            .expect("the renewal does not wait for the commit")
            .unwrap();
        assert_eq!(lease_of(bob.shop_id).await, later.unix_millis());
        assert_eq!(lease_of(ann.shop_id).await, until.unix_millis(), "skipped");
    }

    pub(super) async fn lists_filter_order_page_and_count(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        ann.commit(&db, list(0..5)).await;
        let user = ann.user_id;
        let page = |filter: Filter, ordering, limit, offset| {
            let db = db.clone();
            async move {
                let (rows, count) = shipments::list(&db, user, &filter, ordering, limit, offset)
                    .await
                    .unwrap();
                let ids: Vec<String> = rows.into_iter().map(|row| row.shipment_id).collect();
                (ids, count)
            }
        };
        let ids = |indexes: &[usize]| indexes.iter().map(|&i| shipment_id(i)).collect::<Vec<_>>();
        let shop = Filter {
            shop_id: Some(ann.shop_id),
            ..Filter::default()
        };
        let fbr = Filter {
            fulfilment_method: Some(FulfilmentMethod::Fbr),
            ..shop.clone()
        };
        let window = Filter {
            shipped_after: Some(Timestamp::from_unix_seconds(1_700_000_001)),
            shipped_before: Some(Timestamp::from_unix_seconds(1_700_000_003)),
            ..Filter::default()
        };

        let newest = page(Filter::default(), Ordering::NewestFirst, 2, 0).await;
        let oldest = page(shop.clone(), Ordering::OldestFirst, 2, 2).await;
        let fbr_page = page(fbr.clone(), Ordering::IdDescending, 50, 0).await;
        let windowed = page(window, Ordering::IdAscending, 50, 0).await;
        let past_the_end = page(fbr.clone(), Ordering::IdAscending, 50, 3).await;

        assert_eq!(newest, (ids(&[4, 3]), 5));
        assert_eq!(oldest, (ids(&[2, 3]), 5));
        assert_eq!(fbr_page, (ids(&[4, 2, 0]), 3));
        assert_eq!(windowed, (ids(&[1, 2]), 2));
        assert_eq!(past_the_end, (Vec::new(), 3));
        let first = ann.row_id(&db, 0).await;
        let after = shipments::list_after(&db, user, &fbr, first, 1)
            .await
            .unwrap();
        assert_eq!(
            after.iter().map(|r| &r.shipment_id).collect::<Vec<_>>(),
            [&shipment_id(2)]
        );
        let detail = shipments::get(&db, user, first).await.unwrap().unwrap();
        let (listed, _) = shipments::list(&db, user, &shop, Ordering::IdAscending, 1, 0)
            .await
            .unwrap();
        assert_eq!(detail.row, listed[0], "a detail's row is the listed row");
    }

    pub(super) async fn another_sellers_shop_reads_as_empty(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        let bob = Seller::new(&db, "bob").await;
        ann.commit(&db, list([0, 1])).await;
        let anns_shop = Filter {
            shop_id: Some(ann.shop_id),
            ..Filter::default()
        };
        let anns_fbr = Filter {
            fulfilment_method: Some(FulfilmentMethod::Fbr),
            ..anns_shop.clone()
        };

        for filter in [Filter::default(), anns_shop, anns_fbr] {
            assert_eq!(bob.list(&db, &filter).await, (Vec::new(), 0), "{filter:?}");
            let after = shipments::list_after(&db, bob.user_id, &filter, 0, 50).await;
            assert_eq!(after.unwrap(), Vec::new(), "{filter:?}");
        }
        let id = ann.row_id(&db, 0).await;
        assert_eq!(shipments::get(&db, bob.user_id, id).await.unwrap(), None);
        assert_eq!(ann.list(&db, &Filter::default()).await.1, 2);
    }

    pub(super) async fn of_runs_queued_together_for_one_shop_one_is_active(db: Db) {
        let ann = Seller::new(&db, "ann").await;
        let runs_of_the_shop = || async {
            let count: i64 = sqlx::Row::get(
                &db.query("SELECT COUNT(*) FROM sync_runs WHERE shop_id = ?")
                    .bind(ann.shop_id)
                    .fetch_one(&db.pool)
                    .await
                    .unwrap(),
                0,
            );
            count
        };
        let refused = sync_runs::create_queued(&db, ann.shop_id, Mode::Full, Trigger::Api).await;
        assert!(
            matches!(refused, Err(sync_runs::QueueError::Active(id)) if id == ann.run_id),
            "{refused:?}"
        );
        assert_eq!(runs_of_the_shop().await, 1, "a refused run is not kept");

        db.query("UPDATE shops SET active_run_id = NULL WHERE id = ?")
            .bind(ann.shop_id)
            .execute(&db.pool)
            .await
            .unwrap();
        let queued = futures_util::future::join_all((0..8).map(|_| {
            sync_runs::create_queued(&db, ann.shop_id, Mode::Incremental, Trigger::Schedule)
        }))
        .await;
        let won: Vec<_> = queued.iter().filter_map(|q| q.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "{queued:?}");
        for lost in queued.iter().filter_map(|q| q.as_ref().err()) {
            assert!(
                matches!(lost, sync_runs::QueueError::Active(id) if *id == won[0].id),
                "{lost:?}"
            );
        }
        assert_eq!(runs_of_the_shop().await, 2);
        let active: Option<i64> = sqlx::Row::get(
            &db.query("SELECT active_run_id FROM shops WHERE id = ?")
                .bind(ann.shop_id)
                .fetch_one(&db.pool)
                .await
                .unwrap(),
            0,
        );
        assert_eq!(active, Some(won[0].id));
    }
}

/// One SQLite file read through both families answers the same to every read.
#[tokio::test]
async fn both_families_read_a_sqlite_file_alike() {
    let Some(test_db) = TestDb::open(Target::SqliteFamily).await else {
        unreachable!("SQLite needs no server")
    };
    let sqlite = test_db.db.clone();
    let dir = test_db._dir.as_ref().unwrap();
    let url = format!("sqlite://{}", dir.path().join("simba.db").display());
    let server = Db::connect_server_family(&url, 4).await;
    let ann = Seller::new(&sqlite, "ann").await;
    ann.commit(&sqlite, list(0..7)).await;
    let mut detail = shipment(3);
    detail.detail_synced_at = Some(Timestamp::from_unix_seconds(1));
    detail.track_and_trace = Some("3SXYZ".into());
    let details = vec![detail];
    ann.commit(
        &sqlite,
        StepData::Details {
            details: details.into(),
            gone: [shipment_id(5)].into(),
        },
    )
    .await;
    let user = ann.user_id;
    let filters = [
        Filter::default(),
        Filter {
            shop_id: Some(ann.shop_id),
            ..Filter::default()
        },
        Filter {
            fulfilment_method: Some(FulfilmentMethod::Fbb),
            ..Filter::default()
        },
        Filter {
            q: Some("3SXYZ".into()),
            ..Filter::default()
        },
        Filter {
            ean: Some(format!("87{:011}", 4)),
            ..Filter::default()
        },
    ];
    let orderings = [
        Ordering::NewestFirst,
        Ordering::OldestFirst,
        Ordering::IdDescending,
        Ordering::IdAscending,
    ];

    for filter in &filters {
        for ordering in orderings {
            for offset in [0, 3, 10] {
                let a = shipments::list(&sqlite, user, filter, ordering, 3, offset).await;
                let b = shipments::list(&server, user, filter, ordering, 3, offset).await;
                assert_eq!(a.unwrap(), b.unwrap(), "{filter:?} {ordering:?} {offset}");
            }
        }
        let a = shipments::list_after(&sqlite, user, filter, 2, 2).await;
        let b = shipments::list_after(&server, user, filter, 2, 2).await;
        assert_eq!(a.unwrap(), b.unwrap(), "{filter:?}");
    }
    for id in 0..9 {
        let a = shipments::get(&sqlite, user, id).await.unwrap();
        assert_eq!(a, shipments::get(&server, user, id).await.unwrap());
    }
    let a = shipments::pending_details(&sqlite, ann.shop_id, 10).await;
    let b = shipments::pending_details(&server, ann.shop_id, 10).await;
    assert_eq!(a.unwrap(), b.unwrap());
    let a = shipments::version(&sqlite, user).await.unwrap();
    assert_eq!(a, shipments::version(&server, user).await.unwrap());
}
