//! The engine: one process's marketplace client, the name it leases shops under, and the queue
//! that brings it runs. What it does lives beside it: [`claim`](super::claim) (the database
//! queue), [`drive`](super::drive) (a run from lease to end), [`step`](super::step) (one step,
//! fetched and committed), [`checkpoint`](super::checkpoint) (where a run is) and
//! [`scheduler`](super::scheduler).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Once};

use tokio::sync::watch;

use super::queue::RunQueue;
use crate::config::EngineSettings;
use crate::crypto::Cipher;
use crate::domain::Timestamp;
use crate::store::{Db, marketplace, sync_runs};

/// How a drive ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    Succeeded,
    Failed(String),
    Cancelled,
    /// The run is no longer queued or running: it ended, or its shop was deleted.
    Inactive,
    /// Another driver holds the shop's lease.
    Busy,
    /// Stopped at a step boundary because the process is stopping or the slice ended; the shop
    /// is released and the run resumes from its checkpoint with the next driver.
    Paused,
    /// This driver stalled past its lease and another took the shop over, or the run was ended
    /// (cancelled) just before this driver could end it.
    LeaseLost,
}

/// One process's sync engine: its workers share one marketplace client.
pub struct Engine {
    pub(super) db: Db,
    pub(super) cipher: Cipher,
    pub(super) client: bol::Client,
    pub(super) settings: EngineSettings,
    /// Names this process in shop leases.
    pub(super) owner: String,
    /// The shops this process drives now, whose leases [`Engine::keep_leases`] renews.
    driving: Arc<Mutex<HashSet<i64>>>,
    keeping_leases: Once,
    queue: Arc<dyn RunQueue>,
    /// bol's push signature keys, for the receiver.
    pub(super) push_keys: super::push::PushKeys,
    /// Wakes the push worker when the receiver recorded a notification.
    pub(super) push_arrived: tokio::sync::Notify,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(
        db: Db,
        cipher: Cipher,
        client_config: bol::ClientConfig,
        settings: EngineSettings,
        queue: Arc<dyn RunQueue>,
    ) -> anyhow::Result<Arc<Engine>> {
        let cache = Arc::new(marketplace::DbTokenCache {
            db: db.clone(),
            cipher: cipher.clone(),
        });
        let client = bol::Client::with_token_cache(client_config, cache)
            .map_err(|e| anyhow::anyhow!("building the marketplace client: {e}"))?;
        let owner = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        Ok(Arc::new(Engine {
            db,
            cipher,
            client,
            settings,
            owner,
            driving: Arc::default(),
            keeping_leases: Once::new(),
            queue,
            push_keys: Default::default(),
            push_arrived: tokio::sync::Notify::new(),
        }))
    }

    /// Hands a newly queued run to the workers through the queue.
    pub async fn queued(&self, run_id: i64) {
        self.queue.hand_over(self, run_id).await;
    }

    /// Drives the runs the queue delivers until `stop` turns true; runs in flight stop at their
    /// next step boundary and release their shop, so another process resumes them at once.
    pub async fn run_workers(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.queue.clone().serve(self, stop).await;
    }

    pub(super) fn queue(&self) -> &dyn RunQueue {
        self.queue.as_ref()
    }

    /// Whether a task of this process drives the shop now.
    pub(super) fn drives(&self, shop_id: i64) -> bool {
        self.driving
            .lock()
            .expect("driving lock")
            .contains(&shop_id)
    }

    /// Marks the shop as driven by the calling task; false when another task of this process
    /// drives it already.
    pub(super) fn start_driving(&self, shop_id: i64) -> bool {
        self.keeping_leases.call_once(|| self.keep_leases());
        self.driving.lock().expect("driving lock").insert(shop_id)
    }

    /// Renews the leases of every shop this process drives, every third of a lease, while the
    /// engine lives: a run waiting for its rate budget (a reset can outlast the lease) keeps its
    /// shop from other workers without a task or a write of its own. With 10,000 runs in
    /// flight that is 20 statements every 20 s, not 500 writes a second.
    fn keep_leases(&self) {
        let driving = Arc::downgrade(&self.driving);
        let (db, owner, lease) = (self.db.clone(), self.owner.clone(), self.settings.lease);
        tokio::spawn(async move {
            // A connection of its own: behind thousands of steps queued for the pool, a
            // renewal would wait longer than the leases last.
            let mut conn: Option<sqlx::AnyConnection> = None;
            loop {
                tokio::time::sleep(lease / 3).await;
                let Some(driving) = driving.upgrade() else {
                    return;
                };
                let shops: Vec<i64> = driving
                    .lock()
                    .expect("driving lock")
                    .iter()
                    .copied()
                    .collect();
                drop(driving);
                if shops.is_empty() {
                    continue;
                }
                let until = Timestamp::now() + lease;
                // Bounded: a connection left half-open by a failover would hold every lease
                // this process keeps until they lapsed.
                let renewal = sync_runs::renew_leases(&db, &mut conn, &shops, &owner, until);
                let error = match tokio::time::timeout(lease / 3, renewal).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(_) => "no answer within a third of a lease".to_owned(),
                };
                // The connection is replaced at the next renewal.
                conn = None;
                tracing::warn!(error, "renewing shop leases");
            }
        });
    }

    pub(super) fn stop_driving(&self, shop_id: i64) {
        self.driving.lock().expect("driving lock").remove(&shop_id);
    }
}
