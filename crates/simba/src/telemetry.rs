//! Logs (`tracing`, human-readable or JSON) and Prometheus metrics: the HTTP metrics here, the
//! engine's in [`crate::engine_metrics`] and the marketplace client's in [`bol::telemetry`].

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; `RUST_LOG` overrides the default level.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second initialisation (several apps in one test process) keeps the first subscriber.
    drop(result);
}

/// The process-wide metrics recorder; installed on first use because a process has one.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ],
                )
                .and_then(engine_buckets)
                .expect("the bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            bol::telemetry::describe();
            crate::engine_metrics::describe();
            crate::webhooks::describe();
            handle
        })
        .clone()
}

/// The buckets of the engine's and the marketplace client's histograms (a histogram without
/// buckets of its own would be exported as a summary).
fn engine_buckets(
    builder: PrometheusBuilder,
) -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    use crate::engine_metrics::{COMMIT_BUCKETS, COMMIT_DURATION, STEP_BUCKETS, STEP_DURATION};
    let full = |name: &str| Matcher::Full(name.to_owned());
    builder
        .set_buckets_for_metric(full(STEP_DURATION), STEP_BUCKETS)?
        .set_buckets_for_metric(full(COMMIT_DURATION), COMMIT_BUCKETS)?
        .set_buckets_for_metric(
            full(bol::telemetry::RATE_LIMIT_WAIT),
            bol::telemetry::RATE_LIMIT_WAIT_BUCKETS,
        )
}

/// The methods the routes answer; any other a client makes up is counted as `other`.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Counts requests by method, route template and status, and records their latency. Every
/// label has a bounded set of values, so that clients cannot grow the series without limit:
/// made-up methods are `other`, and paths no route matches are `unmatched`, never the path.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = METHODS
        .into_iter()
        .find(|m| *m == request.method().as_str())
        .unwrap_or("other");
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
