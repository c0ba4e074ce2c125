//! Push notifications as bol sends them: the subscriptions API with its asynchronous process
//! statuses, the published signature keys, and signed `SHIPMENT` deliveries to WEBHOOK
//! subscriptions when shipments arrive and when their transport changes ([`transport`]).
//!
//! A create, update or delete answers 202 with a process status that settles one marketplace
//! second later (processes are settled when anything looks at push state, so no timer is
//! needed). Deliveries are signed RSA PKCS#1 v1.5 SHA-256 over the body, with the header
//! `signature: keyId=<id>, algorithm="rsa-sha256", signature=<base64>`. A delivery that gets
//! no 2xx is retried every marketplace minute, ten tries in all, and then the subscription is
//! disabled until a PUT enables it, as bol does. Switches drop, duplicate, reorder and delay
//! deliveries; a key pair is made at start and can be rotated. One difference from bol: plain
//! `http://` URLs are accepted, so that a local receiver can be reached without TLS.

pub(crate) mod transport;

use crate::{
    clock,
    gateway::{self, Call},
    http::{self, Violation},
    ids::Key,
    prng::Rng,
    state::{Shared, lock},
    stats::Group,
};
use axum::{
    body::Bytes,
    extract::{OriginalUri, Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, pkcs8::EncodePublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::{mpsc, watch};

/// Tries of one delivery before the subscription is disabled.
const TRIES: u32 = 10;
/// Marketplace time between two tries: ten tries over ten minutes.
const RETRY_EVERY: Duration = Duration::from_secs(60);
/// Marketplace time a process takes to settle.
const PROCESS_TAKES: Duration = Duration::from_secs(1);
/// Size of the generated keys.
const KEY_BITS: usize = 2048;
/// Keys published at once: the current one and the one before, so deliveries signed just
/// before a rotation still verify.
const LIVE_KEYS: usize = 2;
/// A receiver that takes longer than this has failed the delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Event resources a subscription may name.
const RESOURCES: [&str; 7] = [
    "PROCESS_STATUS",
    "SHIPMENT",
    "PRICE_STAR_BOUNDARY",
    "COMPETING_OFFER",
    "OFFER_FOR_SALE",
    "OFFER_NOT_FOR_SALE",
    "ORDER",
];
const TYPES: [&str; 3] = ["WEBHOOK", "GCP_PUBSUB", "AWS_SQS"];

/// Delivery switches; rates are probabilities per event in `[0, 1]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushFaults {
    /// Never deliver the event (not even retried).
    pub drop_rate: f64,
    /// Deliver the event twice, same body and signature.
    pub duplicate_rate: f64,
    /// Send each batch of waiting events newest first.
    pub reorder: bool,
    /// Hold events this many real milliseconds before the first try.
    pub delay_ms: u64,
}

impl PushFaults {
    /// Every rate must be a probability.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("drop_rate", self.drop_rate),
            ("duplicate_rate", self.duplicate_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        Ok(())
    }
}

/// Delivery counters, as `GET /_sandbox/stats` reports them under `push`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushStats {
    /// Events generated for subscriptions.
    pub events: u64,
    /// POSTs sent, retries and duplicates included.
    pub deliveries: u64,
    /// Deliveries answered 2xx.
    pub accepted: u64,
    /// Deliveries answered with anything else.
    pub refused: u64,
    /// Deliveries that got no answer (connection refused, timeout).
    pub failed: u64,
    /// Tries after the first.
    pub retries: u64,
    /// Events dropped by the switch.
    pub dropped: u64,
    /// Events sent twice by the switch.
    pub duplicated: u64,
    /// Subscriptions disabled after their deliveries kept failing (or by the control switch).
    pub disabled: u64,
    /// Of `events`, those generated for transport changes (`UPDATE_TRANSPORT_EVENT`).
    pub transport_updates: u64,
}

#[derive(Debug, Default)]
struct Counters {
    events: AtomicU64,
    deliveries: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    disabled: AtomicU64,
    transport_updates: AtomicU64,
}

impl Counters {
    fn all(&self) -> [&AtomicU64; 10] {
        [
            &self.events,
            &self.deliveries,
            &self.accepted,
            &self.refused,
            &self.failed,
            &self.retries,
            &self.dropped,
            &self.duplicated,
            &self.disabled,
            &self.transport_updates,
        ]
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A subscription's request body, as bol defines it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    url: String,
    #[serde(default)]
    subscription_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
}

impl Request {
    fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        if self.resources.is_empty() {
            v.push(Violation {
                name: "resources",
                reason: "must not be empty".into(),
            });
        }
        if let Some(r) = self
            .resources
            .iter()
            .find(|r| !RESOURCES.contains(&r.as_str()))
        {
            v.push(Violation {
                name: "resources",
                reason: format!("Request contains invalid value(s): '{r}'."),
            });
        }
        if !TYPES.contains(&self.subscription_type.as_str()) {
            v.push(Violation {
                name: "subscriptionType",
                reason: format!(
                    "Request contains invalid value(s): '{}', allowed values: WEBHOOK, GCP_PUBSUB, AWS_SQS.",
                    self.subscription_type
                ),
            });
        }
        let web = self.url.starts_with("https://") || self.url.starts_with("http://");
        if self.url.is_empty() || (self.subscription_type == "WEBHOOK" && !web) {
            v.push(Violation {
                name: "url",
                reason: "must be an http(s) URL".into(),
            });
        }
        v
    }
}

#[derive(Clone, Debug)]
struct Subscription {
    account_no: usize,
    request: Request,
}

impl Subscription {
    fn enabled(&self) -> bool {
        self.request.enabled.unwrap_or(true)
    }

    fn wants_shipments(&self) -> bool {
        self.enabled()
            && self.request.subscription_type == "WEBHOOK"
            && self.request.resources.iter().any(|r| r == "SHIPMENT")
    }

    fn json(&self, id: u64) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.request).unwrap_or_default();
        v["id"] = id.to_string().into();
        v["enabled"] = self.enabled().into();
        v
    }
}

#[derive(Clone, Debug)]
enum Action {
    Create(Request),
    Update(u64, Request),
    Delete(u64),
}

#[derive(Clone, Debug)]
struct Process {
    account_no: usize,
    action: Action,
    created: i64,
    due: Duration,
    /// Set once settled: the entity id, or the error.
    outcome: Option<Result<u64, String>>,
}

impl Process {
    fn event_type(&self) -> &'static str {
        match self.action {
            Action::Create(_) => "CREATE_SUBSCRIPTION",
            Action::Update(..) => "UPDATE_SUBSCRIPTION",
            Action::Delete(_) => "DELETE_SUBSCRIPTION",
        }
    }

    fn json(&self, id: u64) -> serde_json::Value {
        let (status, entity, error) = match &self.outcome {
            None => ("PENDING", None, None),
            Some(Ok(entity)) => ("SUCCESS", Some(entity.to_string()), None),
            Some(Err(e)) => ("FAILURE", None, Some(e.clone())),
        };
        let mut v = serde_json::json!({
            "processStatusId": id.to_string(),
            "eventType": self.event_type(),
            "description": format!("Processing {} for a push notification subscription.", self.event_type()),
            "status": status,
            "createTimestamp": clock::date_time(self.created),
            "links": [{"rel": "self", "href": format!("/shared/process-status/{id}"), "method": "GET"}],
        });
        if let Some(entity) = entity {
            v["entityId"] = entity.into();
        }
        if let Some(error) = error {
            v["errorMessage"] = error.into();
        }
        v
    }
}

struct SigningKey {
    id: u64,
    private: RsaPrivateKey,
    public: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn generate(id: u64) -> SigningKey {
    let private = RsaPrivateKey::new(&mut rand_core::OsRng, KEY_BITS)
        .expect("the OS random source works and 2048 bits is a valid size");
    let der = private
        .to_public_key()
        .to_public_key_der()
        .expect("an RSA public key always encodes");
    SigningKey {
        id,
        private,
        public: STANDARD.encode(der.as_bytes()),
    }
}

#[derive(Debug, Default)]
struct Book {
    next_id: u64,
    subscriptions: BTreeMap<u64, Subscription>,
    processes: BTreeMap<u64, Process>,
}

impl Book {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Applies every process due by `now`, oldest first.
    fn settle(&mut self, now: Duration) {
        let due: Vec<u64> = self
            .processes
            .iter()
            .filter(|(_, p)| p.outcome.is_none() && p.due <= now)
            .map(|(id, _)| *id)
            .collect();
        for pid in due {
            let Some(p) = self.processes.get(&pid).cloned() else {
                continue;
            };
            let outcome = match p.action {
                Action::Create(request) => {
                    let id = self.id();
                    self.subscriptions.insert(
                        id,
                        Subscription {
                            account_no: p.account_no,
                            request,
                        },
                    );
                    Ok(id)
                }
                Action::Update(id, request) => match self.subscriptions.get_mut(&id) {
                    Some(s) if s.account_no == p.account_no => {
                        s.request = request;
                        Ok(id)
                    }
                    _ => Err(format!("Subscription with id '{id}' was not found.")),
                },
                Action::Delete(id) => match self.subscriptions.get(&id) {
                    Some(s) if s.account_no == p.account_no => {
                        self.subscriptions.remove(&id);
                        Ok(id)
                    }
                    _ => Err(format!("Subscription with id '{id}' was not found.")),
                },
            };
            if let Some(p) = self.processes.get_mut(&pid) {
                p.outcome = Some(outcome);
            }
        }
    }
}

/// One notification to one subscription.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    subscription: u64,
    body: Arc<[u8]>,
}

/// The push side of the sandbox's state.
#[derive(Debug)]
pub(crate) struct Push {
    book: Mutex<Book>,
    keys: Mutex<VecDeque<Arc<SigningKey>>>,
    faults: Mutex<PushFaults>,
    /// Whether transport changes are pushed; see [`transport`].
    transport_updates: AtomicBool,
    counters: Counters,
    outbox: mpsc::UnboundedSender<Event>,
}

impl Push {
    /// The state and the receiving end of its outbox, for [`run`].
    pub(crate) fn new() -> (Push, mpsc::UnboundedReceiver<Event>) {
        let (outbox, inbox) = mpsc::unbounded_channel();
        let push = Push {
            book: Mutex::new(Book::default()),
            keys: Mutex::new(VecDeque::new()),
            faults: Mutex::new(PushFaults::default()),
            transport_updates: AtomicBool::new(true),
            counters: Counters::default(),
            outbox,
        };
        (push, inbox)
    }

    pub(crate) fn stats(&self) -> PushStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PushStats {
            events: get(&c.events),
            deliveries: get(&c.deliveries),
            accepted: get(&c.accepted),
            refused: get(&c.refused),
            failed: get(&c.failed),
            retries: get(&c.retries),
            dropped: get(&c.dropped),
            duplicated: get(&c.duplicated),
            disabled: get(&c.disabled),
            transport_updates: get(&c.transport_updates),
        }
    }

    pub(crate) fn reset_stats(&self) {
        self.counters
            .all()
            .into_iter()
            .for_each(|c| c.store(0, Ordering::Relaxed));
    }

    pub(crate) fn faults(&self) -> PushFaults {
        lock(&self.faults).clone()
    }

    pub(crate) fn set_faults(&self, faults: PushFaults) {
        *lock(&self.faults) = faults;
    }

    pub(crate) fn transport_updates(&self) -> bool {
        self.transport_updates.load(Ordering::Relaxed)
    }

    pub(crate) fn set_transport_updates(&self, enabled: bool) {
        self.transport_updates.store(enabled, Ordering::Relaxed);
    }

    /// Disables every subscription, as bol does after failed deliveries.
    pub(crate) fn disable_all(&self) {
        let mut book = lock(&self.book);
        for s in book.subscriptions.values_mut() {
            if s.enabled() {
                s.request.enabled = Some(false);
                bump(&self.counters.disabled);
            }
        }
    }

    /// Makes a new key pair, signs with it from now on and publishes it beside the previous one.
    pub(crate) async fn rotate_keys(&self) {
        let id = lock(&self.keys).back().map_or(1, |k| k.id + 1);
        let key = Arc::new(
            tokio::task::spawn_blocking(move || generate(id))
                .await
                .expect("key generation does not panic"),
        );
        let mut keys = lock(&self.keys);
        if keys.back().is_none_or(|k| k.id < key.id) {
            keys.push_back(key);
        }
        while keys.len() > LIVE_KEYS {
            keys.pop_front();
        }
    }

    /// The key to sign with, made on first use.
    async fn signing_key(&self) -> Arc<SigningKey> {
        if let Some(key) = lock(&self.keys).back().cloned() {
            return key;
        }
        self.rotate_keys().await;
        lock(&self.keys)
            .back()
            .cloned()
            .expect("rotate_keys leaves a key")
    }

    /// Queues a notification to each enabled SHIPMENT webhook of the account for each of the
    /// new shipments.
    pub(crate) fn shipments_added(&self, shared: &Shared, keys: &[Key]) {
        let Some(first) = keys.first() else {
            return;
        };
        let targets = self
            .shipment_webhooks(shared, Some(first.account))
            .remove(&first.account)
            .unwrap_or_default();
        self.queue(shared, &targets, keys, "CREATE_SHIPMENT");
    }

    /// The enabled SHIPMENT webhooks of each account that has any (of `only`, if given),
    /// settled first so that a subscription made a second ago counts.
    fn shipment_webhooks(&self, shared: &Shared, only: Option<usize>) -> BTreeMap<usize, Vec<u64>> {
        let mut book = lock(&self.book);
        book.settle(shared.clock.elapsed());
        let mut by_account: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for (id, s) in &book.subscriptions {
            if s.wants_shipments() && only.is_none_or(|a| a == s.account_no) {
                by_account.entry(s.account_no).or_default().push(*id);
            }
        }
        by_account
    }

    /// Queues one `event_type` notification per shipment of one account to each of `targets`.
    fn queue(&self, shared: &Shared, targets: &[u64], keys: &[Key], event_type: &str) {
        if targets.is_empty() {
            return;
        }
        let timestamp = clock::date_time(shared.clock.market_now());
        for key in keys {
            let body = serde_json::json!({
                "retailerId": 1_000_000 + key.account,
                "timestamp": timestamp,
                "event": {
                    "resource": "SHIPMENT",
                    "type": event_type,
                    "resourceId": shared.codecs.shipment.encode(*key),
                },
            });
            let body: Arc<[u8]> = serde_json::to_vec(&body).unwrap_or_default().into();
            for &subscription in targets {
                bump(&self.counters.events);
                let _ = self.outbox.send(Event {
                    subscription,
                    body: body.clone(),
                });
            }
        }
    }

    /// Where an event goes now: the URL of its subscription while it is there and enabled.
    fn target(&self, subscription: u64) -> Option<String> {
        lock(&self.book)
            .subscriptions
            .get(&subscription)
            .filter(|s| s.enabled())
            .map(|s| s.request.url.clone())
    }

    fn disable(&self, subscription: u64) {
        if let Some(s) = lock(&self.book).subscriptions.get_mut(&subscription)
            && s.enabled()
        {
            s.request.enabled = Some(false);
            bump(&self.counters.disabled);
        }
    }
}

/// Sends queued events until `stop` is dropped: first tries in order (or reversed by the
/// switch), retries on their own timers.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut inbox: mpsc::UnboundedReceiver<Event>,
    mut stop: watch::Receiver<()>,
) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .user_agent("bol-sandbox-push")
        .build()
    else {
        tracing::error!("push delivery client could not be built; no deliveries");
        return;
    };
    let mut dice = Rng::new(shared.seed ^ 0x9054_7e11);
    loop {
        let first = tokio::select! {
            event = inbox.recv() => match event {
                Some(e) => e,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let faults = shared.push.faults();
        if faults.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
        }
        let mut batch = vec![first];
        while let Ok(e) = inbox.try_recv() {
            batch.push(e);
        }
        if faults.reorder {
            batch.reverse();
        }
        for event in batch {
            let counters = &shared.push.counters;
            if faults.drop_rate > 0.0 && dice.chance(faults.drop_rate) {
                bump(&counters.dropped);
                continue;
            }
            let copies = if faults.duplicate_rate > 0.0 && dice.chance(faults.duplicate_rate) {
                bump(&counters.duplicated);
                2
            } else {
                1
            };
            for _ in 0..copies {
                if !deliver(&shared, &http, &event).await {
                    tokio::spawn(retry(shared.clone(), http.clone(), event.clone()));
                }
            }
        }
    }
}

/// Tries again every marketplace minute; after the last failed try, disables the subscription.
async fn retry(shared: Arc<Shared>, http: reqwest::Client, event: Event) {
    for _ in 1..TRIES {
        tokio::time::sleep(shared.clock.real(RETRY_EVERY)).await;
        bump(&shared.push.counters.retries);
        if deliver(&shared, &http, &event).await {
            return;
        }
        if shared.push.target(event.subscription).is_none() {
            return;
        }
    }
    shared.push.disable(event.subscription);
}

/// One signed POST; true when answered 2xx, and also when there is nothing left to deliver to.
async fn deliver(shared: &Shared, http: &reqwest::Client, event: &Event) -> bool {
    let Some(url) = shared.push.target(event.subscription) else {
        return true;
    };
    let key = shared.push.signing_key().await;
    let digest = Sha256::digest(&event.body);
    let signature = match key.private.sign(Pkcs1v15Sign::new::<Sha256>(), &digest) {
        Ok(s) => STANDARD.encode(s),
        Err(e) => {
            tracing::error!(error = %e, "signing failed");
            return false;
        }
    };
    let counters = &shared.push.counters;
    bump(&counters.deliveries);
    let answer = http
        .post(&url)
        .header("content-type", "application/json")
        .header(
            "signature",
            format!(
                r#"keyId={}, algorithm="rsa-sha256", signature={signature}"#,
                key.id
            ),
        )
        .body(event.body.to_vec())
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => {
            bump(&counters.accepted);
            true
        }
        Ok(_) => {
            bump(&counters.refused);
            false
        }
        Err(_) => {
            bump(&counters.failed);
            false
        }
    }
}

fn not_found(call: &Call<'_>, what: &str, id: &str, instance: &str) -> Response {
    let detail = format!("{what} with id '{id}' was not found.");
    call.problem(StatusCode::NOT_FOUND, "Not Found", &detail, instance, &[])
}

fn json_answer(call: &mut Call<'_>, status: StatusCode, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    if status == StatusCode::OK {
        return call.ok(http::V10_UTF8, bytes).0;
    }
    call.other(http::response(status, http::V10_UTF8, bytes))
}

/// Admits a call of `group`, checking the token and the `Accept` header.
async fn admit<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    path: &str,
    group: Group,
) -> Result<(Call<'a>, String), Response> {
    let arrival = gateway::arrive(shared).await;
    let instance = http::instance(headers, path);
    let call = gateway::bearer(shared, arrival, headers, group, &instance)?;
    if !http::accepts_v10(headers) {
        let detail = format!(
            "The requested media type is not supported. Supported: {}.",
            http::V10
        );
        return Err(call.problem(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable",
            &detail,
            &instance,
            &[],
        ));
    }
    Ok((call, instance))
}

/// Starts a process and answers 202 with its status.
fn start(call: &mut Call<'_>, action: Action) -> Response {
    let shared = call.shared;
    let process = Process {
        account_no: call.account_no,
        action,
        created: shared.clock.market_now(),
        due: shared.clock.elapsed() + shared.clock.real(PROCESS_TAKES),
        outcome: None,
    };
    let body = {
        let mut book = lock(&shared.push.book);
        let id = book.id();
        let body = process.json(id);
        book.processes.insert(id, process);
        body
    };
    json_answer(call, StatusCode::ACCEPTED, &body)
}

#[expect(
    clippy::result_large_err,
    reason = "the error is the finished answer, built once per request"
)]
fn parse_request(call: &Call<'_>, body: &[u8], instance: &str) -> Result<Request, Response> {
    let title =
        "Error validating request. Consult the bol.com API documentation for more information.";
    let request: Request = serde_json::from_slice(body).map_err(|_| {
        call.problem(
            StatusCode::BAD_REQUEST,
            title,
            "Bad request",
            instance,
            &[Violation {
                name: "body",
                reason: "must be a subscription request".into(),
            }],
        )
    })?;
    let violations = request.violations();
    if violations.is_empty() {
        Ok(request)
    } else {
        Err(call.problem(
            StatusCode::BAD_REQUEST,
            title,
            "Bad request",
            instance,
            &violations,
        ))
    }
}

/// The subscription `id` of the call's account, settled.
fn owned(call: &Call<'_>, id: &str) -> Option<(u64, Subscription)> {
    let id: u64 = id.parse().ok()?;
    let mut book = lock(&call.shared.push.book);
    book.settle(call.shared.clock.elapsed());
    book.subscriptions
        .get(&id)
        .filter(|s| s.account_no == call.account_no)
        .map(|s| (id, s.clone()))
}

pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut call, instance) =
        match admit(&shared, &headers, uri.path(), Group::Subscriptions).await {
            Ok(c) => c,
            Err(r) => return r,
        };
    match parse_request(&call, &body, &instance) {
        Ok(request) => start(&mut call, Action::Create(request)),
        Err(r) => r,
    }
}

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (mut call, _) = match admit(&shared, &headers, uri.path(), Group::Subscriptions).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let subscriptions: Vec<serde_json::Value> = {
        let mut book = lock(&shared.push.book);
        book.settle(shared.clock.elapsed());
        book.subscriptions
            .iter()
            .filter(|(_, s)| s.account_no == call.account_no)
            .map(|(id, s)| s.json(*id))
            .collect()
    };
    json_answer(
        &mut call,
        StatusCode::OK,
        &serde_json::json!({ "subscriptions": subscriptions }),
    )
}

pub(crate) async fn get_one(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (mut call, instance) =
        match admit(&shared, &headers, uri.path(), Group::Subscriptions).await {
            Ok(c) => c,
            Err(r) => return r,
        };
    match owned(&call, &id) {
        Some((id, s)) => json_answer(&mut call, StatusCode::OK, &s.json(id)),
        None => not_found(&call, "Subscription", &id, &instance),
    }
}

pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut call, instance) =
        match admit(&shared, &headers, uri.path(), Group::Subscriptions).await {
            Ok(c) => c,
            Err(r) => return r,
        };
    let Some((id, _)) = owned(&call, &id) else {
        return not_found(&call, "Subscription", &id, &instance);
    };
    match parse_request(&call, &body, &instance) {
        Ok(request) => start(&mut call, Action::Update(id, request)),
        Err(r) => r,
    }
}

pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (mut call, instance) =
        match admit(&shared, &headers, uri.path(), Group::Subscriptions).await {
            Ok(c) => c,
            Err(r) => return r,
        };
    match owned(&call, &id) {
        Some((id, _)) => start(&mut call, Action::Delete(id)),
        None => not_found(&call, "Subscription", &id, &instance),
    }
}

pub(crate) async fn signature_keys(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (mut call, _) = match admit(&shared, &headers, uri.path(), Group::SignatureKeys).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    shared.push.signing_key().await;
    let keys: Vec<serde_json::Value> = lock(&shared.push.keys)
        .iter()
        .map(|k| serde_json::json!({"id": k.id.to_string(), "type": "RSA", "publicKey": k.public}))
        .collect();
    json_answer(
        &mut call,
        StatusCode::OK,
        &serde_json::json!({ "signatureKeys": keys }),
    )
}

pub(crate) async fn process_status(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (mut call, instance) =
        match admit(&shared, &headers, uri.path(), Group::ProcessStatus).await {
            Ok(c) => c,
            Err(r) => return r,
        };
    let found = id.parse::<u64>().ok().and_then(|pid| {
        let mut book = lock(&shared.push.book);
        book.settle(shared.clock.elapsed());
        book.processes
            .get(&pid)
            .filter(|p| p.account_no == call.account_no)
            .map(|p| p.json(pid))
    });
    match found {
        Some(body) => json_answer(&mut call, StatusCode::OK, &body),
        None => not_found(&call, "Process status", &id, &instance),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(enabled: Option<bool>) -> Request {
        Request {
            resources: vec!["SHIPMENT".into()],
            url: "https://example.test/hook".into(),
            subscription_type: "WEBHOOK".into(),
            enabled,
            identity: None,
        }
    }

    fn process(account_no: usize, action: Action, due: u64) -> Process {
        Process {
            account_no,
            action,
            created: 0,
            due: Duration::from_secs(due),
            outcome: None,
        }
    }

    #[test]
    fn processes_settle_when_due_and_only_for_their_account() {
        let mut book = Book::default();
        let pid = book.id();
        book.processes
            .insert(pid, process(0, Action::Create(request(None)), 5));
        book.settle(Duration::from_secs(4));
        assert!(book.subscriptions.is_empty());
        assert_eq!(book.processes[&pid].json(pid)["status"], "PENDING");
        book.settle(Duration::from_secs(5));
        let status = book.processes[&pid].json(pid);
        assert_eq!(status["status"], "SUCCESS");
        let sid: u64 = status["entityId"].as_str().unwrap().parse().unwrap();
        assert!(book.subscriptions[&sid].wants_shipments());

        let other = book.id();
        book.processes
            .insert(other, process(1, Action::Delete(sid), 0));
        book.settle(Duration::from_secs(6));
        assert_eq!(book.processes[&other].json(other)["status"], "FAILURE");
        assert!(book.subscriptions.contains_key(&sid));

        let disable = book.id();
        book.processes.insert(
            disable,
            process(0, Action::Update(sid, request(Some(false))), 0),
        );
        book.settle(Duration::from_secs(6));
        assert!(!book.subscriptions[&sid].wants_shipments());
    }

    #[test]
    fn requests_are_checked_against_bols_enums() {
        assert!(request(None).violations().is_empty());
        let mut bad = request(None);
        bad.resources = vec!["SHIPMENTS".into()];
        bad.subscription_type = "EMAIL".into();
        bad.url = "ftp://x".into();
        let names: Vec<_> = bad.violations().iter().map(|v| v.name).collect();
        assert_eq!(names, ["resources", "subscriptionType"]);
        bad.subscription_type = "WEBHOOK".into();
        let names: Vec<_> = bad.violations().iter().map(|v| v.name).collect();
        assert_eq!(names, ["resources", "url"]);
    }
}
