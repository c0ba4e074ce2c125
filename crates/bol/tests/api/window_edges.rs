//! Short, time-scaled windows: the client keeps to bol's fixed windows exactly, whatever their
//! phase, and stops throttling a group that answers without rate-limit headers.

use crate::helpers::*;
use bol::{FulfilmentMethod, Limits};
use bol_sandbox::SandboxConfig;
use rand::Rng;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Lists sequentially, then details in batches of ten concurrent calls with a varying pause
/// between batches (Simba commits to its database there). Returns the wall time and the
/// client's count of 429s.
async fn crawl_in_batches(client: &bol::Client, fbr_pages: u32) -> (Duration, u32, usize) {
    let creds = creds();
    let started = Instant::now();
    let mut rate_limited = 0;
    let mut ids = Vec::new();
    let pages = (1..=fbr_pages)
        .map(|p| (FulfilmentMethod::Fbr, p))
        .chain([(FulfilmentMethod::Fbb, 1)]);
    for (method, page) in pages {
        let answer = client.list_shipments(&creds, method, page).await.unwrap();
        rate_limited += answer.calls.rate_limited;
        ids.extend(answer.value.shipments.into_iter().map(|s| s.shipment_id));
    }
    for batch in ids.chunks(10) {
        let mut set = JoinSet::new();
        for id in batch {
            let (client, creds, id) = (client.clone(), creds.clone(), id.clone());
            set.spawn(async move { client.shipment(&creds, &id).await.unwrap().calls });
        }
        while let Some(calls) = set.join_next().await {
            rate_limited += calls.unwrap().rate_limited;
        }
        let pause = rand::rng().random_range(5..=30);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    (started.elapsed(), rate_limited, ids.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_never_hit_429s_at_the_edges_of_one_second_windows() {
    // A 60 s window lasts one second; 20 details each, so 200 details need ten windows.
    let sandbox = start(SandboxConfig {
        time_scale: 60.0,
        // Two-second tokens: renewed several times during the crawl.
        token_lifetime: 120,
        limits: bol_sandbox::Limits {
            list: 5,
            detail: 20,
            token: 20,
        },
        ..SandboxConfig::default().with_accounts(1, 160, 40)
    })
    .await;
    // Windows whose phase has nothing to do with when the client starts.
    let offset = rand::rng().random_range(0..1000);
    tokio::time::sleep(Duration::from_millis(offset)).await;
    let client = client(&sandbox, Limits::published().time_scaled(60.0));
    let (elapsed, rate_limited, details) = crawl_in_batches(&client, 4).await;
    assert_eq!(details, 200);

    let (token, list, detail) = stats(&sandbox);
    eprintln!(
        "offset {offset} ms: {elapsed:?}, 429s: client {rate_limited}, list {}, detail {}, \
         token {}; tokens {} (wasted {})",
        list.rate_limited, detail.rate_limited, token.rate_limited, token.calls, token.wasted
    );
    assert_eq!(
        (list.rate_limited, detail.rate_limited, token.rate_limited),
        (0, 0, 0)
    );
    assert_eq!(rate_limited, 0);
    // Calls wait up to a window (half a token's life) for a reset; they take the token after
    // the wait, so none is refused.
    assert_eq!((list.unauthorized, detail.unauthorized), (0, 0));
    assert_eq!((list.calls, detail.calls), (5, 200));
    assert_eq!(token.wasted, 0, "no token renewed early");
    assert!(token.calls >= 2, "tokens were renewed: {}", token.calls);
    // Ten windows: the first may start late in a window, so at least eight seconds pass.
    assert!(
        elapsed >= Duration::from_secs(8),
        "the limit held: {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_secs(10).mul_f64(1.1),
        "close to the floor: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_answering_without_headers_is_not_throttled() {
    // Detail unlimited: the sandbox sends no rate-limit headers for it, as for any limit of 0.
    let sandbox = start(SandboxConfig {
        time_scale: 60.0,
        limits: bol_sandbox::Limits {
            list: 25,
            detail: 0,
            token: 20,
        },
        ..SandboxConfig::default().with_accounts(1, 150, 0)
    })
    .await;
    // Assumes 50 details a (one-second) window until the answers say otherwise.
    let client = client(&sandbox, Limits::published().time_scaled(60.0));
    let creds = creds();
    let (shipments, _) = crawl(&client, &creds, FulfilmentMethod::Fbr).await;
    assert_eq!(shipments.len(), 150);
    let started = Instant::now();
    let calls = details(&client, &creds, &shipments).await;
    let elapsed = started.elapsed();
    assert_eq!(calls.detail, 150);
    assert_eq!(calls.waited, Duration::ZERO, "no wait for an assumed limit");
    assert!(elapsed < Duration::from_millis(900), "{elapsed:?}");
    // The list group still has its budget and headers.
    let snapshot = client.limiter().snapshot(ACCOUNT);
    let list = snapshot
        .iter()
        .find(|s| s.group == bol::Group::List)
        .unwrap();
    assert_eq!(list.limit, Some(25));
    let detail = snapshot
        .iter()
        .find(|s| s.group == bol::Group::Detail)
        .unwrap();
    assert_eq!((detail.limit, detail.remaining), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_second_tokens_are_never_sent_expired_nor_renewed_early() {
    // Simba's sync at the published limits with tokens of two seconds: the crawl lasts several
    // token lifetimes, and details wait for resets of one-second windows.
    let sandbox = start(SandboxConfig {
        time_scale: 60.0,
        token_lifetime: 120,
        limits: bol_sandbox::Limits {
            list: 25,
            detail: 50,
            token: 20,
        },
        ..SandboxConfig::default().with_accounts(1, 150, 100)
    })
    .await;
    let client = client(&sandbox, Limits::published().time_scaled(60.0));
    let creds = creds();
    let (mut shipments, _) = crawl(&client, &creds, FulfilmentMethod::Fbr).await;
    shipments.extend(crawl(&client, &creds, FulfilmentMethod::Fbb).await.0);
    assert_eq!(shipments.len(), 250);
    let mut total = bol::Calls::default();
    for batch in shipments.chunks(10) {
        let mut set = JoinSet::new();
        for s in batch {
            let (client, creds, id) = (client.clone(), creds.clone(), s.shipment_id.clone());
            set.spawn(async move { client.shipment(&creds, &id).await.unwrap().calls });
        }
        while let Some(calls) = set.join_next().await {
            total += calls.unwrap();
        }
    }

    let (token, list, detail) = stats(&sandbox);
    assert_eq!(
        (total.unauthorized, detail.unauthorized),
        (0, 0),
        "{total:?}"
    );
    assert_eq!(detail.calls, 250);
    assert_eq!(list.unauthorized, 0);
    assert_eq!(
        (list.rate_limited, detail.rate_limited, token.rate_limited),
        (0, 0, 0)
    );
    assert_eq!(token.wasted, 0, "no token renewed early");
    assert!(token.calls >= 2, "tokens were renewed: {}", token.calls);
}
