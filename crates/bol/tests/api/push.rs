//! Push notifications end to end: the client manages a subscription at the sandbox, the
//! sandbox delivers signed notifications to a real HTTP receiver, and the verifier checks them
//! against the keys the client fetched.

use crate::helpers::{client, creds, no_limits, start};
use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use bol::{
    Client, Credentials, Error, ProcessState, PublicKeys, SecretString, SignatureError,
    SubscriptionRequest, signature,
};
use bol_sandbox::{PushFaults, Sandbox, SandboxConfig};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};
use tokio::sync::mpsc;

/// One notification as the receiver got it.
struct Delivery {
    signature: Option<String>,
    body: Bytes,
}

/// An HTTP receiver that hands every POST to the test and answers with `status`.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

#[derive(Clone)]
struct Inbox {
    status: Arc<AtomicU16>,
    tx: mpsc::UnboundedSender<Delivery>,
}

async fn receive(
    State(inbox): State<Inbox>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let signature = headers
        .get("signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = inbox.tx.send(Delivery { signature, body });
    axum::http::StatusCode::from_u16(inbox.status.load(Ordering::Relaxed))
        .unwrap_or(axum::http::StatusCode::OK)
}

impl Receiver {
    async fn start() -> Receiver {
        let status = Arc::new(AtomicU16::new(200));
        let (tx, deliveries) = mpsc::unbounded_channel();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(Inbox {
                status: status.clone(),
                tx,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url,
            status,
            deliveries,
        }
    }

    async fn next(&mut self) -> Delivery {
        tokio::time::timeout(Duration::from_secs(10), self.deliveries.recv())
            .await
            .expect("a delivery within 10 s")
            .expect("the receiver runs")
    }

    /// Waits `quiet` and asserts nothing more arrived.
    async fn assert_quiet(&mut self, quiet: Duration) {
        tokio::time::sleep(quiet).await;
        assert!(self.deliveries.try_recv().is_err(), "unexpected delivery");
    }
}

/// A sandbox whose marketplace minute lasts 0.1 s: retries and processes settle quickly.
async fn sandbox() -> Sandbox {
    start(SandboxConfig {
        limits: bol_sandbox::Limits::OFF,
        time_scale: 600.0,
        ..SandboxConfig::default().with_accounts(2, 3, 0)
    })
    .await
}

fn creds_of(n: u32) -> Credentials {
    Credentials {
        client_id: format!("sandbox-{n}"),
        client_secret: SecretString::from(format!("secret-{n}")),
    }
}

/// Creates a subscription and follows its process until the id exists.
async fn subscribe(client: &Client, url: &str) -> String {
    let creds = creds();
    let started = client
        .create_subscription(&creds, &SubscriptionRequest::shipment_webhook(url))
        .await
        .unwrap()
        .value;
    settled(
        client,
        &creds,
        started.process_status_id.as_deref().unwrap(),
    )
    .await
}

async fn settled(client: &Client, creds: &Credentials, process: &str) -> String {
    for _ in 0..100 {
        let status = client.process_status(creds, process).await.unwrap().value;
        match status.status {
            ProcessState::Success => return status.entity_id.expect("an entity id on success"),
            ProcessState::Pending => tokio::time::sleep(Duration::from_millis(5)).await,
            other => panic!("process ended {other:?}: {:?}", status.error_message),
        }
    }
    panic!("the process never settled");
}

fn verify(keys: &PublicKeys, delivery: &Delivery) -> Result<(), SignatureError> {
    let header = signature::find_header(|name| {
        (name == "signature")
            .then_some(delivery.signature.as_deref())
            .flatten()
    })?;
    keys.verify(&header, &delivery.body)
}

#[tokio::test]
async fn a_new_shipment_is_pushed_signed_and_names_a_shipment_whose_detail_exists() {
    let sandbox = sandbox().await;
    let client = client(&sandbox, no_limits());
    let mut receiver = Receiver::start().await;
    let id = subscribe(&client, &receiver.url).await;
    let subscription = client.subscription(&creds(), &id).await.unwrap().value;
    assert!(subscription.is_enabled());
    assert_eq!(subscription.resources, ["SHIPMENT"]);

    sandbox.add_shipments("sandbox-1", 1, 0);
    let delivery = receiver.next().await;
    let keys = PublicKeys::from_keys(&client.signature_keys(&creds()).await.unwrap().value);
    assert_eq!(verify(&keys, &delivery), Ok(()));
    let event: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(event["event"]["resource"], "SHIPMENT");
    let shipment_id = event["event"]["resourceId"].as_str().unwrap();
    client.shipment(&creds(), shipment_id).await.unwrap();

    // Another account's shipments are not this subscription's business.
    sandbox.add_shipments("sandbox-2", 1, 0);
    receiver.assert_quiet(Duration::from_millis(200)).await;
    let stats = sandbox.stats().push;
    assert_eq!((stats.events, stats.deliveries, stats.accepted), (1, 1, 1));
    let account = sandbox.stats();
    let account = account.account("sandbox-1").unwrap();
    assert!(account.subscriptions.calls >= 2 && account.process_status.calls >= 1);
}

#[tokio::test]
async fn a_rotated_key_is_unknown_until_the_keys_are_fetched_again() {
    let sandbox = sandbox().await;
    let client = client(&sandbox, no_limits());
    let mut receiver = Receiver::start().await;
    subscribe(&client, &receiver.url).await;
    let before = PublicKeys::from_keys(&client.signature_keys(&creds()).await.unwrap().value);

    sandbox.rotate_push_keys().await;
    sandbox.add_shipments("sandbox-1", 1, 0);
    let delivery = receiver.next().await;
    assert!(matches!(
        verify(&before, &delivery),
        Err(SignatureError::UnknownKey(_))
    ));
    let after = client.signature_keys(&creds()).await.unwrap().value;
    assert_eq!(after.len(), 2, "the previous key stays published");
    assert_eq!(verify(&PublicKeys::from_keys(&after), &delivery), Ok(()));

    // A body changed on the way no longer matches its signature.
    let mut forged = delivery;
    forged.body = Bytes::from(String::from_utf8_lossy(&forged.body).replace('1', "2"));
    assert_eq!(
        verify(&PublicKeys::from_keys(&after), &forged),
        Err(SignatureError::Forged)
    );
}

#[tokio::test]
async fn ten_failed_tries_disable_the_subscription_until_a_put_enables_it() {
    let sandbox = sandbox().await;
    let client = client(&sandbox, no_limits());
    let mut receiver = Receiver::start().await;
    let id = subscribe(&client, &receiver.url).await;
    receiver.status.store(500, Ordering::Relaxed);

    sandbox.add_shipments("sandbox-1", 1, 0);
    for _ in 0..10 {
        receiver.next().await;
    }
    // Give the last answer time to be counted, then see it disabled.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !client
            .subscription(&creds(), &id)
            .await
            .unwrap()
            .value
            .is_enabled()
    );
    let stats = sandbox.stats().push;
    assert_eq!(
        (
            stats.deliveries,
            stats.refused,
            stats.retries,
            stats.disabled
        ),
        (10, 10, 9, 1)
    );

    // Disabled: new shipments are not pushed.
    receiver.status.store(200, Ordering::Relaxed);
    sandbox.add_shipments("sandbox-1", 1, 0);
    receiver.assert_quiet(Duration::from_millis(200)).await;

    let process = client
        .update_subscription(
            &creds(),
            &id,
            &SubscriptionRequest::shipment_webhook(&receiver.url),
        )
        .await
        .unwrap()
        .value;
    settled(
        &client,
        &creds(),
        process.process_status_id.as_deref().unwrap(),
    )
    .await;
    assert!(
        client
            .subscription(&creds(), &id)
            .await
            .unwrap()
            .value
            .is_enabled()
    );
    sandbox.add_shipments("sandbox-1", 1, 0);
    receiver.next().await;
}

#[tokio::test]
async fn switches_drop_duplicate_and_reorder_deliveries() {
    let sandbox = sandbox().await;
    let client = client(&sandbox, no_limits());
    let mut receiver = Receiver::start().await;
    subscribe(&client, &receiver.url).await;

    sandbox.set_push_faults(PushFaults {
        duplicate_rate: 1.0,
        ..PushFaults::default()
    });
    sandbox.add_shipments("sandbox-1", 1, 0);
    let (a, b) = (receiver.next().await, receiver.next().await);
    assert_eq!(a.body, b.body);

    sandbox.set_push_faults(PushFaults {
        drop_rate: 1.0,
        ..PushFaults::default()
    });
    sandbox.add_shipments("sandbox-1", 2, 0);
    receiver.assert_quiet(Duration::from_millis(200)).await;

    sandbox.set_push_faults(PushFaults {
        reorder: true,
        delay_ms: 100,
        ..PushFaults::default()
    });
    sandbox.add_shipments("sandbox-1", 1, 0);
    sandbox.add_shipments("sandbox-1", 1, 0);
    let (first, second) = (receiver.next().await, receiver.next().await);
    let id = |d: &Delivery| {
        let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        v["event"]["resourceId"].as_str().unwrap().to_owned()
    };
    let newest = client
        .list_shipments(&creds(), bol::FulfilmentMethod::Fbr, 1)
        .await
        .unwrap()
        .value
        .shipments[0]
        .shipment_id
        .clone();
    assert_eq!(id(&first), newest, "the newer shipment is delivered first");
    assert_ne!(id(&second), newest);

    let stats = sandbox.stats().push;
    assert_eq!((stats.duplicated, stats.dropped), (1, 2));
}

#[tokio::test]
async fn another_account_cannot_see_or_delete_a_subscription() {
    let sandbox = sandbox().await;
    let client = client(&sandbox, no_limits());
    let receiver = Receiver::start().await;
    let id = subscribe(&client, &receiver.url).await;

    let other = creds_of(2);
    assert!(matches!(
        client.subscription(&other, &id).await.unwrap_err().error,
        Error::NotFound(_)
    ));
    assert!(matches!(
        client
            .delete_subscription(&other, &id)
            .await
            .unwrap_err()
            .error,
        Error::NotFound(_)
    ));
    assert!(client.subscriptions(&other).await.unwrap().value.is_empty());

    let process = client
        .delete_subscription(&creds(), &id)
        .await
        .unwrap()
        .value;
    assert_eq!(process.status, ProcessState::Pending);
    settled(
        &client,
        &creds(),
        process.process_status_id.as_deref().unwrap(),
    )
    .await;
    assert!(
        client
            .subscriptions(&creds())
            .await
            .unwrap()
            .value
            .is_empty()
    );
}

#[tokio::test]
async fn a_bad_subscription_request_is_refused_with_its_fields_named() {
    let sandbox = sandbox().await;
    let client = client(&sandbox, no_limits());
    let mut request = SubscriptionRequest::shipment_webhook("ftp://nowhere");
    request.resources = vec!["SHIPMENTS".into()];
    let failure = client
        .create_subscription(&creds(), &request)
        .await
        .unwrap_err();
    match failure.error {
        Error::Rejected {
            status: 400,
            message,
        } => assert!(message.contains("Bad request"), "{message}"),
        other => panic!("{other:?}"),
    }
}
