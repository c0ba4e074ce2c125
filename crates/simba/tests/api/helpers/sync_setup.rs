//! `SyncSetup`: an app against a bol sandbox, a seller and their sandbox shops, as the sync
//! tests need them.

use bol_sandbox::{AccountConfig, Faults, Limits, Sandbox, SandboxConfig};
use simba::config::Config;

use super::{Backend, Seller, TestApp, say_skipped};

/// Builds the sandbox and the app of a sync test.
///
/// By default the sandbox has no rate limits and the app no workers of its own: the test
/// drives runs with [`TestApp::run_pending_syncs`]. A test of what happens while a run is in
/// flight asks for [`SyncSetup::background_workers`].
pub struct SyncSetup {
    backend: Backend,
    sandbox: SandboxConfig,
    shops: u32,
    workers: bool,
    adjust: Vec<Adjust>,
}

type Adjust = Box<dyn FnOnce(&mut Config)>;

/// What [`SyncSetup::spawn`] made: seller "anna" with shops `sandbox 1..N` on accounts
/// `sandbox-1..N`. The sandbox stops when dropped: a test that does not use it still binds it
/// (`sandbox: _sandbox`), as `..` would drop it at once.
pub struct SyncTest {
    pub app: TestApp,
    pub sandbox: Sandbox,
    pub seller: Seller,
    pub shops: Vec<i64>,
}

impl SyncSetup {
    pub fn new(backend: Backend) -> SyncSetup {
        SyncSetup {
            backend,
            sandbox: SandboxConfig {
                limits: Limits::OFF,
                ..SandboxConfig::default()
            },
            shops: 1,
            workers: false,
            adjust: Vec::new(),
        }
    }

    /// One account, `sandbox-1`, with `fbr` FBR and `fbb` FBB shipments.
    pub fn shipments(self, fbr: u32, fbb: u32) -> SyncSetup {
        self.accounts(&[(fbr, fbb)])
    }

    /// Accounts `sandbox-1..N`, the N-th with the N-th `(fbr, fbb)` shipment counts.
    pub fn accounts(mut self, counts: &[(u32, u32)]) -> SyncSetup {
        self.sandbox.accounts = counts
            .iter()
            .zip(1..)
            .map(|(&(fbr, fbb), n)| AccountConfig {
                client_id: format!("sandbox-{n}"),
                client_secret: format!("secret-{n}"),
                fbr,
                fbb,
            })
            .collect();
        self
    }

    pub fn limits(mut self, limits: Limits) -> SyncSetup {
        self.sandbox.limits = limits;
        self
    }

    /// The limits bol publishes (list 25, detail 50 a minute) and 20 token calls.
    pub fn published_limits(self) -> SyncSetup {
        self.limits(Limits::default())
    }

    /// How much faster than real time the sandbox's windows and tokens pass; the app is told.
    pub fn time_scale(mut self, scale: f64) -> SyncSetup {
        self.sandbox.time_scale = scale;
        self
    }

    /// Token lifetime in (unscaled) seconds.
    pub fn token_lifetime(mut self, seconds: u64) -> SyncSetup {
        self.sandbox.token_lifetime = seconds;
        self
    }

    pub fn faults(mut self, faults: Faults) -> SyncSetup {
        self.sandbox.faults = faults;
        self
    }

    /// How many sandbox shops [`SyncSetup::spawn`] adds for the seller (one by default).
    pub fn shops(mut self, count: u32) -> SyncSetup {
        self.shops = count;
        self
    }

    /// The app runs its own workers and scheduler, as `simba serve` does; the test waits for
    /// runs by polling.
    pub fn background_workers(mut self) -> SyncSetup {
        self.workers = true;
        self
    }

    /// Adjusts the app's settings further, after the sandbox's.
    pub fn config(mut self, adjust: impl FnOnce(&mut Config) + 'static) -> SyncSetup {
        self.adjust.push(Box::new(adjust));
        self
    }

    /// The sandbox and the app; `None` (and a note) when the backend is not configured.
    pub async fn spawn_app(self) -> Option<(TestApp, Sandbox)> {
        if let Some(var) = self.backend.env_var()
            && std::env::var(var).ok().filter(|v| !v.is_empty()).is_none()
        {
            say_skipped(self.backend, var);
            return None;
        }
        let scale = self.sandbox.time_scale;
        // A sandbox without limits sends no rate-limit headers to learn from.
        let unlimited = self.sandbox.limits == Limits::OFF;
        let sandbox = Sandbox::start(self.sandbox)
            .await
            .expect("the sandbox starts");
        let base: url::Url = sandbox.base_url().parse().unwrap();
        let workers = self.workers;
        let adjust = self.adjust;
        let app = TestApp::spawn_with(self.backend, |config| {
            config.bol_api_url = base.clone();
            config.bol_login_url = base;
            config.bol_time_scale = scale;
            config.run_workers = workers;
            if unlimited {
                config.bol_assumed_limits = bol::Limits {
                    token: None,
                    list: None,
                    detail: None,
                };
            }
            for adjust in adjust {
                adjust(config);
            }
        })
        .await?;
        Some((app, sandbox))
    }

    /// [`SyncSetup::spawn_app`], seller "anna" and their sandbox shops.
    pub async fn spawn(self) -> Option<SyncTest> {
        let shops = self.shops;
        let (app, sandbox) = self.spawn_app().await?;
        let seller = app.register("anna").await;
        let mut ids = Vec::new();
        for n in 1..=shops {
            ids.push(app.create_sandbox_shop(&seller, n).await);
        }
        Some(SyncTest {
            app,
            sandbox,
            seller,
            shops: ids,
        })
    }
}
