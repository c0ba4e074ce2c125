//! `/metrics` shows the engine: the marketplace calls counted by endpoint group and status are
//! exactly those the sandbox received, and every family of the engine's metrics is there.
//!
//! The metrics recorder is process-wide, and the other tests of this binary sync against
//! sandboxes of their own meanwhile, adding to the same counters. Exact counts therefore need
//! a process of their own: each test below runs this test binary again for the one test
//! [`alone`] and checks that it passed. (`rusty-fork` forks likewise, but for synchronous
//! tests only; `alone` needs the runtime and the app's helpers.)

use std::process::Command;

use bol_sandbox::{Faults, Stats};
use serde_json::json;

use crate::helpers::Backend;
use crate::helpers::sync_setup::{SyncSetup, SyncTest};

/// Set (to the backend) in the process that runs [`alone`].
const ALONE: &str = "SIMBA_TEST_METRICS_ALONE";

mod sqlite {
    #[test]
    fn the_engine_metrics_count_what_the_marketplace_saw() {
        super::in_a_process_of_its_own(super::Backend::Sqlite);
    }
}

mod postgres {
    #[test]
    fn the_engine_metrics_count_what_the_marketplace_saw() {
        super::in_a_process_of_its_own(super::Backend::Postgres);
    }
}

mod mysql {
    #[test]
    fn the_engine_metrics_count_what_the_marketplace_saw() {
        super::in_a_process_of_its_own(super::Backend::Mysql);
    }
}

/// Runs [`alone`] on `backend` in a new process of this test binary.
fn in_a_process_of_its_own(backend: Backend) {
    if let Some(var) = backend.env_var()
        && std::env::var(var).ok().filter(|v| !v.is_empty()).is_none()
    {
        eprintln!("note: {backend:?} metrics test skipped: {var} is not set (.ci/run sets it)");
        return;
    }
    let binary = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(binary)
        .args(["metrics::alone", "--exact", "--ignored", "--test-threads=1"])
        .env(ALONE, format!("{backend:?}"))
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // A filter that matches nothing passes too: the test must have run.
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the metrics test in a process of its own failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the tests above, in a process of its own"]
async fn alone() {
    let backend = match std::env::var(ALONE).as_deref() {
        Ok("Sqlite") => Backend::Sqlite,
        Ok("Postgres") => Backend::Postgres,
        Ok("Mysql") => Backend::Mysql,
        _ => {
            eprintln!("note: metrics::alone runs only in a process of its own ({ALONE} unset)");
            return;
        }
    };
    the_engine_metrics_count_what_the_marketplace_saw(backend).await;
}

/// An automatic shop synced twice, and once found ten minutes late and spread; a run
/// cancelled; a run failed on a wrong secret; with faults (5xx, dropped connections) that the
/// client retries, and 20 details a minute (a second, time-scaled), so that the 90 details wait
/// for their budget however slow the machine.
async fn the_engine_metrics_count_what_the_marketplace_saw(backend: Backend) {
    let minute = std::time::Duration::from_secs(60);
    let setup = SyncSetup::new(backend)
        .accounts(&[(60, 30), (3, 0), (2, 0)])
        .limits(bol_sandbox::Limits {
            list: 25,
            detail: 20,
            token: 20,
        })
        .time_scale(60.0)
        .config(move |config| {
            config.bol_assumed_limits = bol::Limits {
                token: None,
                list: Some(bol::GroupLimit {
                    calls: 25,
                    window: minute,
                }),
                detail: Some(bol::GroupLimit {
                    calls: 20,
                    window: minute,
                }),
            };
        })
        .faults(Faults {
            error_rate: 0.05,
            drop_rate: 0.03,
            ..Faults::default()
        })
        .shops(0);
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        ..
    }) = setup.spawn().await
    else {
        return;
    };
    let create = |body: serde_json::Value| {
        let (app, seller) = (&app, &seller);
        async move {
            let created = app.post("/api/v1/shops", Some(&seller.token), body).await;
            assert_eq!(created.status, 201, "{}", created.text);
            created.json()["id"].as_i64().unwrap()
        }
    };
    let auto = create(json!({"name": "auto", "client_id": "sandbox-1",
                             "client_secret": "secret-1", "sync_interval_minutes": 1}))
    .await;
    let cancelled = app.create_sandbox_shop(&seller, 2).await;
    let refused = create(json!({"name": "refused", "client_id": "sandbox-3",
                                "client_secret": "wrong", "auto_sync": false}))
    .await;

    let engine = app.state.engine.clone();
    let due_ago = |seconds: i64| {
        let db = app.state.db.clone();
        async move {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            db.query("UPDATE shops SET next_sync_at = ? WHERE id = ?")
                .bind(now - seconds)
                .bind(auto)
                .execute(&db.pool)
                .await
                .unwrap();
        }
    };
    due_ago(30).await;
    assert_eq!(engine.schedule_due().await.unwrap(), 1);
    app.run_pending_syncs().await;
    // Overdue past the grace: spread over its interval, not queued.
    due_ago(600).await;
    assert_eq!(engine.schedule_due().await.unwrap(), 0);
    due_ago(20).await;
    sandbox.add_shipments("sandbox-1", 3, 0);
    assert_eq!(engine.schedule_due().await.unwrap(), 1);
    let to_cancel = app.start_sync(&seller, cancelled, None).await;
    let cancel = app
        .post(
            &format!("/api/v1/sync-runs/{to_cancel}/cancel"),
            Some(&seller.token),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, 202, "{}", cancel.text);
    app.start_sync(&seller, refused, None).await;
    app.run_pending_syncs().await;

    let stats: Stats = app
        .client
        .get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = app.get("/metrics", None).await.text;
    assert_eq!(stats.unattributed, 0);
    let mut faults = 0;
    for group in ["token", "list", "detail"] {
        let seen = stats.accounts.iter().fold([0; 4], |total, account| {
            let g = match group {
                "token" => &account.token,
                "list" => &account.list,
                _ => &account.detail,
            };
            [
                total[0] + g.calls,
                total[1] + g.rate_limited,
                total[2] + g.unauthorized,
                total[3] + g.faults,
            ]
        });
        let [calls, rate_limited, unauthorized, group_faults] = seen.map(|n| n as f64);
        faults += seen[3];
        let counted = |status: Option<&str>| {
            let mut labels = vec![("group", group)];
            labels.extend(status.map(|s| ("status", s)));
            sum(&text, "bol_calls_total", &labels)
        };
        assert_eq!(counted(None), calls, "{group} calls\n{text}");
        assert_eq!(counted(Some("429")), rate_limited, "{group} 429s\n{text}");
        let limited = sum(&text, "bol_rate_limited_total", &[("group", group)]);
        assert_eq!(limited, rate_limited, "{group} 429s\n{text}");
        assert_eq!(counted(Some("401")), unauthorized, "{group} 401s\n{text}");
        let failed: f64 = ["500", "502", "503", "504", "error"]
            .into_iter()
            .map(|status| counted(Some(status)))
            .sum();
        assert_eq!(failed, group_faults, "{group} faults\n{text}");
        let waits = sum(
            &text,
            "bol_rate_limit_wait_seconds_count",
            &[("group", group)],
        );
        assert_eq!(
            waits, calls,
            "every {group} call sent is in the waits\n{text}"
        );
    }
    assert!(faults > 0, "the faults happened: {stats:?}");
    // Each group has its 429 series from the start, so that "should be 0" sees a 0.
    assert_eq!(
        series(&text, "bol_rate_limited_total").count(),
        bol::Group::ALL.len(),
        "{text}"
    );
    let unauthorized = stats.account("sandbox-3").unwrap().token.unauthorized;
    assert!(unauthorized > 0, "the wrong secret was refused: {stats:?}");
    assert_eq!(
        sum(&text, "bol_tokens_obtained_total", &[]),
        sum(
            &text,
            "bol_calls_total",
            &[("group", "token"), ("status", "200")]
        )
    );
    assert!(
        sum(
            &text,
            "bol_rate_limit_wait_seconds_sum",
            &[("group", "detail")]
        ) > 0.0
    );
    for gauge in [
        "bol_rate_limit_waiting_calls",
        "bol_rate_limit_waiting_accounts",
    ] {
        assert!(series(&text, gauge).next().is_some(), "{gauge}\n{text}");
        assert_eq!(
            sum(&text, gauge, &[]),
            0.0,
            "nothing waits any more\n{text}"
        );
    }

    for (trigger, runs) in [("schedule", 2.0), ("api", 2.0)] {
        let queued = sum(
            &text,
            "simba_sync_runs_queued_total",
            &[("trigger", trigger)],
        );
        assert_eq!(queued, runs, "{trigger}\n{text}");
    }
    for (status, runs) in [("succeeded", 2.0), ("cancelled", 1.0), ("failed", 1.0)] {
        let ended = sum(&text, "simba_sync_runs_ended_total", &[("status", status)]);
        assert_eq!(ended, runs, "{status}\n{text}");
    }
    assert_eq!(sum(&text, "simba_sync_runs_driving", &[]), 0.0);
    for kind in ["list", "details", "commit"] {
        let steps = sum(
            &text,
            "simba_sync_step_duration_seconds_count",
            &[("kind", kind)],
        );
        assert!(steps > 0.0, "{kind} steps\n{text}");
    }
    let family = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres | Backend::Mysql => "server",
    };
    let commits = sum(
        &text,
        "simba_db_commit_duration_seconds_count",
        &[("family", family)],
    );
    assert!(commits > 0.0, "{family} commits\n{text}");
    if backend == Backend::Sqlite {
        assert!(
            series(&text, "simba_db_writer_queue_depth")
                .next()
                .is_some()
        );
        assert_eq!(sum(&text, "simba_db_writer_queue_depth", &[]), 0.0);
    }
    assert_eq!(sum(&text, "simba_scheduler_due_shops", &[]), 1.0);
    let lag = sum(&text, "simba_scheduler_lag_seconds", &[]);
    assert!(
        (20.0..30.0).contains(&lag),
        "due 20 s before the last pass: {lag}\n{text}"
    );
    assert_eq!(sum(&text, "simba_scheduler_overdue_spread_total", &[]), 1.0);
    for histogram in [
        "bol_rate_limit_wait_seconds",
        "simba_sync_step_duration_seconds",
        "simba_db_commit_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {histogram} histogram")),
            "{histogram} has buckets\n{text}"
        );
    }
}

/// The series of `name` in a Prometheus text: each one's labels (`k="v",...`) and value.
fn series<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(move |(series, value)| {
            let (series_name, labels) = match series.split_once('{') {
                Some((n, labels)) => (n, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            (series_name == name).then(|| (labels, value.parse().expect("a number")))
        })
}

/// The sum of the series of `name` whose labels include `labels`.
fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    series(text, name)
        .filter(|(have, _)| {
            labels
                .iter()
                .all(|(k, v)| have.split(',').any(|l| l == format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value)
        .sum()
}

/// A `simba worker` has no API, so its engine's metrics are on a listener of its own: the
/// worker drives a run, and its `/metrics` shows it (the recorder is process-wide, so only
/// presence is checked here, not counts).
mod worker {
    use crate::helpers::Backend;
    use crate::helpers::sync_setup::{SyncSetup, SyncTest};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_serves_its_metrics_health_and_readiness_on_its_own_listener() {
        let Some(SyncTest {
            app,
            sandbox: _sandbox,
            seller,
            shops,
        }) = SyncSetup::new(Backend::Sqlite)
            .shipments(20, 5)
            .spawn()
            .await
        else {
            return;
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(simba::app::work(
            app.state.clone(),
            Some(listener),
            async move {
                stopped.await.ok();
            },
        ));

        let run = app.start_sync(&seller, shops[0], None).await;
        assert_eq!(app.wait_for_run(&seller, run).await["status"], "succeeded");
        let get = |path: &str| app.client.get(format!("{base}{path}")).send();
        let metrics = get("/metrics").await.unwrap().text().await.unwrap();
        for family in ["simba_sync_runs_ended_total", "bol_calls_total"] {
            assert!(
                metrics.contains(family),
                "{family} missing from:\n{metrics}"
            );
        }
        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        assert_eq!(get("/readyz").await.unwrap().status(), 200);
        assert_eq!(get("/api/v1/shops").await.unwrap().status(), 404, "no API");

        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(30), worker)
            .await
            .expect("the worker stops")
            .unwrap();
        assert!(
            get("/healthz").await.is_err(),
            "the listener closed with the worker"
        );
    }
}
