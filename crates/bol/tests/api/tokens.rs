//! Tokens live as long as they are valid: reused, renewed shortly before expiry or after a 401.

use crate::helpers::*;
use bol::{Calls, Credentials, Error, FulfilmentMethod, SecretString};
use bol_sandbox::SandboxConfig;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_crawl_longer_than_the_token_lifetime_renews_without_waste() {
    // 299 marketplace seconds at scale 150: tokens live 2 real seconds.
    let sandbox = start(SandboxConfig {
        token_lifetime: 299,
        time_scale: 150.0,
        limits: bol_sandbox::Limits::OFF,
        ..SandboxConfig::default().with_accounts(1, 120, 0)
    })
    .await;
    let client = client(&sandbox, no_limits());
    let creds = creds();
    let (shipments, mut calls) = crawl(&client, &creds, FulfilmentMethod::Fbr).await;

    let started = Instant::now();
    let mut next = shipments.iter().cycle();
    while started.elapsed() < Duration::from_secs(6) {
        let id = &next.next().unwrap().shipment_id;
        calls += client.shipment(&creds, id).await.unwrap().calls;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (token, list, detail) = stats(&sandbox);
    assert!(calls.token_renewals >= 3, "{calls:?}");
    assert_eq!(u64::from(calls.token), token.calls);
    assert_eq!(calls.token, calls.token_renewals);
    assert_eq!(token.wasted, 0);
    assert_eq!(
        list.unauthorized + detail.unauthorized,
        0,
        "renewed before expiry"
    );
    assert_eq!(calls.unauthorized, 0);
}

#[tokio::test]
async fn concurrent_callers_share_one_token() {
    let sandbox = unlimited_sandbox(60, 0).await;
    let client = client(&sandbox, no_limits());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.token(&creds()).await.unwrap().calls })
        })
        .collect();
    let mut calls = Calls::default();
    for t in tasks {
        calls += t.await.unwrap();
    }
    assert_eq!(calls.token, 1);
    assert_eq!(stats(&sandbox).0.calls, 1);
}

#[tokio::test]
async fn a_revoked_token_is_renewed_once_and_the_call_goes_on() {
    let sandbox = unlimited_sandbox(10, 0).await;
    let client = client(&sandbox, no_limits());
    let creds = creds();
    let (shipments, _) = crawl(&client, &creds, FulfilmentMethod::Fbr).await;

    sandbox.revoke_tokens();
    let calls = details(&client, &creds, &shipments).await;

    assert_eq!(calls.unauthorized, 1);
    assert_eq!(calls.token, 1);
    assert_eq!(calls.detail, 11, "the refused call is made again, once");
    let (token, _, detail) = stats(&sandbox);
    assert_eq!((token.calls, token.wasted), (2, 0));
    assert_eq!((detail.unauthorized, detail.wasted), (1, 0));
}

#[tokio::test]
async fn bad_credentials_fail_at_once() {
    let sandbox = unlimited_sandbox(1, 0).await;
    let client = client(&sandbox, no_limits());
    let wrong = Credentials {
        client_secret: SecretString::from("not-the-secret"),
        ..creds()
    };
    let failure = client
        .list_shipments(&wrong, FulfilmentMethod::Fbr, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(failure.error, Error::InvalidCredentials),
        "{failure}"
    );
    assert_eq!(failure.status(), Some(401));
    assert!(!failure.is_transient());
    assert_eq!(
        (
            failure.calls.token,
            failure.calls.list,
            failure.calls.retries
        ),
        (1, 0, 0)
    );
    assert_eq!(stats(&sandbox).0.calls, 1);
}

#[tokio::test]
async fn a_stored_token_is_used_by_another_client() {
    let sandbox = unlimited_sandbox(1, 0).await;
    let [first, second] = clients_sharing_a_cache(&sandbox);
    assert_eq!(first.token(&creds()).await.unwrap().calls.token, 1);
    let answer = second
        .list_shipments(&creds(), FulfilmentMethod::Fbr, 1)
        .await
        .unwrap();
    assert_eq!(answer.calls.token, 0);
    assert_eq!(stats(&sandbox).0.calls, 1);
}

#[tokio::test]
async fn a_token_is_never_lent_to_the_same_client_id_with_another_secret() {
    let sandbox = unlimited_sandbox(3, 0).await;
    let [client, other_process] = clients_sharing_a_cache(&sandbox);
    let owner = client
        .list_shipments(&creds(), FulfilmentMethod::Fbr, 1)
        .await
        .unwrap();
    assert_eq!((owner.calls.token, owner.value.shipments.len()), (1, 3));
    let impostor = Credentials {
        client_id: creds().client_id,
        client_secret: SecretString::from("any-secret"),
    };
    for attacker in [&client, &other_process] {
        let failure = attacker
            .list_shipments(&impostor, FulfilmentMethod::Fbr, 1)
            .await
            .unwrap_err();
        assert!(
            matches!(failure.error, Error::InvalidCredentials),
            "{:?}",
            failure.error
        );
        assert_eq!((failure.calls.token, failure.calls.list), (1, 0));
    }
    let (token, list, _) = stats(&sandbox);
    assert_eq!(
        (token.calls, list.calls),
        (3, 1),
        "the owner's token served only the owner"
    );
    let again = client
        .list_shipments(&creds(), FulfilmentMethod::Fbr, 1)
        .await
        .unwrap();
    assert_eq!(
        again.calls.token, 0,
        "the impostor did not displace the owner's token"
    );
}

/// Two clients, as in two processes, that share one token cache.
fn clients_sharing_a_cache(sandbox: &bol_sandbox::Sandbox) -> [bol::Client; 2] {
    let cache = std::sync::Arc::new(bol::MemoryTokenCache::default());
    [(); 2].map(|()| {
        let config = bol::ClientConfig {
            api_url: sandbox.base_url(),
            login_url: sandbox.base_url(),
            limits: no_limits(),
            ..bol::ClientConfig::default()
        };
        bol::Client::with_token_cache(config, cache.clone()).unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_queued_for_a_connection_longer_than_its_token_lives_sends_a_fresh_one() {
    // One-second tokens, and thirty calls through one connection, 40 ms each: the last ones
    // wait for the connection longer than the token they would have taken at first lives.
    let sandbox = start(SandboxConfig {
        time_scale: 60.0,
        token_lifetime: 60,
        limits: bol_sandbox::Limits::OFF,
        ..SandboxConfig::default().with_accounts(1, 30, 0)
    })
    .await;
    let client = bol::Client::new(bol::ClientConfig {
        api_url: sandbox.base_url(),
        login_url: sandbox.base_url(),
        limits: no_limits(),
        max_connections: 1,
        ..bol::ClientConfig::default()
    })
    .unwrap();
    let creds = creds();
    let (shipments, _) = crawl(&client, &creds, FulfilmentMethod::Fbr).await;
    sandbox.set_faults(bol_sandbox::Faults {
        latency_ms: 40,
        ..bol_sandbox::Faults::default()
    });

    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for s in shipments {
        let (client, creds) = (client.clone(), creds.clone());
        set.spawn(async move { client.shipment(&creds, &s.shipment_id).await.unwrap().calls });
    }
    let mut calls = Calls::default();
    while let Some(answer) = set.join_next().await {
        calls += answer.unwrap();
    }

    assert!(started.elapsed() > Duration::from_millis(1200));
    assert_eq!(calls.detail, 30);
    let (token, _, detail) = stats(&sandbox);
    assert_eq!(
        (detail.unauthorized, calls.unauthorized),
        (0, 0),
        "no expired token was sent"
    );
    assert!(token.calls >= 2, "the token was renewed: {}", token.calls);
    assert_eq!(token.wasted, 0, "and not early");
}
