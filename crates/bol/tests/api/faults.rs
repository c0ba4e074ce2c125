//! Bad answers are data: 5xx, broken and cut-off bodies and dropped connections are retried.

use crate::helpers::*;
use bol::{Calls, FulfilmentMethod};
use bol_sandbox::Faults;

#[tokio::test]
async fn transient_faults_are_retried_until_everything_is_fetched() {
    let sandbox = unlimited_sandbox(120, 0).await;
    sandbox.set_faults(Faults {
        error_rate: 0.1,
        malformed_rate: 0.05,
        truncated_rate: 0.05,
        drop_rate: 0.05,
        latency_ms: 0,
    });
    let client = client(&sandbox, no_limits());
    let creds = creds();

    let (shipments, mut calls) = crawl(&client, &creds, FulfilmentMethod::Fbr).await;
    calls += details(&client, &creds, &shipments).await;

    assert_eq!(shipments.len(), 120);
    let (token, list, detail) = stats(&sandbox);
    let faults = token.faults + list.faults + detail.faults;
    assert!(faults > 0, "the faults happened");
    assert_eq!(u64::from(calls.retries), faults, "{calls:?}");
    assert_eq!(token.wasted + list.wasted + detail.wasted, 0);
    assert_eq!(u64::from(calls.detail), detail.calls);
}

#[tokio::test]
async fn a_server_that_keeps_failing_ends_in_a_transient_error() {
    let sandbox = unlimited_sandbox(1, 0).await;
    let client = client(&sandbox, no_limits());
    client.token(&creds()).await.unwrap();
    sandbox.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let failure = client
        .list_shipments(&creds(), FulfilmentMethod::Fbr, 1)
        .await
        .unwrap_err();
    assert!(failure.is_transient());
    assert!(matches!(failure.status(), Some(500..=599)), "{failure}");
    assert_eq!(
        failure.calls,
        Calls {
            list: 11,
            retries: 10,
            ..failure.calls
        }
    );
}
