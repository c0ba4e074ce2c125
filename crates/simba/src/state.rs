//! The state every request handler may use. It sits above the services whose handles it holds
//! and below the edges (API, dashboard) that take it, so that neither the edges nor the
//! extractors import `app`, which builds it and wires them together.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::AuthContext;
use crate::auth::cache::AuthCache;
use crate::auth::throttle::ChecksInFlight;
use crate::config::{Config, SessionSettings};
use crate::crypto::Cipher;
use crate::domain::TrustedProxies;
use crate::services::page_cache::PageCache;
use crate::store::Db;
use crate::sync::Engine;

/// Everything a request handler may use; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub cipher: Cipher,
    pub config: Arc<Config>,
    pub auth_cache: Arc<AuthCache>,
    pub password_checks: Arc<ChecksInFlight>,
    pub page_cache: Arc<PageCache>,
    pub metrics: PrometheusHandle,
    pub engine: Arc<Engine>,
}

impl AuthContext for AppState {
    fn db(&self) -> &Db {
        &self.db
    }

    fn auth_cache(&self) -> &AuthCache {
        &self.auth_cache
    }

    fn sessions(&self) -> &SessionSettings {
        &self.config.sessions
    }

    fn trusted_proxies(&self) -> &TrustedProxies {
        &self.config.trusted_proxies
    }
}
