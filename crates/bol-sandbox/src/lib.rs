//! A faithful local simulator of the bol.com Retailer API v10 for shipments: client-credentials
//! tokens, the shipments list and detail, push subscriptions with signed deliveries,
//! per-account rate limits, switchable faults and exact call accounting. Tests start it in-process on port 0; `simba sandbox` runs it by hand.

mod arrivals;
mod clock;
mod config;
mod control;
mod data;
mod faults;
mod gateway;
mod http;
mod ids;
mod prng;
mod push;
mod ratelimit;
mod server;
mod shipments;
mod state;
mod stats;
mod token;

pub use config::{AccountConfig, Limits, SandboxArgs, SandboxConfig};
pub use faults::Faults;
pub use push::{PushFaults, PushStats};
pub use stats::{AccountStats, GroupStats, Stats};

use axum::{
    Router,
    routing::{get, post},
};
use state::Shared;
use std::{io, net::SocketAddr, sync::Arc};
use tokio::{sync::watch, task::JoinHandle};

/// A running sandbox. Dropping it stops the server too; `shutdown` also waits for it.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/token", post(token::token))
        .route("/retailer/shipments", get(shipments::list))
        .route("/retailer/shipments/{id}", get(shipments::detail))
        .route(
            "/retailer/subscriptions",
            get(push::list).post(push::create),
        )
        .route(
            "/retailer/subscriptions/signature-keys",
            get(push::signature_keys),
        )
        .route(
            "/retailer/subscriptions/{id}",
            get(push::get_one).put(push::update).delete(push::delete),
        )
        .route("/shared/process-status/{id}", get(push::process_status))
        .merge(control::router())
        .with_state(shared)
}

impl Sandbox {
    /// Binds `config.addr` and starts serving.
    pub async fn start(config: SandboxConfig) -> io::Result<Sandbox> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (shared, events) = Shared::new(&config);
        let shared = Arc::new(shared);
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(());
        let mut tasks = vec![
            tokio::spawn(server::serve(
                listener,
                router(shared.clone()),
                stopped.clone(),
            )),
            tokio::spawn(push::run(shared.clone(), events, stopped.clone())),
            tokio::spawn(push::transport::run(shared.clone(), stopped.clone())),
        ];
        let (fbr, fbb) = config.arrivals_per_minute;
        if fbr > 0.0 || fbb > 0.0 {
            tasks.push(tokio::spawn(arrivals::run(
                shared.clone(),
                (fbr, fbb),
                stopped,
            )));
        }
        Ok(Sandbox {
            addr,
            shared,
            stop,
            tasks,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`: the API is at `{base}/retailer/...`, tokens at `{base}/token`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counters, as `GET /_sandbox/stats` reports them.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Clears the counters and the memory behind wasted-call accounting.
    pub fn reset_stats(&self) {
        self.shared.reset_stats();
    }

    /// New shipments for an account, shipped now (so the newest in lists). Unknown client ids
    /// are ignored.
    pub fn add_shipments(&self, account_client_id: &str, fbr: u32, fbb: u32) {
        self.shared
            .add_shipments(account_client_id, u64::from(fbr), u64::from(fbb));
    }

    /// Invalidates every token issued so far.
    pub fn revoke_tokens(&self) {
        token::revoke_all(&self.shared);
    }

    /// Replaces the fault settings; rates outside `[0, 1]` are clamped.
    pub fn set_faults(&self, mut faults: Faults) {
        for rate in [
            &mut faults.error_rate,
            &mut faults.malformed_rate,
            &mut faults.truncated_rate,
            &mut faults.drop_rate,
        ] {
            *rate = rate.clamp(0.0, 1.0);
        }
        self.shared.faults.set(&faults);
    }

    /// Replaces the push delivery switches; rates outside `[0, 1]` are clamped.
    pub fn set_push_faults(&self, mut faults: PushFaults) {
        faults.drop_rate = faults.drop_rate.clamp(0.0, 1.0);
        faults.duplicate_rate = faults.duplicate_rate.clamp(0.0, 1.0);
        self.shared.push.set_faults(faults);
    }

    /// Switches `UPDATE_TRANSPORT_EVENT` notifications on or off (on by default). Transport
    /// changes while off are never pushed, not even after switching on again.
    pub fn set_transport_updates(&self, enabled: bool) {
        self.shared.push.set_transport_updates(enabled);
    }

    /// Makes a new signing key pair; the previous public key stays published beside it.
    pub async fn rotate_push_keys(&self) {
        self.shared.push.rotate_keys().await;
    }

    /// Disables every push subscription, as bol does after ten failed deliveries.
    pub fn disable_push_subscriptions(&self) {
        self.shared.push.disable_all();
    }

    /// Stops serving, aborting open connections, and waits for the server to end.
    pub async fn shutdown(self) {
        let Sandbox { stop, tasks, .. } = self;
        drop(stop);
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Runs a sandbox for `simba sandbox` until Ctrl-C or SIGTERM, printing where it listens and
/// the credentials of its accounts.
pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let sandbox = Sandbox::start(config.clone()).await?;
    println!("bol sandbox listening on {}", sandbox.base_url());
    println!("  token:     POST {}/token", sandbox.base_url());
    println!(
        "  shipments: GET  {}/retailer/shipments",
        sandbox.base_url()
    );
    println!("  stats:     GET  {}/_sandbox/stats", sandbox.base_url());
    for a in &config.accounts {
        println!(
            "  account {} secret {} ({} FBR, {} FBB)",
            a.client_id, a.client_secret, a.fbr, a.fbb
        );
    }
    shutdown_signal().await;
    sandbox.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
