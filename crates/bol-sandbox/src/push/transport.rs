//! `UPDATE_TRANSPORT_EVENT` notifications, which bol pushes when a shipment's transport gets a
//! new event (AT_TRANSPORTER, IN_TRANSIT, DELIVERED_AT_CUSTOMER, ...).
//!
//! Transport events are drawn from the seed with fixed times, so nothing changes when one
//! happens: it just becomes visible once the marketplace clock passes it. Each account with an
//! enabled SHIPMENT webhook gets a watch holding the times of the events still to come, soonest
//! first, and each look notifies the shipments whose events passed since the one before.
//!
//! A catalogue may hold millions of shipments and drawing one costs microseconds, so a watch
//! draws each shipment once: when it starts, only those shipped within [`EVENTS_WITHIN`] (ship
//! times never decrease with the index, so a binary search finds the first), afterwards only
//! new arrivals. A look then costs what the passed events cost, not what the catalogue holds.

use crate::{
    data::{self, Draw},
    ids::Key,
    state::Shared,
};
use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};
use tokio::sync::watch;

/// A shipment's transport events all happen within this long after shipping: five at most,
/// each at most 20 marketplace hours after the one before (see [`data::shipment`]).
const EVENTS_WITHIN: i64 = 5 * 20 * 3600;
/// Real time between two looks.
const TICK: Duration = Duration::from_millis(250);

/// What one account's watch knows.
#[derive(Debug)]
struct Watch {
    /// Events not notified yet, soonest first: (marketplace time, FBB, index).
    due: BinaryHeap<Reverse<(i64, bool, u64)>>,
    /// Per method (FBR, FBB), the first index not drawn yet.
    next: [u64; 2],
    /// Marketplace time of the last look: events up to it are notified or were never wanted.
    last: i64,
}

impl Watch {
    /// Events before `now` are never notified: bol pushes nothing for the time without a
    /// subscription either.
    fn new(shared: &Shared, account: usize, now: i64) -> Self {
        let first = |fbb| {
            shared.accounts[account]
                .catalog(fbb)
                .first_since(now - EVENTS_WITHIN)
        };
        Watch {
            due: BinaryHeap::new(),
            next: [first(false), first(true)],
            last: now,
        }
    }

    /// The shipments with an event after the last look and up to `now`, each once.
    fn look(&mut self, shared: &Shared, account: usize, now: i64) -> Vec<Key> {
        for fbb in [false, true] {
            let catalog = shared.accounts[account].catalog(fbb);
            let count = catalog.count();
            let next = &mut self.next[usize::from(fbb)];
            for index in *next..count {
                let draw = Draw {
                    seed: shared.seed,
                    ids: &shared.codecs,
                    shipped: catalog.shipped(index),
                    now: i64::MAX,
                };
                let shipment = data::shipment(
                    Key {
                        account,
                        fbb,
                        index,
                    },
                    draw,
                );
                let last = self.last;
                self.due.extend(
                    shipment
                        .transport_times()
                        .filter(|&at| at > last)
                        .map(|at| Reverse((at, fbb, index))),
                );
            }
            *next = count;
        }
        let mut passed = Vec::new();
        while let Some(&Reverse((at, fbb, index))) = self.due.peek()
            && at <= now
        {
            self.due.pop();
            passed.push(Key {
                account,
                fbb,
                index,
            });
        }
        self.last = now;
        passed.sort_unstable_by_key(|k| (k.fbb, k.index));
        passed.dedup();
        passed
    }
}

/// Looks every [`TICK`] until `stop` is dropped.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<()>) {
    let mut watches = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let shared = shared.clone();
        // A watch's first look draws every shipment of the last 100 hours (a catalogue of a
        // million: about a second in a debug build), so not on a worker that serves the API.
        let looked = tokio::task::spawn_blocking(move || {
            look(&shared, &mut watches, shared.clock.market_now());
            watches
        });
        let Ok(looked) = looked.await else {
            return;
        };
        watches = looked;
    }
}

/// Queues an `UPDATE_TRANSPORT_EVENT` to each enabled SHIPMENT webhook for every shipment of its
/// account whose transport changed since the last look.
fn look(shared: &Shared, watches: &mut HashMap<usize, Watch>, now: i64) {
    let push = &shared.push;
    if !push.transport_updates() {
        // Switched on again, watches start afresh: changes while off are never pushed.
        watches.clear();
        return;
    }
    let webhooks = push.shipment_webhooks(shared, None);
    // An account that gets a subscription again starts afresh too.
    watches.retain(|account, _| webhooks.contains_key(account));
    for (account, targets) in webhooks {
        let changed = watches
            .entry(account)
            .or_insert_with(|| Watch::new(shared, account, now))
            .look(shared, account, now);
        push.counters
            .transport_updates
            .fetch_add((changed.len() * targets.len()) as u64, Ordering::Relaxed);
        push.queue(shared, &targets, &changed, "UPDATE_TRANSPORT_EVENT");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::SandboxConfig,
        push::{Event, Request, Subscription},
        state::lock,
    };
    use std::collections::BTreeMap;
    use tokio::sync::mpsc;

    fn subscribe(shared: &Shared, account_no: usize) -> u64 {
        let mut book = lock(&shared.push.book);
        let id = book.id();
        let request = Request {
            resources: vec!["SHIPMENT".into()],
            url: "http://127.0.0.1:9/hook".into(),
            subscription_type: "WEBHOOK".into(),
            enabled: None,
            identity: None,
        };
        book.subscriptions.insert(
            id,
            Subscription {
                account_no,
                request,
            },
        );
        id
    }

    /// Every transport event time of every shipment of the account, drawn without the watch's
    /// shortcuts: (shipment id, times).
    fn all_events(shared: &Shared, account: usize) -> Vec<(String, Vec<i64>)> {
        let mut all = Vec::new();
        for fbb in [false, true] {
            let catalog = shared.accounts[account].catalog(fbb);
            for index in 0..catalog.count() {
                let key = Key {
                    account,
                    fbb,
                    index,
                };
                let draw = Draw {
                    seed: shared.seed,
                    ids: &shared.codecs,
                    shipped: catalog.shipped(index),
                    now: i64::MAX,
                };
                let times = data::shipment(key, draw).transport_times().collect();
                all.push((shared.codecs.shipment.encode(key), times));
            }
        }
        all
    }

    /// Shipment id → how many of its events fall in `(after, upto]`, for those with any.
    fn passed(all: &[(String, Vec<i64>)], after: i64, upto: i64) -> BTreeMap<String, usize> {
        all.iter()
            .map(|(id, times)| {
                let n = times.iter().filter(|&&t| t > after && t <= upto).count();
                (id.clone(), n)
            })
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// What was queued of `event_type`: shipment id → notifications, all to `subscription`.
    fn queued(
        inbox: &mut mpsc::UnboundedReceiver<Event>,
        subscription: u64,
        event_type: &str,
    ) -> BTreeMap<String, usize> {
        let mut got = BTreeMap::new();
        while let Ok(e) = inbox.try_recv() {
            assert_eq!(e.subscription, subscription);
            let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
            assert_eq!(body["event"]["resource"], "SHIPMENT");
            if body["event"]["type"] == event_type {
                let id = body["event"]["resourceId"].as_str().unwrap().to_owned();
                *got.entry(id).or_default() += 1;
            }
        }
        got
    }

    fn ones(passed: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
        passed.keys().map(|id| (id.clone(), 1)).collect()
    }

    #[test]
    fn each_passed_transport_event_is_pushed_once_while_subscribed_and_switched_on() {
        const HOUR: i64 = 3600;
        let config = SandboxConfig::default().with_accounts(2, 2000, 500);
        let (shared, mut inbox) = Shared::new(&config);
        let subscription = subscribe(&shared, 0);
        let update = "UPDATE_TRANSPORT_EVENT";
        let mut watches = HashMap::new();
        let t0 = shared.clock.anchor();
        look(&shared, &mut watches, t0);
        assert_eq!(queued(&mut inbox, subscription, update), BTreeMap::new());

        // An arrival is watched from the look after it.
        shared.add_shipments("sandbox-1", 1, 0);
        assert_eq!(queued(&mut inbox, subscription, "CREATE_SHIPMENT").len(), 1);
        let all = all_events(&shared, 0);

        // Up to the first event after t0: its shipment, and none of the others with events to
        // come.
        let first = all
            .iter()
            .flat_map(|(_, times)| times.iter().copied())
            .filter(|&t| t > t0)
            .min()
            .unwrap();
        let at_first = passed(&all, t0, first);
        assert_eq!(at_first.len(), 1);
        assert!(passed(&all, first, i64::MAX).len() > 10);
        look(&shared, &mut watches, first);
        assert_eq!(queued(&mut inbox, subscription, update), ones(&at_first));
        look(&shared, &mut watches, first);
        assert_eq!(queued(&mut inbox, subscription, update), BTreeMap::new());

        // Thirty hours at once: one notification per shipment, however many of its events
        // passed, and none for shipments whose next event is still to come.
        let later = first + 30 * HOUR;
        let in_thirty = passed(&all, first, later);
        assert!(in_thirty.values().any(|&n| n > 1));
        look(&shared, &mut watches, later);
        assert_eq!(queued(&mut inbox, subscription, update), ones(&in_thirty));
        let arrival = shared.codecs.shipment.encode(Key {
            account: 0,
            fbb: false,
            index: 2000,
        });
        assert!(in_thirty.contains_key(&arrival));

        // Switched off nothing is pushed, nor afterwards for what passed meanwhile.
        shared.push.set_transport_updates(false);
        look(&shared, &mut watches, later + 10 * HOUR);
        assert_eq!(queued(&mut inbox, subscription, update), BTreeMap::new());
        shared.push.set_transport_updates(true);
        let on = later + 20 * HOUR;
        look(&shared, &mut watches, on);
        assert_eq!(queued(&mut inbox, subscription, update), BTreeMap::new());
        let after_on = passed(&all, on, on + 10 * HOUR);
        assert!(!after_on.is_empty());
        look(&shared, &mut watches, on + 10 * HOUR);
        assert_eq!(queued(&mut inbox, subscription, update), ones(&after_on));

        let stats = shared.push.stats();
        let pushed = at_first.len() + in_thirty.len() + after_on.len();
        assert_eq!(stats.transport_updates, pushed as u64);
        assert_eq!(stats.events, pushed as u64 + 1);
    }

    #[test]
    fn accounts_without_a_subscription_are_not_watched() {
        let config = SandboxConfig::default().with_accounts(2, 2000, 0);
        let (shared, mut inbox) = Shared::new(&config);
        let subscription = subscribe(&shared, 1);
        let mut watches = HashMap::new();
        let t0 = shared.clock.anchor();
        look(&shared, &mut watches, t0);
        look(&shared, &mut watches, t0 + 100 * 3600);
        assert_eq!(watches.keys().collect::<Vec<_>>(), [&1]);
        let got = queued(&mut inbox, subscription, "UPDATE_TRANSPORT_EVENT");
        let expected = passed(&all_events(&shared, 1), t0, t0 + 100 * 3600);
        assert_eq!(got, ones(&expected));

        lock(&shared.push.book).subscriptions.clear();
        look(&shared, &mut watches, t0 + 101 * 3600);
        assert!(watches.is_empty());
        assert!(inbox.try_recv().is_err());
    }
}
