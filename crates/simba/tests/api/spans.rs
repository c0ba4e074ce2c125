//! Every line logged while a run is driven names its run: the engine's spans carry `run.id` and
//! `shop.id` down to the marketplace client's own lines, those of detail calls made on other
//! tasks included.

use bol_sandbox::{AccountConfig, Faults, Limits, SandboxConfig};

use crate::helpers::{Backend, TestApp, captured_logs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketplace_clients_lines_during_a_run_name_the_run_and_its_shop() {
    let config = SandboxConfig {
        accounts: vec![AccountConfig {
            client_id: "sandbox-1".into(),
            client_secret: "secret-1".into(),
            fbr: 130,
            fbb: 20,
        }],
        limits: Limits::OFF,
        faults: Faults {
            error_rate: 0.1,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    };
    let Some((app, _sandbox)) = TestApp::with_sandbox(Backend::Sqlite, config).await else {
        return;
    };
    let seller = app.register("anna").await;
    let shop = app.create_sandbox_shop(&seller, 1).await;

    let run = app.sync_and_wait(&seller, shop, None).await;

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
    app.cleanup().await;
}
