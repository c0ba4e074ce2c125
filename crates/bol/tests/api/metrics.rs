//! What the client reports through the `metrics` facade agrees with what the sandbox counted.
//!
//! Each test records into a recorder of its own, set for its thread: `#[tokio::test]` runs the
//! test, the sandbox and the client on that one thread, so tests running beside it in this
//! process cannot add to its counts.

use crate::helpers::*;
use bol::{FulfilmentMethod, GroupLimit, Limits, telemetry};
use bol_sandbox::{Faults, SandboxConfig};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use std::time::Duration;

fn recorder() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(telemetry::RATE_LIMIT_WAIT.into()),
            telemetry::RATE_LIMIT_WAIT_BUCKETS,
        )
        .unwrap()
        .build_recorder()
}

/// The sum of the series of `name` whose labels include `labels`, in a Prometheus text.
fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, rest) = series.split_once('{').unwrap_or((series, "}"));
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().expect("a number"))
        .sum()
}

#[tokio::test]
async fn calls_are_counted_by_group_and_status_as_the_marketplace_saw_them() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    // One-second windows of 5 list and 10 detail calls: the details wait for their budget.
    let sandbox = start(SandboxConfig {
        time_scale: 60.0,
        limits: bol_sandbox::Limits {
            list: 5,
            detail: 10,
            token: 5,
        },
        faults: Faults {
            error_rate: 0.1,
            truncated_rate: 0.05,
            drop_rate: 0.05,
            ..Faults::default()
        },
        ..SandboxConfig::default().with_accounts(1, 30, 0)
    })
    .await;
    let window = Duration::from_secs(1);
    let client = client(
        &sandbox,
        Limits {
            token: None,
            list: Some(GroupLimit { calls: 5, window }),
            detail: Some(GroupLimit { calls: 10, window }),
        },
    );
    let creds = creds();
    let (shipments, mut calls) = crawl(&client, &creds, FulfilmentMethod::Fbr).await;
    calls += details(&client, &creds, &shipments).await;
    let wrong = bol::Credentials {
        client_secret: bol::SecretString::from("wrong"),
        ..creds.clone()
    };
    client.token(&wrong).await.unwrap_err();

    let text = recorder.handle().render();
    let (token, list, detail) = stats(&sandbox);
    for (group, seen) in [("token", &token), ("list", &list), ("detail", &detail)] {
        let counted = |labels: &[(&str, &str)]| {
            sum(
                &text,
                telemetry::CALLS,
                &[&[("group", group)], labels].concat(),
            )
        };
        assert_eq!(counted(&[]), seen.calls as f64, "{group} calls: {text}");
        assert_eq!(counted(&[("status", "429")]), seen.rate_limited as f64);
        assert_eq!(
            sum(&text, telemetry::RATE_LIMITED, &[("group", group)]),
            seen.rate_limited as f64
        );
        assert_eq!(counted(&[("status", "401")]), seen.unauthorized as f64);
        // Every fault injected is a 5xx or no complete answer.
        let faults = ["500", "502", "503", "504", "error"]
            .iter()
            .map(|status| counted(&[("status", status)]))
            .sum::<f64>();
        assert_eq!(faults, seen.faults as f64, "{group} faults: {text}");
        // Every call sent is in the histogram of waits, whether it waited or not.
        let waits = format!("{}_count", telemetry::RATE_LIMIT_WAIT);
        assert_eq!(sum(&text, &waits, &[("group", group)]), seen.calls as f64);
    }
    assert!(detail.faults + list.faults > 0, "the faults happened");
    assert_eq!(
        sum(&text, telemetry::RETRIES, &[]),
        f64::from(calls.retries),
        "{text}"
    );
    assert_eq!(
        sum(&text, telemetry::TOKENS_OBTAINED, &[]),
        sum(
            &text,
            telemetry::CALLS,
            &[("group", "token"), ("status", "200")]
        )
    );
    let waited = format!("{}_sum", telemetry::RATE_LIMIT_WAIT);
    assert!(
        sum(&text, &waited, &[("group", "detail")]) > 0.5,
        "30 details at 10 a second waited: {text}"
    );
    for gauge in [telemetry::WAITING_CALLS, telemetry::WAITING_ACCOUNTS] {
        assert!(text.contains(gauge), "{gauge}: {text}");
        assert_eq!(
            sum(&text, gauge, &[]),
            0.0,
            "nothing waits any more: {text}"
        );
    }
}
