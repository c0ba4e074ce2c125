//! `simba demo`: the server, an in-process bol sandbox with a demo account of 5,000
//! shipments (time scaled so the full sync takes about a minute), a demo seller and shop, and
//! the first sync started — one command to see Simba work.

use anyhow::Context;
use secrecy::SecretString;

use crate::app::{self, AppState};
use crate::config::Config;
use crate::domain::{Email, Password, PersonName, Trigger, Username};
use crate::services::accounts::{self, NewAccount};
use crate::services::shops::{self as shop_service, ShopInput};
use crate::store::tokens::TokenKind;
use crate::store::{shops, users};
use crate::sync;

/// Marketplace seconds per real second: 5,000 details at 50 a minute take 100 minutes at
/// bol's pace, a minute here.
const TIME_SCALE: f64 = 100.0;
const USERNAME: &str = "demo";
const PASSWORD: &str = "demo-password";

pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let sandbox = bol_sandbox::Sandbox::start(bol_sandbox::SandboxConfig {
        accounts: bol_sandbox::AccountConfig::numbered(1, 4_000, 1_000),
        time_scale: TIME_SCALE,
        ..bol_sandbox::SandboxConfig::default()
    })
    .await
    .context("starting the bol sandbox")?;
    let base: url::Url = sandbox.base_url().parse()?;
    config.bol_api_url = base.clone();
    config.bol_login_url = base;
    config.bol_time_scale = TIME_SCALE;
    let addr = config.addr;
    let state = AppState::start(config).await?;
    let (user, token) = demo_seller(&state).await?;
    let shop = demo_shop(&state, user.id).await?;
    let full = Some(crate::domain::Mode::Full);
    let run = match sync::queue_run(&state.engine, shop.id, full, Trigger::Cli).await {
        Ok(run) => Some(run.id),
        Err(sync::QueueError::Active(id)) => Some(id),
        Err(e) => return Err(e.into()),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    println!(
        "\nSimba demo is running at {url}  (API docs: {url}/docs)\n\
         \n  dashboard:  {url}/runs/{}\
         \n  log in:     username {USERNAME}, password {PASSWORD}\
         \n  API token:  {token}\
         \n  sandbox:    {} (client id sandbox-1, secret secret-1)\
         \n\n  curl -H 'Authorization: Token {token}' {url}/api/v1/sync-runs/{}\
         \n  curl -H 'Authorization: Token {token}' {url}/api/v1/shipments\n\
         \nThe full sync of 5,000 shipments takes about a minute. Ctrl-C stops the demo.\n",
        run.unwrap_or_default(),
        sandbox.base_url(),
        run.unwrap_or_default(),
    );
    app::serve(state, listener, app::shutdown_signal()).await;
    sandbox.shutdown().await;
    Ok(())
}

/// The demo seller (created on first run, as `/auth/register` creates sellers) and a fresh API
/// token.
async fn demo_seller(state: &AppState) -> anyhow::Result<(users::User, String)> {
    let user = match users::find_for_login(&state.db, USERNAME).await? {
        Some((user, _)) => user,
        None => {
            let username = Username::parse(USERNAME).map_err(anyhow::Error::msg)?;
            let password = SecretString::from(PASSWORD.to_owned());
            let new = NewAccount {
                password: &Password::parse(&password, USERNAME).map_err(anyhow::Error::msg)?,
                email: &Email::parse("demo@example.com").map_err(anyhow::Error::msg)?,
                first_name: &PersonName::parse("Demo").map_err(anyhow::Error::msg)?,
                last_name: &PersonName::parse("Seller").map_err(anyhow::Error::msg)?,
                username: &username,
            };
            accounts::register(&state.db, &new).await?
        }
    };
    let token = accounts::issue_token(&state.db, user.id, TokenKind::Api).await?;
    Ok((user, token))
}

/// The demo seller's first shop, added on first run as `POST /shops` adds shops.
async fn demo_shop(state: &AppState, user_id: i64) -> anyhow::Result<shops::Shop> {
    let (existing, _) = shops::list(&state.db, user_id, 1, 0).await?;
    if let Some(shop) = existing.into_iter().next() {
        return Ok(shop);
    }
    let input = ShopInput {
        name: Some("Demo shop".into()),
        client_id: Some("sandbox-1".into()),
        client_secret: Some(SecretString::from("secret-1".to_owned())),
        ..ShopInput::default()
    };
    Ok(shop_service::create(&state.db, &state.cipher, user_id, &input).await?)
}
