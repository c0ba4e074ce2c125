//! Start-up (database, migrations, `SECRET_KEY`), building the shared application state, the
//! composition of the edges' routers, and serving them until a shutdown signal. The top of the
//! layers: it wires the edges together, and nothing imports it but the binary.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::auth::session;
use crate::config::{Config, SecretKeySource, SessionSettings};
use crate::crypto::{self, Cipher};
use crate::domain::Timestamp;
use crate::error::ApiError;
use crate::services::page_cache::PageCache;
use crate::store::{self, Db};
use crate::sync::{AmqpQueue, DatabaseQueue, Engine, RunQueue};
use crate::webhooks::Webhooks;

pub use crate::state::AppState;

impl AppState {
    /// Connects, migrates and checks the `SECRET_KEY` against the stored data.
    pub async fn start(config: Config) -> anyhow::Result<AppState> {
        // A process that drives runs waits for pooled connections as long as the database needs
        // (see `Db::connect_waiting`); the web role (`serve --no-workers`) keeps a short wait,
        // so that a request fails fast when the database is saturated.
        let acquire_timeout = match config.run_workers {
            true => store::ENGINE_ACQUIRE_TIMEOUT,
            false => store::API_ACQUIRE_TIMEOUT,
        };
        let db = Db::connect_waiting(
            &config.database_url,
            config.database_max_connections,
            acquire_timeout,
        )
        .await
        .with_context(|| format!("connecting to the {:?} database", config.backend))?;
        store::migrate(&db)
            .await
            .context("applying database migrations")?;
        let secret_key = resolve_secret_key(&config.secret_key)?;
        let cipher = Cipher::new(&secret_key);
        check_secret_key(&db, &cipher).await?;
        let queue: Arc<dyn RunQueue> = match &config.broker_url {
            Some(url) => Arc::new(AmqpQueue::new(
                url,
                &config.broker_queue,
                config.engine.max_concurrent_runs,
            )),
            None => Arc::new(DatabaseQueue::default()),
        };
        let engine = Engine::new(
            db.clone(),
            cipher.clone(),
            config.bol_client(),
            config.engine.clone(),
            queue,
        )?;
        Ok(AppState {
            engine,
            db,
            cipher,
            auth_cache: Arc::default(),
            password_checks: Arc::default(),
            page_cache: Arc::new(PageCache::new(
                config.page_cache_bytes,
                config.page_cache_stale,
            )),
            config: Arc::new(config),
            metrics: crate::telemetry::metrics_handle(),
        })
    }
}

/// The name under which the key check value is stored.
const KEY_CHECK_SETTING: &str = "secret_key_check";
const KEY_CHECK_PURPOSE: &str = "settings.secret_key_check";

/// Stores an encrypted check value on first start; later starts must decrypt it, so that a
/// changed or mistyped `SECRET_KEY` stops the server now rather than failing the next sync.
async fn check_secret_key(db: &Db, cipher: &Cipher) -> anyhow::Result<()> {
    let fresh = cipher.encrypt(KEY_CHECK_PURPOSE, "simba");
    let stored = store::settings::get_or_insert(db, KEY_CHECK_SETTING, &fresh).await?;
    cipher.decrypt(KEY_CHECK_PURPOSE, &stored).map_err(|_| {
        anyhow::anyhow!(
            "SECRET_KEY does not match the key this database was set up with: the stored shop \
             secrets cannot be decrypted. Set SECRET_KEY to the original value."
        )
    })?;
    Ok(())
}

fn resolve_secret_key(source: &SecretKeySource) -> anyhow::Result<SecretString> {
    match source {
        SecretKeySource::Given(key) => Ok(key.clone()),
        SecretKeySource::Ephemeral => Ok(SecretString::from(crypto::generate_secret_key())),
        SecretKeySource::File(path) => read_or_create_key_file(path),
    }
}

fn read_or_create_key_file(path: &Path) -> anyhow::Result<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(key) => return Ok(SecretString::from(key.trim().to_owned())),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e)
                .with_context(|| format!("reading the SECRET_KEY file {}", path.display()));
        }
        Err(_) => {}
    }
    let key = crypto::generate_secret_key();
    write_private_file(path, &key)
        .with_context(|| format!("writing the SECRET_KEY file {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "SECRET_KEY is not set: generated one and saved it beside the database; keep this file \
         with the database (losing it makes the stored shop secrets unreadable) and set \
         SECRET_KEY in production"
    );
    Ok(SecretString::from(key))
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Serves the API on `listener`, with the sync workers and the scheduler unless the settings
/// say otherwise, until `shutdown` completes; then lets requests in flight finish while the runs
/// stop at their next step boundary.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let metrics = state.metrics.clone();
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics.run_upkeep();
        }
    });
    let sweeper = tokio::spawn(sweep_sessions(state.db.clone(), state.config.sessions));
    let background = state
        .config
        .run_workers
        .then(|| Background::start(&state, engine_runtime()));
    // The runs stop at their next step boundary while the HTTP requests drain, not after: a
    // platform that kills the process 30 s after SIGTERM must not find a step half-way.
    let stop_runs = background.as_ref().map(|b| b.stop.clone());
    let shutdown = async move {
        shutdown.await;
        if let Some(stop_runs) = stop_runs {
            stop_runs.send(true).ok();
        }
    };
    let http = state.config.http;
    let trusted_proxies = state.config.trusted_proxies.clone();
    let db = state.db.clone();
    let router = router(state);
    crate::http_server::serve(listener, router, http, &trusted_proxies, shutdown).await;
    if let Some(background) = background {
        background.stop().await;
    }
    checkpoint_on_stop(&db).await;
    sweeper.abort();
    upkeep.abort();
}

/// The whole site: the API's routes and the dashboard's, one fallback for both, and the
/// middleware every request passes.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let routes = Router::new()
        .merge(crate::api::routes())
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state);
    crate::api::with_middleware(routes, &config)
}

/// The fallback: the dashboard's HTML 404 page for a browser outside the API, problem+json for
/// everyone else.
async fn not_found(uri: Uri, headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html && !uri.path().starts_with("/api/") {
        crate::dashboard::not_found_page()
    } else {
        ApiError::NotFound.into_response()
    }
}

/// Sweeps ended dashboard sessions at start and every [`session::SWEEP_INTERVAL`]. Every
/// `serve` process does, as sessions are theirs; a sweep that fails is tried again next time.
async fn sweep_sessions(db: Db, settings: SessionSettings) {
    let mut tick = tokio::time::interval(session::SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        match session::sweep(&db, &settings, Timestamp::now()).await {
            Ok(0) => {}
            Ok(swept) => tracing::info!(sessions = swept, "deleted ended dashboard sessions"),
            Err(error) => tracing::warn!(
                error = format!("{:#}", anyhow::Error::from(error)),
                "deleting ended dashboard sessions"
            ),
        }
    }
}

/// The engine's runtime in `simba serve`, beside the API's, its threads (the SQLite writer's
/// included: it runs on this runtime's blocking pool) at a lower priority than the API's.
///
/// When a thousand shops' rate windows open together, their runs parse and store tens of
/// thousands of details in a few seconds; on threads shared with the API, or of equal priority,
/// every list request waits its turn behind that burst (p99 0.96 s at 1,000 shops). Lowered,
/// the engine gets whatever the API leaves: the operating system runs an API thread as soon as
/// it has work, and the engine takes a little longer in the burst instead. `None` (and the
/// engine shares the API's runtime) if the runtime cannot be built.
fn engine_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("simba-engine")
        .on_thread_start(|| {
            let lower = thread_priority::ThreadPriorityValue::try_from(ENGINE_PRIORITY)
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    thread_priority::set_current_thread_priority(
                        thread_priority::ThreadPriority::Crossplatform(p),
                    )
                    .map_err(|e| e.to_string())
                });
            if let Err(e) = lower {
                tracing::warn!(error = %e, "lowering the priority of an engine thread");
            }
        })
        .enable_all()
        .build()
        .inspect_err(|e| tracing::warn!(error = %e, "starting the engine's runtime"))
        .ok()
}

/// The engine threads' priority on thread-priority's 0–99 scale: nice 9 on Linux, where the API's
/// threads are at 0 and so get about ten times the engine's share of a busy core.
const ENGINE_PRIORITY: u8 = 25;

/// The sync workers, the scheduler, the push manager and the webhook workers of one process, on the engine's
/// runtime if it has one.
struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    workers: tokio::task::JoinHandle<()>,
    scheduler: tokio::task::JoinHandle<()>,
    retention: tokio::task::JoinHandle<()>,
    /// The push subscription manager and notification worker.
    push: tokio::task::JoinHandle<()>,
    /// The webhook dispatcher and deliveries; `None` if its HTTP client could not be built.
    webhooks: Option<tokio::task::JoinHandle<()>>,
    _runtime: Option<EngineRuntime>,
}

/// Shuts the engine's runtime down without waiting when dropped: a `Runtime` dropped inside an
/// async context (a server task aborted) would panic.
struct EngineRuntime(Option<tokio::runtime::Runtime>);

impl Drop for EngineRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Background {
    fn start(state: &AppState, runtime: Option<tokio::runtime::Runtime>) -> Background {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let handle = runtime
            .as_ref()
            .map_or_else(tokio::runtime::Handle::current, |r| r.handle().clone());
        let webhooks = Webhooks::new(
            state.db.clone(),
            state.cipher.clone(),
            state.config.webhooks.clone(),
            Arc::new(crate::api::webhooks::ApiRender),
        )
        .inspect_err(|e| tracing::error!(error = format!("{e:#}"), "starting webhook deliveries"))
        .ok();
        Background {
            workers: handle.spawn(state.engine.clone().run_workers(stop_rx.clone())),
            webhooks: webhooks.map(|w| handle.spawn(w.run(stop_rx.clone()))),
            retention: handle.spawn(state.engine.clone().run_retention(stop_rx.clone())),
            push: handle.spawn(state.engine.clone().run_push(stop_rx.clone())),
            scheduler: handle.spawn(state.engine.clone().run_scheduler(stop_rx)),
            stop,
            _runtime: runtime.map(|r| EngineRuntime(Some(r))),
        }
    }

    /// Lets the steps in flight commit, then returns.
    async fn stop(self) {
        self.stop.send(true).ok();
        self.workers.await.ok();
        self.scheduler.await.ok();
        self.retention.await.ok();
        self.push.await.ok();
        // Deliveries in flight end within their timeout and are recorded.
        if let Some(webhooks) = self.webhooks {
            webhooks.await.ok();
        }
        // What is left on the engine's runtime (the lease renewal) holds nothing: the leases
        // were released, and dropping `_runtime` shuts it down.
    }
}

/// `simba worker`: the sync workers and the scheduler without the API, until `shutdown`;
/// with `operations`, `/metrics`, `/healthz` and `/readyz` on that listener too.
pub async fn work(
    state: AppState,
    operations: Option<tokio::net::TcpListener>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let background = Background::start(&state, None);
    let (stop_serving, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = operations.map(|listener| {
        // No host check: a scraper names the pod's address, not the API's host.
        let routes = crate::api::worker_routes().with_state(state.clone());
        tracing::info!(addr = ?listener.local_addr().ok(), "serving the worker's metrics");
        tokio::spawn(async move {
            let stopped = async {
                stopped.await.ok();
            };
            if let Err(error) = axum::serve(listener, routes)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(%error, "the worker's metrics listener failed");
            }
        })
    });
    tracing::info!("simba worker is running sync jobs");
    shutdown.await;
    background.stop().await;
    checkpoint_on_stop(&state.db).await;
    stop_serving.send(()).ok();
    if let Some(served) = served {
        served.await.ok();
    }
}

/// Empties SQLite's WAL on a clean stop, so that no erased personal data stays in it
/// ([`crate::store::erasure::checkpoint`]).
async fn checkpoint_on_stop(db: &crate::store::Db) {
    if let Err(e) = crate::store::erasure::checkpoint(db).await {
        tracing::warn!(error = %e, "checkpointing the WAL on stop");
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}
