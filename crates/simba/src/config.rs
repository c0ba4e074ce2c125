//! Settings from the environment, read and validated once at start (API.md's configuration
//! table). Nothing else in Simba reads environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::domain::TrustedProxies;
use crate::store::Backend;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://simba.db?mode=rwc";
const DEFAULT_ADDR: &str = "127.0.0.1:8000";

/// Where the Host header is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    Any,
    List(Vec<String>),
}

impl AllowedHosts {
    fn parse(value: &str) -> AllowedHosts {
        let hosts: Vec<String> = value
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if hosts.is_empty() || hosts.iter().any(|h| h == "*") {
            AllowedHosts::Any
        } else {
            AllowedHosts::List(hosts)
        }
    }

    /// Whether a Host header value (with or without port) is allowed. A leading dot allows
    /// a domain and its subdomains, as Django's setting does.
    pub fn allows(&self, host_header: &str) -> bool {
        let AllowedHosts::List(hosts) = self else {
            return true;
        };
        let host = host_header.to_ascii_lowercase();
        let host = match host.rsplit_once(':') {
            // A bare IPv6 address has colons of its own; only `[...]:port` carries a port.
            Some((name, port))
                if port.chars().all(|c| c.is_ascii_digit())
                    && (!name.contains(':') || name.ends_with(']')) =>
            {
                name.to_owned()
            }
            _ => host,
        };
        hosts.iter().any(|allowed| match allowed.strip_prefix('.') {
            Some(domain) => host == domain || host.ends_with(allowed.as_str()),
            None => &host == allowed,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// What the HTTP server allows a client (`SIMBA_HTTP_*`): how long it may take to send a
/// request or to take its answer, how long it may keep an idle connection, and how many
/// connections are served at once, in all and from one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// From a new connection's opening until its first byte, and from a request's first byte
    /// until its headers are complete.
    pub header_timeout: Duration,
    /// From the end of a request's headers until its whole body has arrived.
    pub body_timeout: Duration,
    /// How long a connection may wait for its next request after its last answer.
    pub idle_timeout: Duration,
    /// How long the connection may have data to send while the client takes none of it.
    pub write_timeout: Duration,
    /// How long a shutdown waits for the answers in flight before it drops their connections.
    pub shutdown_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's listen backlog.
    pub max_connections: usize,
    /// Connections served at once from one client address (an IPv6 /64); further ones are
    /// closed as soon as they are accepted.
    pub max_connections_per_address: usize,
}

impl HttpSettings {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<HttpSettings, ConfigError> {
        let seconds = |name: &str, default: u64| match lookup(name) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => v
                .parse()
                .ok()
                .filter(|s| (1..=3600).contains(s))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    ConfigError(format!("{name} must be between 1 and 3600 (got {v:?})."))
                }),
        };
        let count = |name: &str, default: usize| match lookup(name) {
            None => Ok(default),
            Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                ConfigError(format!("{name} must be a positive number (got {v:?})."))
            }),
        };
        Ok(HttpSettings {
            header_timeout: seconds("SIMBA_HTTP_HEADER_TIMEOUT_SECONDS", 10)?,
            body_timeout: seconds("SIMBA_HTTP_BODY_TIMEOUT_SECONDS", 30)?,
            idle_timeout: seconds("SIMBA_HTTP_IDLE_TIMEOUT_SECONDS", 75)?,
            write_timeout: seconds("SIMBA_HTTP_WRITE_TIMEOUT_SECONDS", 30)?,
            shutdown_timeout: seconds("SIMBA_HTTP_SHUTDOWN_TIMEOUT_SECONDS", 20)?,
            max_connections: count("SIMBA_HTTP_MAX_CONNECTIONS", 512)?,
            max_connections_per_address: count("SIMBA_HTTP_MAX_CONNECTIONS_PER_ADDRESS", 64)?,
        })
    }
}

/// Where the `SECRET_KEY` comes from.
#[derive(Debug, Clone)]
pub enum SecretKeySource {
    /// Set in the environment.
    Given(SecretString),
    /// Embedded SQLite default: generated once and kept in this file.
    File(PathBuf),
    /// In-memory SQLite: a fresh key per process (nothing outlives it anyway).
    Ephemeral,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub backend: Backend,
    pub broker_url: Option<Url>,
    /// The RabbitMQ queue that carries sync runs (`SIMBA_BROKER_QUEUE`).
    pub broker_queue: String,
    pub secret_key: SecretKeySource,
    pub allowed_hosts: AllowedHosts,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`SIMBA_TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    pub addr: SocketAddr,
    pub bol_api_url: Url,
    pub bol_login_url: Url,
    pub log_format: LogFormat,
    pub http: HttpSettings,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>` (`SIMBA_METRICS_TOKEN`).
    pub metrics_token: Option<SecretString>,
    /// Where `simba worker` serves `/metrics`, `/healthz` and `/readyz`
    /// (`SIMBA_WORKER_METRICS_ADDR`; unset: nowhere). A worker's engine metrics live in its own
    /// process: the web role's `/metrics` cannot show them.
    pub worker_metrics_addr: Option<SocketAddr>,
    pub database_max_connections: u32,
    /// Memory for shipment list pages kept until the seller's shipments change
    /// (`SIMBA_PAGE_CACHE_MB`; 0 turns the cache off).
    pub page_cache_bytes: usize,
    /// How long a kept list page may still be served after a run's step changed the seller's
    /// shipments (`SIMBA_PAGE_CACHE_STALE_MS`; 0: never). A run's end, a push, an erasure and a
    /// shop's deletion are seen at once whatever it is.
    pub page_cache_stale: Duration,
    /// Marketplace seconds per real second: only for the sandbox, whose rate windows and
    /// token lifetimes can be scaled down; the real API runs at 1.
    pub bol_time_scale: f64,
    pub engine: EngineSettings,
    pub bol_retry: bol::RetryPolicy,
    /// Budgets assumed before the marketplace's headers say otherwise (in marketplace time).
    pub bol_assumed_limits: bol::Limits,
    /// Whether `serve` runs the sync workers and the scheduler (`--no-workers`: API only).
    pub run_workers: bool,
    /// How long dashboard sessions last.
    pub sessions: SessionSettings,
    /// How outbound webhooks are delivered.
    pub webhooks: WebhookSettings,
}

/// A setting that is missing or wrong, with the sentence an operator needs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let database_url = lookup("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        let backend: Backend = database_url.parse().map_err(ConfigError)?;
        let secret_key = match lookup("SECRET_KEY") {
            Some(key) if key.len() < 32 => {
                return Err(ConfigError(
                    "SECRET_KEY is too short: use at least 32 characters of random text \
                     (for example the output of `openssl rand -base64 32`)."
                        .into(),
                ));
            }
            Some(key) => SecretKeySource::Given(SecretString::from(key)),
            None if backend != Backend::Sqlite => {
                return Err(ConfigError(
                    "SECRET_KEY is not set: PostgreSQL and MySQL deployments must set SECRET_KEY \
                     to at least 32 characters of random text (for example \
                     `openssl rand -base64 32`), the same on every process."
                        .into(),
                ));
            }
            None => match sqlite_path(&database_url) {
                Some(path) => {
                    let mut file = path.into_os_string();
                    file.push(".secret_key");
                    SecretKeySource::File(file.into())
                }
                None => SecretKeySource::Ephemeral,
            },
        };
        let broker_url = lookup("BROKER_URL")
            .map(|v| parse_url("BROKER_URL", &v, &["amqp", "amqps"]))
            .transpose()?;
        if broker_url
            .as_ref()
            .is_some_and(|url| url.scheme() == "amqps")
            && !cfg!(feature = "amqps")
        {
            return Err(ConfigError(
                "BROKER_URL is amqps:// but this build has no TLS for the broker: build with \
                 `cargo build --release --features amqps`, or reach RabbitMQ over amqp:// on a \
                 private network."
                    .into(),
            ));
        }
        let broker_queue = lookup("SIMBA_BROKER_QUEUE").unwrap_or_else(|| "simba.sync-runs".into());
        let addr = match (lookup("SIMBA_ADDR"), lookup("PORT")) {
            (Some(addr), _) => addr.parse().map_err(|_| {
                ConfigError(format!(
                    "SIMBA_ADDR must be HOST:PORT, such as 127.0.0.1:8000 (got {addr:?})."
                ))
            })?,
            (None, Some(port)) => {
                let port: u16 = port.parse().map_err(|_| {
                    ConfigError(format!("PORT must be a port number (got {port:?})."))
                })?;
                SocketAddr::from(([0, 0, 0, 0], port))
            }
            (None, None) => DEFAULT_ADDR.parse().expect("the default address parses"),
        };
        let log_format = match lookup("SIMBA_LOG_FORMAT").as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError(format!(
                    "SIMBA_LOG_FORMAT must be human or json (got {other:?})."
                )));
            }
        };
        let database_max_connections = match lookup("SIMBA_DATABASE_MAX_CONNECTIONS") {
            Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                ConfigError(format!(
                    "SIMBA_DATABASE_MAX_CONNECTIONS must be a positive number (got {v:?})."
                ))
            })?,
            None => 16,
        };
        let page_cache_bytes = match lookup("SIMBA_PAGE_CACHE_MB") {
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|mb| *mb <= 1 << 20)
                .map(|mb| mb << 20)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "SIMBA_PAGE_CACHE_MB must be a number of megabytes, 0 to turn the cache \
                         off (got {v:?})."
                    ))
                })?,
            None => 16 << 20,
        };
        let page_cache_stale = match lookup("SIMBA_PAGE_CACHE_STALE_MS") {
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= 60_000)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "SIMBA_PAGE_CACHE_STALE_MS must be a number of milliseconds from 0 to \
                         60000 (got {v:?})."
                    ))
                })?,
            None => Duration::from_secs(1),
        };
        let bol_time_scale = match lookup("SIMBA_BOL_TIME_SCALE") {
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "SIMBA_BOL_TIME_SCALE must be a positive number (got {v:?})."
                    ))
                })?,
            None => 1.0,
        };
        let mut engine = EngineSettings::default();
        if let Some(v) = lookup("SIMBA_SYNC_LEASE_SECONDS") {
            let secs: u64 = v
                .parse()
                .ok()
                .filter(|s| (2..=3600).contains(s))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "SIMBA_SYNC_LEASE_SECONDS must be between 2 and 3600 (got {v:?})."
                    ))
                })?;
            engine.lease = std::time::Duration::from_secs(secs);
        }
        if let Some(v) = lookup("SIMBA_MAX_CONCURRENT_RUNS") {
            engine.max_concurrent_runs = v
                .parse()
                .ok()
                .filter(|n| (1..=usize::from(u16::MAX)).contains(n))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "SIMBA_MAX_CONCURRENT_RUNS must be between 1 and 65535, the most \
                         RabbitMQ's prefetch can say (got {v:?})."
                    ))
                })?;
        }
        if let Some(v) = lookup("SIMBA_SYNC_SLICE_SECONDS") {
            let secs: u64 = v
                .parse()
                .ok()
                .filter(|s| (1..=1500).contains(s))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "SIMBA_SYNC_SLICE_SECONDS must be between 1 and 1500, under RabbitMQ's \
                         30-minute delivery timeout (got {v:?})."
                    ))
                })?;
            engine.slice = std::time::Duration::from_secs(secs);
        }
        if let Some(v) = lookup("SIMBA_PUBLIC_URL") {
            engine.push.public_url = Some(public_url(v.trim())?);
        }
        if let Some(v) = lookup("SIMBA_PUSH_POLL_STRETCH") {
            engine.push.poll_stretch =
                v.parse()
                    .ok()
                    .filter(|n| (1..=96).contains(n))
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "SIMBA_PUSH_POLL_STRETCH must be between 1 and 96 (got {v:?})."
                        ))
                    })?;
        }
        if let Some(v) = lookup("SIMBA_PUSH_RECONCILE_HOURS") {
            let hours: u64 = v
                .parse()
                .ok()
                .filter(|n| (1..=168).contains(n))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "SIMBA_PUSH_RECONCILE_HOURS must be between 1 and 168 (got {v:?})."
                    ))
                })?;
            engine.push.reconcile_every = Duration::from_secs(hours * 3600);
        }
        let sessions = session_settings(&lookup)?;
        let webhooks = WebhookSettings {
            allow_private: match lookup("SIMBA_WEBHOOK_ALLOW_PRIVATE").as_deref() {
                None | Some("0") => false,
                Some("1") => true,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "SIMBA_WEBHOOK_ALLOW_PRIVATE must be 0 or 1 (got {other:?})."
                    )));
                }
            },
            ..WebhookSettings::default()
        };
        let trusted_proxies = lookup("SIMBA_TRUSTED_PROXIES")
            .map(|v| {
                v.parse().map_err(|entry| {
                    ConfigError(format!(
                        "SIMBA_TRUSTED_PROXIES must be comma-separated addresses or CIDR blocks \
                         of your reverse proxies, such as 10.0.0.0/8 or fd00::/8 ({entry:?} is \
                         neither, has bits set past its prefix, or is wider than /8, which would \
                         let clients name their own address)."
                    ))
                })
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Config {
            database_url,
            backend,
            broker_url,
            broker_queue,
            secret_key,
            allowed_hosts: AllowedHosts::parse(
                &lookup("ALLOWED_HOSTS").unwrap_or_else(|| "*".into()),
            ),
            trusted_proxies,
            addr,
            bol_api_url: parse_url(
                "SIMBA_BOL_API_URL",
                &lookup("SIMBA_BOL_API_URL").unwrap_or_else(|| "https://api.bol.com".into()),
                &["http", "https"],
            )?,
            bol_login_url: parse_url(
                "SIMBA_BOL_LOGIN_URL",
                &lookup("SIMBA_BOL_LOGIN_URL").unwrap_or_else(|| "https://login.bol.com".into()),
                &["http", "https"],
            )?,
            log_format,
            http: HttpSettings::from_lookup(&lookup)?,
            metrics_token: lookup("SIMBA_METRICS_TOKEN").map(SecretString::from),
            worker_metrics_addr: lookup("SIMBA_WORKER_METRICS_ADDR")
                .map(|addr| {
                    addr.parse().map_err(|_| {
                        ConfigError(format!(
                            "SIMBA_WORKER_METRICS_ADDR must be HOST:PORT, such as 0.0.0.0:9100 \
                             (got {addr:?})."
                        ))
                    })
                })
                .transpose()?,
            database_max_connections,
            page_cache_bytes,
            page_cache_stale,
            bol_time_scale,
            engine,
            bol_retry: bol::RetryPolicy::default(),
            bol_assumed_limits: bol::Limits::published(),
            run_workers: true,
            sessions,
            webhooks,
        })
    }

    /// Settings for a test: the given database, a fixed key, any host, an engine that reacts
    /// quickly and retries without long waits.
    pub fn for_tests(database_url: &str) -> Config {
        let mut config = Config::from_lookup(|name| match name {
            "DATABASE_URL" => Some(database_url.to_owned()),
            "SECRET_KEY" => Some("test-secret-key-test-secret-key-0123456789".into()),
            "SIMBA_ADDR" => Some("127.0.0.1:0".into()),
            _ => None,
        })
        .expect("test settings are valid");
        config.engine.poll_interval = std::time::Duration::from_millis(100);
        config.engine.lease = std::time::Duration::from_secs(5);
        config.bol_retry.base_delay = std::time::Duration::from_millis(10);
        config.bol_retry.max_delay = std::time::Duration::from_millis(100);
        // Fault-injection tests fail one answer in five: eight retries make a spurious give-up
        // a one-in-a-million event.
        config.bol_retry.max_retries = 8;
        // Tests run receivers on 127.0.0.1 and cannot wait the production schedule's 5 s.
        config.webhooks.allow_private = true;
        config.webhooks.retry_delays = vec![Duration::from_millis(200); 3];
        config.webhooks.poll_interval = Duration::from_millis(50);
        config.webhooks.quiet_time = Duration::from_millis(300);
        config.engine.push.tick = Duration::from_millis(50);
        config.engine.push.health_check = Duration::from_secs(1);
        config.engine.push.retry_delay = Duration::from_secs(1);
        config.engine.push.key_refetch_floor = Duration::from_millis(200);
        config
    }

    /// The marketplace client's settings.
    pub fn bol_client(&self) -> bol::ClientConfig {
        bol::ClientConfig {
            api_url: self.bol_api_url.as_str().trim_end_matches('/').to_owned(),
            login_url: self.bol_login_url.as_str().trim_end_matches('/').to_owned(),
            retry: self.bol_retry,
            limits: self.bol_assumed_limits.time_scaled(self.bol_time_scale),
            ..bol::ClientConfig::default()
        }
    }
}

/// How long dashboard sessions last (`SIMBA_SESSION_IDLE_MINUTES`,
/// `SIMBA_SESSION_MAX_AGE_HOURS`). Configuration only: when a given session ends is
/// `auth::session`'s rule, so that the settings do not depend on `auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    pub idle: Duration,
    pub max_age: Duration,
}

impl Default for SessionSettings {
    /// Two idle hours cover a lunch break or a long meeting with a sync page left open; twelve
    /// hours cover a working day. A session used without pause for longer is more likely a
    /// copied cookie than a seller, and logging in once a day costs little.
    fn default() -> Self {
        SessionSettings {
            idle: Duration::from_secs(2 * 60 * 60),
            max_age: Duration::from_secs(12 * 60 * 60),
        }
    }
}

fn session_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<SessionSettings, ConfigError> {
    const MAX_HOURS: u64 = 24 * 366;
    let mut sessions = SessionSettings::default();
    if let Some(v) = lookup("SIMBA_SESSION_MAX_AGE_HOURS") {
        let hours: u64 = v
            .parse()
            .ok()
            .filter(|h| (1..=MAX_HOURS).contains(h))
            .ok_or_else(|| {
                ConfigError(format!(
                    "SIMBA_SESSION_MAX_AGE_HOURS must be a number of hours from 1 to {MAX_HOURS} \
                     (got {v:?})."
                ))
            })?;
        sessions.max_age = Duration::from_secs(hours * 3600);
    }
    match lookup("SIMBA_SESSION_IDLE_MINUTES") {
        Some(v) => {
            let minutes: u64 = v.parse().ok().filter(|m| *m >= 1).ok_or_else(|| {
                ConfigError(format!(
                    "SIMBA_SESSION_IDLE_MINUTES must be a positive number of minutes (got {v:?})."
                ))
            })?;
            sessions.idle = Duration::from_secs(minutes.saturating_mul(60));
        }
        // Whoever shortens the absolute lifetime alone wants shorter sessions, not a refusal
        // to start over a default they never chose.
        None => sessions.idle = sessions.idle.min(sessions.max_age),
    }
    if sessions.idle > sessions.max_age {
        return Err(ConfigError(format!(
            "SIMBA_SESSION_IDLE_MINUTES ({} minutes) must not exceed the sessions' absolute \
             lifetime, SIMBA_SESSION_MAX_AGE_HOURS ({} hours).",
            sessions.idle.as_secs() / 60,
            sessions.max_age.as_secs() / 3600
        )));
    }
    Ok(sessions)
}

fn parse_url(name: &str, value: &str, schemes: &[&str]) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError(format!("{name} is not a valid URL ({e}): {value:?}.")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError(format!(
            "{name} must be a {} URL (got {:?}).",
            schemes.join(" or "),
            url.scheme()
        )));
    }
    Ok(url)
}

/// The file of a `sqlite:` URL, or `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.strip_prefix("//").unwrap_or(path);
    if path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// How outbound webhooks are delivered (`SIMBA_WEBHOOK_ALLOW_PRIVATE`; the rest are fixed
/// outside tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Whether endpoints may be `http://` and reach private, loopback and other internal
    /// addresses: for a receiver on the same machine or network, never for a shared service.
    pub allow_private: bool,
    /// The wait before each retry of a failed delivery; after the last, the delivery fails.
    pub retry_delays: Vec<Duration>,
    /// How long one attempt may take, from connecting to the end of the answer's headers.
    pub attempt_timeout: Duration,
    /// How often idle delivery workers look for due deliveries and changes to turn into events.
    pub poll_interval: Duration,
    /// How long a shop's changed shipments wait, with no run active, before a partial batch goes.
    pub quiet_time: Duration,
    /// Deliveries one process sends at once, to all endpoints.
    pub max_concurrent: usize,
    /// Deliveries one process sends at once to one endpoint.
    pub max_concurrent_per_endpoint: usize,
}

impl Default for WebhookSettings {
    /// The retries are the Standard Webhooks suggestion (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    /// 10 h): about 28 hours, so a receiver down for a day still gets every event.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        WebhookSettings {
            allow_private: false,
            retry_delays: vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(300),
                minutes(600),
                minutes(600),
            ],
            attempt_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            quiet_time: Duration::from_secs(5),
            max_concurrent: 64,
            max_concurrent_per_endpoint: 4,
        }
    }
}

/// Runs one process drives at once unless `SIMBA_MAX_CONCURRENT_RUNS` says otherwise.
pub const DEFAULT_MAX_CONCURRENT_RUNS: usize = 10_000;

/// How the engine paces itself.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long a shop's lease lasts without renewal: the time before another worker resumes
    /// the run of a worker that died.
    pub lease: Duration,
    /// How often idle workers look for queued runs they were not told about.
    pub poll_interval: Duration,
    /// Runs one process drives at once (many shops in parallel, one driver per shop); with
    /// RabbitMQ, the consumer's prefetch. High by default: a run waiting for its rate budget
    /// costs a few kilobytes and no thread or connection, so each shop's own limits set the
    /// pace, not this (`SIMBA_MAX_CONCURRENT_RUNS`).
    pub max_concurrent_runs: usize,
    /// Details fetched concurrently in one step.
    pub detail_batch: usize,
    /// How often the scheduler looks for shops due an automatic sync.
    pub schedule_interval: Duration,
    /// The longest a worker drives one run on a broker delivery before handing the run back to
    /// the queue: RabbitMQ cancels a consumer whose delivery stays unacknowledged for 30 minutes
    /// (its `consumer_timeout`).
    pub slice: Duration,
    /// Push notifications from the marketplace.
    pub push: PushSettings,
}

/// Push notifications: where the marketplace reaches this deployment (`SIMBA_PUBLIC_URL`),
/// how often subscriptions are looked after, and the receiver's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSettings {
    /// `https://...`, or `http://` to a loopback address, without a trailing slash; without it
    /// no subscription is made and shops with push wait as `pending`.
    pub public_url: Option<String>,
    /// How often the manager and the notification worker look for work.
    pub tick: Duration,
    /// How often an active subscription is read back, to notice the marketplace disabled it.
    pub health_check: Duration,
    /// How long after a failed marketplace call the manager tries again.
    pub retry_delay: Duration,
    /// The shortest time between two fetches of the signature keys (bol allows a few an hour).
    pub key_refetch_floor: Duration,
    /// Notifications older than this (by their timestamp) are refused as replays.
    pub max_event_age: Duration,
    /// While a shop's push is active, its automatic incremental syncs come this many times less
    /// often (`SIMBA_PUSH_POLL_STRETCH`, 1 to 96; 1 keeps the interval).
    pub poll_stretch: u32,
    /// How often an active subscription's shop is reconciled with the marketplace's 3-month
    /// window (`SIMBA_PUSH_RECONCILE_HOURS`, 1 to 168).
    pub reconcile_every: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings {
            public_url: None,
            tick: Duration::from_secs(1),
            health_check: Duration::from_secs(300),
            retry_delay: Duration::from_secs(60),
            key_refetch_floor: Duration::from_secs(300),
            max_event_age: Duration::from_secs(3600),
            poll_stretch: 4,
            reconcile_every: Duration::from_secs(24 * 3600),
        }
    }
}

/// `SIMBA_PUBLIC_URL`: an `https://` URL, or `http://` to a loopback address (tests, a local
/// sandbox), with no query or fragment; returned without a trailing slash.
fn public_url(value: &str) -> Result<String, ConfigError> {
    let fail = |why: &str| {
        ConfigError(format!(
            "SIMBA_PUBLIC_URL must be an https:// URL, or http:// to a loopback address, with no \
             query or fragment ({why}: {value:?})."
        ))
    };
    let url = url::Url::parse(value).map_err(|_| fail("not a URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(fail("no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(fail("not https")),
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(fail("a query, fragment or user"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
            max_concurrent_runs: DEFAULT_MAX_CONCURRENT_RUNS,
            detail_batch: 10,
            schedule_interval: Duration::from_secs(5),
            slice: Duration::from_secs(600),
            push: PushSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn no_configuration_at_all_gives_the_embedded_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.addr.to_string(), "127.0.0.1:8000");
        assert!(
            matches!(c.secret_key, SecretKeySource::File(ref p) if p.to_str() == Some("simba.db.secret_key"))
        );
        assert_eq!(c.allowed_hosts, AllowedHosts::Any);
        assert_eq!(c.bol_api_url.as_str(), "https://api.bol.com/");
    }

    #[test]
    fn postgres_without_a_secret_key_is_refused_with_a_sentence() {
        let error = config(&[("DATABASE_URL", "postgres://localhost/simba")]).unwrap_err();
        assert!(error.to_string().contains("SECRET_KEY is not set"));
        let error = config(&[("DATABASE_URL", "mysql://root@localhost/simba")]).unwrap_err();
        assert!(error.to_string().contains("SECRET_KEY"));
    }

    #[test]
    fn a_short_secret_key_is_refused() {
        assert!(config(&[("SECRET_KEY", "short")]).is_err());
    }

    #[test]
    fn port_binds_every_interface_and_simba_addr_wins() {
        assert_eq!(
            config(&[("PORT", "5000")]).unwrap().addr.to_string(),
            "0.0.0.0:5000"
        );
        let c = config(&[("PORT", "5000"), ("SIMBA_ADDR", "127.0.0.1:9")]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:9");
        assert!(config(&[("PORT", "x")]).is_err());
    }

    #[test]
    fn a_worker_serves_its_metrics_only_where_told() {
        assert_eq!(config(&[]).unwrap().worker_metrics_addr, None);
        let c = config(&[("SIMBA_WORKER_METRICS_ADDR", "0.0.0.0:9100")]).unwrap();
        assert_eq!(c.worker_metrics_addr.unwrap().to_string(), "0.0.0.0:9100");
        let error = config(&[("SIMBA_WORKER_METRICS_ADDR", "9100")]).unwrap_err();
        assert!(error.to_string().contains("SIMBA_WORKER_METRICS_ADDR"));
    }

    #[test]
    fn urls_are_checked() {
        assert!(config(&[("BROKER_URL", "redis://x")]).is_err());
        assert!(config(&[("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")]).is_ok());
        assert!(config(&[("SIMBA_BOL_API_URL", "ftp://x")]).is_err());
        assert!(config(&[("DATABASE_URL", "oracle://x")]).is_err());
    }

    #[test]
    fn session_lifetimes_default_to_two_idle_hours_and_twelve_in_all() {
        let c = config(&[]).unwrap();
        assert_eq!(c.sessions.idle, Duration::from_secs(2 * 3600));
        assert_eq!(c.sessions.max_age, Duration::from_secs(12 * 3600));
        let c = config(&[
            ("SIMBA_SESSION_IDLE_MINUTES", "15"),
            ("SIMBA_SESSION_MAX_AGE_HOURS", "168"),
        ])
        .unwrap();
        assert_eq!(c.sessions.idle, Duration::from_secs(15 * 60));
        assert_eq!(c.sessions.max_age, Duration::from_secs(7 * 24 * 3600));
    }

    #[test]
    fn an_absolute_lifetime_under_the_default_idle_time_shortens_it() {
        let c = config(&[("SIMBA_SESSION_MAX_AGE_HOURS", "1")]).unwrap();
        assert_eq!(c.sessions.idle, Duration::from_secs(3600));
        assert_eq!(c.sessions.max_age, Duration::from_secs(3600));
    }

    #[test]
    fn bad_session_lifetimes_stop_the_start_with_a_sentence() {
        for (name, value) in [
            ("SIMBA_SESSION_IDLE_MINUTES", "0"),
            ("SIMBA_SESSION_IDLE_MINUTES", "-5"),
            ("SIMBA_SESSION_IDLE_MINUTES", "2h"),
            ("SIMBA_SESSION_MAX_AGE_HOURS", "0"),
            ("SIMBA_SESSION_MAX_AGE_HOURS", "100000"),
        ] {
            let error = config(&[(name, value)]).unwrap_err().to_string();
            assert!(error.starts_with(name), "{error}");
        }
        let error = config(&[
            ("SIMBA_SESSION_IDLE_MINUTES", "121"),
            ("SIMBA_SESSION_MAX_AGE_HOURS", "2"),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("must not exceed"), "{error}");
    }

    #[test]
    fn trusted_proxies_are_none_by_default_and_checked() {
        assert_eq!(
            config(&[]).unwrap().trusted_proxies,
            TrustedProxies::default()
        );
        let c = config(&[("SIMBA_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]).unwrap();
        assert_eq!(
            c.trusted_proxies,
            "10.0.0.0/8,127.0.0.1".parse::<TrustedProxies>().unwrap()
        );
        for bad in ["10.0.0.0/40", "10.0.0.1/8", "proxy"] {
            let error = config(&[("SIMBA_TRUSTED_PROXIES", bad)])
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("SIMBA_TRUSTED_PROXIES"), "{error}");
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn private_webhook_targets_are_off_unless_set_to_one() {
        assert!(!config(&[]).unwrap().webhooks.allow_private);
        assert!(
            config(&[("SIMBA_WEBHOOK_ALLOW_PRIVATE", "1")])
                .unwrap()
                .webhooks
                .allow_private
        );
        let error = config(&[("SIMBA_WEBHOOK_ALLOW_PRIVATE", "yes")]).unwrap_err();
        assert!(error.to_string().starts_with("SIMBA_WEBHOOK_ALLOW_PRIVATE"));
        let total: Duration = WebhookSettings::default().retry_delays.iter().sum();
        assert!(total >= Duration::from_secs(24 * 3600));
    }

    #[test]
    fn the_public_url_is_https_or_loopback_http() {
        let url = |v: &str| config(&[("SIMBA_PUBLIC_URL", v)]).map(|c| c.engine.push.public_url);
        assert_eq!(
            url("https://simba.example/").unwrap().as_deref(),
            Some("https://simba.example")
        );
        assert_eq!(
            url("http://127.0.0.1:8000").unwrap().as_deref(),
            Some("http://127.0.0.1:8000")
        );
        for bad in [
            "http://simba.example",
            "ftp://x",
            "https://x/?a=1",
            "not a url",
        ] {
            let error = url(bad).unwrap_err().to_string();
            assert!(error.starts_with("SIMBA_PUBLIC_URL"), "{bad}: {error}");
        }
        assert!(config(&[("SIMBA_PUSH_POLL_STRETCH", "0")]).is_err());
        assert!(config(&[("SIMBA_PUSH_RECONCILE_HOURS", "0")]).is_err());
        let hourly = config(&[("SIMBA_PUSH_RECONCILE_HOURS", "1")]).unwrap();
        assert_eq!(
            hourly.engine.push.reconcile_every,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn in_memory_sqlite_gets_an_ephemeral_key() {
        let c = config(&[("DATABASE_URL", "sqlite::memory:")]).unwrap();
        assert!(matches!(c.secret_key, SecretKeySource::Ephemeral));
    }

    #[test]
    fn http_limits_have_defaults_and_are_checked() {
        let defaults = config(&[]).unwrap().http;
        assert_eq!(defaults.header_timeout, Duration::from_secs(10));
        assert_eq!(defaults.body_timeout, Duration::from_secs(30));
        assert_eq!(defaults.idle_timeout, Duration::from_secs(75));
        assert_eq!(defaults.write_timeout, Duration::from_secs(30));
        assert_eq!(defaults.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(defaults.max_connections, 512);
        assert_eq!(defaults.max_connections_per_address, 64);
        let set = config(&[
            ("SIMBA_HTTP_HEADER_TIMEOUT_SECONDS", "5"),
            ("SIMBA_HTTP_BODY_TIMEOUT_SECONDS", "20"),
            ("SIMBA_HTTP_IDLE_TIMEOUT_SECONDS", "120"),
            ("SIMBA_HTTP_WRITE_TIMEOUT_SECONDS", "60"),
            ("SIMBA_HTTP_SHUTDOWN_TIMEOUT_SECONDS", "8"),
            ("SIMBA_HTTP_MAX_CONNECTIONS", "64"),
            ("SIMBA_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "4"),
        ])
        .unwrap()
        .http;
        assert_eq!(set.header_timeout, Duration::from_secs(5));
        assert_eq!(set.body_timeout, Duration::from_secs(20));
        assert_eq!(set.idle_timeout, Duration::from_secs(120));
        assert_eq!(set.write_timeout, Duration::from_secs(60));
        assert_eq!(set.shutdown_timeout, Duration::from_secs(8));
        assert_eq!(set.max_connections, 64);
        assert_eq!(set.max_connections_per_address, 4);
        for (name, value) in [
            ("SIMBA_HTTP_HEADER_TIMEOUT_SECONDS", "0"),
            ("SIMBA_HTTP_BODY_TIMEOUT_SECONDS", "1h"),
            ("SIMBA_HTTP_IDLE_TIMEOUT_SECONDS", "3601"),
            ("SIMBA_HTTP_WRITE_TIMEOUT_SECONDS", "0"),
            ("SIMBA_HTTP_SHUTDOWN_TIMEOUT_SECONDS", "-1"),
            ("SIMBA_HTTP_MAX_CONNECTIONS", "0"),
            ("SIMBA_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "many"),
        ] {
            let error = config(&[(name, value)]).unwrap_err();
            assert!(error.to_string().starts_with(name), "{error}");
        }
    }

    #[test]
    fn allowed_hosts_match_names_ports_and_subdomains() {
        let hosts = AllowedHosts::parse("example.com, .shop.nl");
        assert!(hosts.allows("example.com"));
        assert!(hosts.allows("EXAMPLE.com:8000"));
        assert!(hosts.allows("a.shop.nl"));
        assert!(hosts.allows("shop.nl"));
        assert!(!hosts.allows("evil.com"));
        assert!(!hosts.allows("badshop.nl"));
        assert!(AllowedHosts::parse("*").allows("anything"));
    }
}
