//! A cached marketplace token serves only the credentials that obtained it: naming another
//! seller's client id, with any other secret, gets a failed run and nothing stored.

use serde_json::{Value, json};
use sqlx::Row;

use crate::helpers::sync_setup::SyncSetup;
use crate::helpers::{Backend, Seller, TestApp};

crate::multi_thread_backend_tests!(
    a_seller_naming_another_sellers_client_id_gets_a_failed_run_and_none_of_its_data,
    two_sellers_with_the_same_credentials_each_prove_the_secret,
    changing_the_secret_or_deleting_the_shop_or_account_forgets_its_token,
    refused_secrets_past_the_limit_wait_without_a_call_and_nobody_else_does,
    a_refused_secret_forgets_the_token_it_held,
    a_new_token_replaces_the_cached_one_and_expired_tokens_of_other_secrets_go,
);

const FBR: u32 = 12;
const FBB: u32 = 3;

/// The app and a sandbox with account `sandbox-1`; each test makes its own sellers.
fn setup(backend: Backend) -> SyncSetup {
    SyncSetup::new(backend).shipments(FBR, FBB)
}

/// The token cache every process of the app shares, through its database.
fn token_cache(app: &TestApp) -> simba::store::marketplace::DbTokenCache {
    simba::store::marketplace::DbTokenCache {
        db: app.state.db.clone(),
        cipher: app.state.cipher.clone(),
    }
}

/// The sandbox account's credentials with `secret`.
fn creds(secret: &str) -> bol::Credentials {
    bol::Credentials {
        client_id: "sandbox-1".into(),
        client_secret: bol::SecretString::from(secret),
    }
}

fn calls(run: &Value, kind: &str) -> i64 {
    run["api_calls"][kind].as_i64().unwrap()
}

async fn add_shop(app: &TestApp, seller: &Seller, secret: &str) -> i64 {
    let response = app
        .post(
            "/api/v1/shops",
            Some(&seller.token),
            json!({"name": "shop", "client_id": "sandbox-1", "client_secret": secret,
                   "auto_sync": false}),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.text);
    response.json()["id"].as_i64().unwrap()
}

/// A seller named `name` whose shop with the right secret has synced once.
async fn synced_shop(app: &TestApp, name: &str) -> (Seller, i64) {
    let seller = app.register(name).await;
    let shop = add_shop(app, &seller, "secret-1").await;
    let run = app.sync(&seller, shop, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    (seller, shop)
}

async fn change_secret(app: &TestApp, seller: &Seller, shop: i64, secret: &str) {
    let response = app
        .patch(
            &format!("/api/v1/shops/{shop}"),
            Some(&seller.token),
            json!({"client_secret": secret}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
}

async fn shipment_count(app: &TestApp, seller: &Seller) -> i64 {
    app.get("/api/v1/shipments", Some(&seller.token))
        .await
        .json()["count"]
        .as_i64()
        .unwrap()
}

async fn cached_tokens(app: &TestApp) -> i64 {
    app.state
        .db
        .query("SELECT COUNT(*) FROM marketplace_tokens WHERE client_id = ?")
        .bind("sandbox-1")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn a_seller_naming_another_sellers_client_id_gets_a_failed_run_and_none_of_its_data(
    backend: Backend,
) {
    let Some((app, sandbox)) = setup(backend).spawn_app().await else {
        return;
    };
    let (owner, owners_shop) = synced_shop(&app, "owner").await;
    assert_eq!(shipment_count(&app, &owner).await, i64::from(FBR + FBB));
    sandbox.reset_stats();

    // What a worker process without the token in memory reads from the database.
    let shared = token_cache(&app);
    use bol::TokenCache;
    assert!(shared.load(&creds("secret-1")).await.is_some());
    assert!(shared.load(&creds("anything")).await.is_none());

    let attacker = app.register("attacker").await;
    let shop = add_shop(&app, &attacker, "anything").await;
    for secret in ["anything", "secret-", "secret-11", "SECRET-1"] {
        change_secret(&app, &attacker, shop, secret).await;
        let run = app.sync(&attacker, shop, None).await;
        assert_eq!(run["status"], "failed", "{secret:?} synced: {run}");
        assert_eq!(calls(&run, "token"), 1, "{run}");
        assert_eq!(calls(&run, "list") + calls(&run, "detail"), 0, "{run}");
        assert_eq!(run["progress"]["shipments_stored"], 0, "{run}");
    }
    assert_eq!(shipment_count(&app, &attacker).await, 0);
    let account = sandbox.stats().account("sandbox-1").unwrap().clone();
    assert_eq!(
        (account.list.calls, account.detail.calls),
        (0, 0),
        "the owner's token made a call for the attacker: {account:?}"
    );
    assert_eq!(account.token.unauthorized, 4, "{account:?}");

    sandbox.add_shipments("sandbox-1", 1, 0);
    let run = app.sync(&owner, owners_shop, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        calls(&run, "token"),
        0,
        "the attempts left the owner's token in place: {run}"
    );
    assert_eq!(shipment_count(&app, &owner).await, i64::from(FBR + FBB) + 1);
}

async fn two_sellers_with_the_same_credentials_each_prove_the_secret(backend: Backend) {
    let Some((app, _sandbox)) = setup(backend).spawn_app().await else {
        return;
    };
    let agency = app.register("agency").await;
    let merchant = app.register("merchant").await;
    let agencys_shop = add_shop(&app, &agency, "secret-1").await;
    let merchants_shop = add_shop(&app, &merchant, "secret-1").await;
    let run = app.sync(&agency, agencys_shop, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let run = app.sync(&merchant, merchants_shop, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        calls(&run, "token"),
        0,
        "the same secret shares the token: {run}"
    );
    assert_eq!(shipment_count(&app, &merchant).await, i64::from(FBR + FBB));

    change_secret(&app, &merchant, merchants_shop, "not-the-secret").await;
    assert_eq!(
        cached_tokens(&app).await,
        1,
        "the agency still holds the credentials, so their token stays"
    );
    let run = app.sync(&merchant, merchants_shop, None).await;
    assert_eq!(run["status"], "failed", "{run}");
    let run = app.sync(&agency, agencys_shop, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(calls(&run, "token"), 0, "{run}");
}

async fn changing_the_secret_or_deleting_the_shop_or_account_forgets_its_token(backend: Backend) {
    let Some((app, _sandbox)) = setup(backend).spawn_app().await else {
        return;
    };
    let (seller, shop) = synced_shop(&app, "seller").await;
    assert_eq!(cached_tokens(&app).await, 1);

    let path = format!("/api/v1/shops/{shop}");
    change_secret(&app, &seller, shop, "secret-1").await;
    assert_eq!(
        cached_tokens(&app).await,
        1,
        "the same secret again changes nothing"
    );

    change_secret(&app, &seller, shop, "rotated").await;
    assert_eq!(
        cached_tokens(&app).await,
        0,
        "a changed secret forgets the token"
    );
    let run = app.sync(&seller, shop, None).await;
    assert_eq!(run["status"], "failed", "{run}");

    change_secret(&app, &seller, shop, "secret-1").await;
    let run = app.sync(&seller, shop, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // That run may have taken the token this process still held in memory for the restored
    // secret, storing none: make sure there is one in the database for the deletion to forget.
    put_token_in_database(&app, "secret-1").await;
    assert_eq!(cached_tokens(&app).await, 1);
    assert_eq!(app.delete(&path, Some(&seller.token)).await.status, 204);
    assert_eq!(
        cached_tokens(&app).await,
        0,
        "a deleted shop forgets its token"
    );

    add_shop(&app, &seller, "secret-1").await;
    put_token_in_database(&app, "secret-1").await;
    let other = app.register("other").await;
    add_shop(&app, &other, "secret-1").await;
    let deleted = app.delete("/api/v1/auth/user", Some(&seller.token)).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        cached_tokens(&app).await,
        1,
        "another seller still holds the deleted account's credentials"
    );
    let deleted = app.delete("/api/v1/auth/user", Some(&other.token)).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        cached_tokens(&app).await,
        0,
        "a deleted account forgets its tokens"
    );
}

/// A cached token for `sandbox-1` with `secret` in the database, replacing any.
async fn put_token_in_database(app: &TestApp, secret: &str) {
    let fingerprint =
        simba::store::marketplace::secret_fingerprint(&app.state.cipher, "sandbox-1", secret);
    app.state
        .db
        .query("DELETE FROM marketplace_tokens WHERE client_id = ? AND secret_fingerprint = ?")
        .bind("sandbox-1")
        .bind(&fingerprint)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    app.state
        .db
        .query(
            "INSERT INTO marketplace_tokens (client_id, secret_fingerprint, token_enc, \
             issued_at_ms, lifetime_ms) VALUES (?, ?, 'x', 0, 0)",
        )
        .bind("sandbox-1")
        .bind(&fingerprint)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
}

async fn refused_secrets_past_the_limit_wait_without_a_call_and_nobody_else_does(backend: Backend) {
    let Some((app, sandbox)) = setup(backend).spawn_app().await else {
        return;
    };
    let (owner, owners_shop) = synced_shop(&app, "owner").await;
    sandbox.reset_stats();

    let attacker = app.register("attacker").await;
    let shop = add_shop(&app, &attacker, "guess-0").await;
    let allowed = simba::store::marketplace::REFUSALS_ALLOWED;
    for guess in 0..=allowed {
        change_secret(&app, &attacker, shop, &format!("guess-{guess}")).await;
        let run = app.sync(&attacker, shop, None).await;
        assert_eq!(run["status"], "failed", "{run}");
        let expected_calls = i64::from(guess < allowed);
        assert_eq!(calls(&run, "token"), expected_calls, "guess {guess}: {run}");
        if guess == allowed {
            assert!(
                run["error"].as_str().unwrap().contains("refused too many"),
                "{run}"
            );
        }
    }
    let account = sandbox.stats().account("sandbox-1").unwrap().clone();
    assert_eq!(account.token.calls as i64, allowed, "{account:?}");

    let accomplice = app.register("accomplice").await;
    let accomplices_shop = add_shop(&app, &accomplice, "guess-x").await;
    let run = app.sync(&accomplice, accomplices_shop, None).await;
    assert_eq!(
        calls(&run, "token"),
        1,
        "counted per seller, not per client id: {run}"
    );

    // The owner's credentials hold no token here, as after migration 9 or a changed secret:
    // the attackers' refusals must not hold them back.
    app.state
        .db
        .query("DELETE FROM marketplace_tokens")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let run = app.sync(&owner, owners_shop, None).await;
    assert_eq!(run["status"], "succeeded", "the owner goes on: {run}");
}

async fn a_refused_secret_forgets_the_token_it_held(backend: Backend) {
    let Some((app, _sandbox)) = setup(backend).spawn_app().await else {
        return;
    };
    let seller = app.register("seller").await;
    let shop = add_shop(&app, &seller, "revoked-at-bol").await;
    put_token_in_database(&app, "revoked-at-bol").await;
    assert_eq!(cached_tokens(&app).await, 1);
    simba::store::marketplace::record_refusal(
        &app.state.db,
        &app.state.cipher,
        shop,
        &creds("revoked-at-bol"),
        simba::domain::Timestamp::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        cached_tokens(&app).await,
        0,
        "credentials bol refused are no longer proven"
    );
}

async fn a_new_token_replaces_the_cached_one_and_expired_tokens_of_other_secrets_go(
    backend: Backend,
) {
    use bol::TokenCache;
    let Some((app, _sandbox)) = setup(backend).spawn_app().await else {
        return;
    };
    let cache = token_cache(&app);
    let now = time::OffsetDateTime::now_utc();
    let lifetime = std::time::Duration::from_secs(300);
    let token = |value: &str, issued_at| {
        bol::CachedToken::new(bol::SecretString::from(value), issued_at, lifetime)
    };
    let two_hours_ago = now - std::time::Duration::from_secs(7200);
    cache
        .store(&creds("old-secret"), &token("expired", two_hours_ago))
        .await;
    cache
        .store(&creds("agency-secret"), &token("live", now))
        .await;
    cache.store(&creds("secret-1"), &token("first", now)).await;
    cache.store(&creds("secret-1"), &token("second", now)).await;

    let loaded = cache.load(&creds("secret-1")).await.expect("cached");
    assert_eq!(
        bol::ExposeSecret::expose_secret(&loaded.access_token),
        "second"
    );
    assert!(
        cache.load(&creds("old-secret")).await.is_none(),
        "expired, another secret"
    );
    assert!(
        cache.load(&creds("agency-secret")).await.is_some(),
        "live, kept"
    );
    assert_eq!(cached_tokens(&app).await, 2);
}
