//! No 429s in steady state: the client waits for the reset, and its budget survives a restart.

use crate::helpers::*;
use bol::{FulfilmentMethod, GroupLimit, Limits};
use bol_sandbox::SandboxConfig;
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

fn scaled(list: u32, detail: u32, window: Duration) -> Limits {
    Limits {
        token: None,
        list: Some(GroupLimit {
            calls: list,
            window,
        }),
        detail: Some(GroupLimit {
            calls: detail,
            window,
        }),
    }
}

#[tokio::test]
async fn a_crawl_under_tight_limits_waits_instead_of_hitting_429s() {
    // Windows of one second: 10 details each, so 60 details need six windows.
    let sandbox = start(SandboxConfig {
        time_scale: 60.0,
        limits: bol_sandbox::Limits {
            list: 5,
            detail: 10,
            token: 5,
        },
        ..SandboxConfig::default().with_accounts(1, 60, 0)
    })
    .await;
    let started = Instant::now();
    let client = client(&sandbox, scaled(5, 10, Duration::from_secs(1)));
    let creds = creds();
    let (shipments, _) = crawl(&client, &creds, FulfilmentMethod::Fbr).await;

    // Four workers share the account's budget.
    let queue = Arc::new(Mutex::new(shipments));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, creds, queue) = (client.clone(), creds.clone(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let Some(next) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    client.shipment(&creds, &next.shipment_id).await.unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();

    let (token, list, detail) = stats(&sandbox);
    assert_eq!(
        token.rate_limited + list.rate_limited + detail.rate_limited,
        0
    );
    // Five-second tokens, renewed mid-crawl: none is sent after it expired, even by a call that
    // waited for a reset.
    assert_eq!((detail.calls, detail.unauthorized), (60, 0));
    assert_eq!(token.wasted, 0);
    let floor = Duration::from_secs(5);
    assert!(elapsed >= floor, "the limit held: {elapsed:?}");
    assert!(
        elapsed <= floor.mul_f64(1.1),
        "close to the floor: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_429_is_honoured_and_the_call_still_succeeds() {
    // Windows of three seconds with two list calls each.
    let sandbox = start(SandboxConfig {
        time_scale: 20.0,
        limits: bol_sandbox::Limits {
            list: 2,
            detail: 50,
            token: 5,
        },
        ..SandboxConfig::default().with_accounts(1, 10, 0)
    })
    .await;
    let window = Duration::from_secs(3);
    let first = client(&sandbox, scaled(2, 50, window));
    for _ in 0..2 {
        first
            .list_shipments(&creds(), FulfilmentMethod::Fbr, 1)
            .await
            .unwrap();
    }
    // Another process that knows nothing of the spent budget.
    let second = client(&sandbox, no_limits());
    let answer = second
        .list_shipments(&creds(), FulfilmentMethod::Fbr, 1)
        .await
        .unwrap();
    assert_eq!(answer.calls.rate_limited, 1);
    assert_eq!(answer.calls.list, 2);
    assert_eq!(stats(&sandbox).1.rate_limited, 1);
}

#[tokio::test]
async fn a_restored_budget_avoids_the_429_another_process_would_hit() {
    let sandbox = start(SandboxConfig {
        time_scale: 20.0,
        limits: bol_sandbox::Limits {
            list: 2,
            detail: 50,
            token: 5,
        },
        ..SandboxConfig::default().with_accounts(1, 10, 0)
    })
    .await;
    let window = Duration::from_secs(3);
    let first = client(&sandbox, scaled(2, 50, window));
    for _ in 0..2 {
        first
            .list_shipments(&creds(), FulfilmentMethod::Fbr, 1)
            .await
            .unwrap();
    }
    let stored = serde_json::to_string(&first.limiter().snapshot(ACCOUNT)).unwrap();

    let second = client(&sandbox, no_limits());
    second.limiter().restore(
        ACCOUNT,
        &serde_json::from_str::<Vec<bol::BucketSnapshot>>(&stored).unwrap(),
    );
    let answer = second
        .list_shipments(&creds(), FulfilmentMethod::Fbr, 1)
        .await
        .unwrap();
    assert_eq!(answer.calls.rate_limited, 0);
    assert!(answer.calls.waited > Duration::ZERO);
    assert_eq!(stats(&sandbox).1.rate_limited, 0);
}
