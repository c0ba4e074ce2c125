//! Starting a sandbox and a client pointed at it, and crawling like Simba does.

use bol::{
    Calls, Client, ClientConfig, Credentials, FulfilmentMethod, Limits, ReducedShipment,
    RetryPolicy, SecretString,
};
use bol_sandbox::{GroupStats, Sandbox, SandboxConfig};
use std::time::Duration;

pub const ACCOUNT: &str = "sandbox-1";

/// A sandbox with one account of `fbr` FBR and `fbb` FBB shipments and no rate limits.
pub async fn unlimited_sandbox(fbr: u32, fbb: u32) -> Sandbox {
    start(SandboxConfig {
        limits: bol_sandbox::Limits::OFF,
        ..SandboxConfig::default().with_accounts(1, fbr, fbb)
    })
    .await
}

pub async fn start(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

/// No budget assumed before headers: for sandboxes without limits.
pub fn no_limits() -> Limits {
    Limits {
        token: None,
        list: None,
        detail: None,
    }
}

/// A client of the sandbox with short retry delays.
pub fn client(sandbox: &Sandbox, limits: Limits) -> Client {
    Client::new(ClientConfig {
        api_url: sandbox.base_url(),
        login_url: sandbox.base_url(),
        retry: RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
            max_rate_limited: 5,
        },
        limits,
        ..ClientConfig::default()
    })
    .expect("client builds")
}

pub fn creds() -> Credentials {
    Credentials {
        client_id: ACCOUNT.into(),
        client_secret: SecretString::from("secret-1"),
    }
}

/// Every page of one fulfilment method, stopping at the first short page.
pub async fn crawl(
    client: &Client,
    creds: &Credentials,
    method: FulfilmentMethod,
) -> (Vec<ReducedShipment>, Calls) {
    let mut shipments = Vec::new();
    let mut calls = Calls::default();
    for page in 1.. {
        let answer = client
            .list_shipments(creds, method, page)
            .await
            .expect("list page");
        calls += answer.calls;
        let last = answer.value.is_last();
        shipments.extend(answer.value.shipments);
        if last {
            break;
        }
    }
    (shipments, calls)
}

/// Details of all `shipments`, one call each.
pub async fn details(client: &Client, creds: &Credentials, shipments: &[ReducedShipment]) -> Calls {
    let mut calls = Calls::default();
    for s in shipments {
        let answer = client
            .shipment(creds, &s.shipment_id)
            .await
            .expect("detail");
        assert_eq!(answer.value.shipment.shipment_id, s.shipment_id);
        calls += answer.calls;
    }
    calls
}

/// The sandbox's counters of the test account: token, list, detail.
pub fn stats(sandbox: &Sandbox) -> (GroupStats, GroupStats, GroupStats) {
    let stats = sandbox.stats();
    let a = stats.account(ACCOUNT).expect("account").clone();
    (a.token, a.list, a.detail)
}
