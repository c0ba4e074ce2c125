//! The client's bound on requests in flight over all accounts: thousands of shops whose windows
//! open together must not open a connection per call of their burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bol::{Client, ClientConfig, Credentials, Error, RetryPolicy, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::no_limits;

/// Requests a server holds now, and the most it held at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// A server that hands out tokens at once and answers every other request 404 after `delay`,
/// counting the requests it holds.
async fn slow_server(delay: Duration) -> (String, Arc<InFlight>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let in_flight = Arc::new(InFlight::default());
    let counted = in_flight.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let in_flight = counted.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                loop {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let is_token = buffer[..n].starts_with(b"POST");
                    let held = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
                    in_flight.most.fetch_max(held, Ordering::SeqCst);
                    let answer: String = if is_token {
                        let body = r#"{"access_token":"t","token_type":"Bearer","expires_in":299}"#;
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        tokio::time::sleep(delay).await;
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".into()
                    };
                    in_flight.now.fetch_sub(1, Ordering::SeqCst);
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, in_flight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_never_exceed_max_connections_and_all_are_answered() {
    let (url, in_flight) = slow_server(Duration::from_millis(50)).await;
    let client = Client::new(ClientConfig {
        api_url: url.clone(),
        login_url: url,
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        limits: no_limits(),
        max_connections: 3,
        ..ClientConfig::default()
    })
    .unwrap();

    let calls: Vec<_> = (0..30)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let creds = Credentials {
                    client_id: format!("account-{}", n % 10),
                    client_secret: SecretString::from("secret".to_owned()),
                };
                client.shipment(&creds, &n.to_string()).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }

    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(failure) if matches!(failure.error, Error::NotFound(_)))),
        "every call reached the server and was answered"
    );
    let most = in_flight.most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} requests in flight with a bound of 3");
    assert_eq!(most, 3, "the calls ran side by side up to the bound");
}
