//! Every line logged while a run is driven names its run: the engine's spans carry `run.id` and
//! `shop.id` down to the marketplace client's own lines, those of detail calls made on other
//! tasks included.

use bol_sandbox::Faults;

use crate::helpers::sync_setup::{SyncSetup, SyncTest};
use crate::helpers::{Backend, captured_logs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketplace_clients_lines_during_a_run_name_the_run_and_its_shop() {
    let Some(SyncTest {
        app,
        sandbox: _sandbox,
        seller,
        shops,
    }) = SyncSetup::new(Backend::Sqlite)
        .shipments(130, 20)
        .faults(Faults {
            error_rate: 0.1,
            ..Faults::default()
        })
        .spawn()
        .await
    else {
        return;
    };
    let shop = shops[0];

    let run = app.sync(&seller, shop, None).await;

    let run_span = format!("sync_run{{run.id={} shop.id={shop}}}", run["id"]);
    let logs = captured_logs();
    assert!(
        logs.lines()
            .any(|line| line.contains("sync run started") && line.contains(&run_span)),
        "the run's own lines do not name it"
    );
    // Detail calls run on tasks of their own: the hardest lines to tie to their run.
    let detail_step = format!("{run_span}:step{{kind=\"details\"}}");
    let retried_details: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("transient failure; retrying"))
        .filter(|line| line.contains(&detail_step))
        .collect();
    assert!(
        !retried_details.is_empty(),
        "no retried detail call was logged inside its step's span"
    );
}
