//! Fills a fresh database with one seller, `--shops` shops and `--per-shop` shipments each,
//! for the API benchmarks (`bench/api-list.sh`). Prints the seller's API token.
//!
//! Rows go in with multi-row INSERTs and explicit ids: the engine's one-at-a-time upsert path
//! would take minutes for a million rows, and a benchmark fixture needs none of its checks.

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use simba::app::AppState;
use simba::config::Config;
use simba::store::tokens::TokenKind;
use simba::store::{shops, users};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    shops: i64,
    #[arg(long, default_value_t = 100_000)]
    per_shop: i64,
}

const BATCH: i64 = 500;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::from_env().map_err(anyhow::Error::msg)?;
    let state = AppState::start(config).await?;
    let db = &state.db;
    let hash = simba::auth::password::hash("bench password 1".to_owned().into()).await?;
    let user = users::create(
        db,
        &users::NewUser {
            username: "bench",
            email: "bench@example.com",
            password_hash: &hash,
            first_name: "",
            last_name: "",
        },
    )
    .await
    .context("creating the bench seller (use a fresh database)")?;
    let token = simba::services::accounts::issue_token(db, user.id, TokenKind::Api).await?;
    let mut next_id = 1;
    let start = 1_780_000_000_i64;
    // Spread over the three months the marketplace's list covers, as a real shop's would be.
    let spacing = (90 * 86_400 / args.per_shop.max(1)).max(1);
    for s in 0..args.shops {
        let fields = shops::ShopFields {
            name: simba::domain::ShopName::parse(&format!("Shop {s}"))
                .map_err(anyhow::Error::msg)?,
            marketplace: simba::domain::Marketplace::Bol,
            client_id: simba::domain::ClientId::parse(&format!("bench-{s}"))
                .map_err(anyhow::Error::msg)?,
            auto_sync: false,
            sync_interval: simba::domain::SyncInterval::DEFAULT,
            push_enabled: false,
        };
        let secret = simba::domain::ClientSecret::parse(&"bench-secret".to_owned().into())
            .map_err(anyhow::Error::msg)?;
        let shop = shops::create(db, &state.cipher, user.id, &fields, &secret).await?;
        for batch_start in (0..args.per_shop).step_by(BATCH as usize) {
            let n = BATCH.min(args.per_shop - batch_start);
            let mut tx = db.pool.begin().await?;
            let mut shipments_sql = String::from(
                "INSERT INTO shipments (id, shop_id, user_id, shipment_id, shipment_date, \
                 shipment_reference, fulfilment_method, order_id, pickup_point, transport_id, \
                 transporter_code, track_and_trace, items, customer, raw, detail_synced_at, \
                 created_at, updated_at, change_seq) VALUES ",
            );
            let mut items_sql = String::from(
                "INSERT INTO shipment_items (shipment_pk, user_id, order_item_id, ean) VALUES ",
            );
            for k in 0..n {
                let i = batch_start + k;
                let id = next_id + k;
                let sep = if k == 0 { "" } else { "," };
                let ean = format!("87{:011}", i % 1000);
                let items = json!([{"order_item_id": format!("{id}1"), "ean": ean,
                    "title": "Theepot glas 1,2 L", "quantity": 1 + i % 3}]);
                shipments_sql.push_str(&format!(
                    "{sep}({id}, {}, {}, '{}', {}, 'REF-{id}', '{}', 'O{}', 0, 'T{id}', 'TNT', \
                     '3SABC{id}', '{}', '{{}}', '{{}}', {}, {}, {}, {id})",
                    shop.id,
                    user.id,
                    1_000_000_000 + id,
                    start + i * spacing + s,
                    if i % 4 == 0 { "FBB" } else { "FBR" },
                    4_000_000_000 + id,
                    items.to_string().replace('\'', "''"),
                    start,
                    start,
                    start,
                ));
                items_sql.push_str(&format!("{sep}({id}, {}, '{id}1', '{ean}')", user.id));
            }
            db.query(&shipments_sql).execute(&mut *tx).await?;
            db.query(&items_sql).execute(&mut *tx).await?;
            tx.commit().await?;
            next_id += n;
        }
        db.query("UPDATE shops SET shipment_count = ? WHERE id = ?")
            .bind(args.per_shop)
            .bind(shop.id)
            .execute(&db.pool)
            .await?;
        eprintln!("shop {} seeded with {} shipments", shop.id, args.per_shop);
    }
    // Each shipment took its id as its change number, as migration 0012 numbers rows stored
    // before the feed: the seller's sequence goes on from the last.
    db.query("UPDATE users SET change_seq = (SELECT MAX(id) FROM shipments) WHERE id = ?")
        .bind(user.id)
        .execute(&db.pool)
        .await?;
    if db.backend == simba::store::Backend::Postgres {
        db.query("SELECT setval('shipments_id_seq', (SELECT MAX(id) FROM shipments))")
            .execute(&db.pool)
            .await?;
    }
    // A database in service has been vacuumed by then; PostgreSQL's index-only scans need it.
    let analyze = match db.backend {
        simba::store::Backend::Postgres => "VACUUM ANALYZE",
        simba::store::Backend::Sqlite | simba::store::Backend::Mysql => "ANALYZE",
    };
    db.query(analyze).execute(&db.pool).await.ok();
    println!("{token}");
    Ok(())
}
