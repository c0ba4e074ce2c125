//! `TestApp`: the real application on port 0 with a fresh database, typed request helpers,
//! and the captured log output of the whole test run.

use std::io::Write;
use std::sync::{Arc, Mutex, Once, OnceLock};

use serde_json::{Value, json};
use simba::app::{self, AppState};
use simba::config::Config;
use simba::domain::{FulfilmentMethod, Timestamp};

pub mod broker;
mod database;
pub mod sync_setup;

use database::TestDatabase;

/// Every database backend the suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

impl Backend {
    pub fn env_var(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("SIMBA_TEST_POSTGRES_URL"),
            Backend::Mysql => Some("SIMBA_TEST_MYSQL_URL"),
        }
    }
}

/// Generates one test per backend from `async fn name(app: TestApp)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                $crate::helpers::run($crate::helpers::Backend::Sqlite, super::$name).await
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                $crate::helpers::run($crate::helpers::Backend::Postgres, super::$name).await
            })*
        }
        mod mysql {
            $(#[tokio::test] async fn $name() {
                $crate::helpers::run($crate::helpers::Backend::Mysql, super::$name).await
            })*
        }
    };
}

/// Generates one test per backend from `async fn name(backend: Backend)`, each on a runtime
/// with two worker threads, for tests that start their own app (with a sandbox, say).
#[macro_export]
macro_rules! multi_thread_backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() {
                super::$name($crate::helpers::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() {
                super::$name($crate::helpers::Backend::Postgres).await
            })*
        }
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() {
                super::$name($crate::helpers::Backend::Mysql).await
            })*
        }
    };
}

/// Runs `test` against a fresh app on `backend`, or says once that the backend is skipped.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run_with(backend, |_| {}, test).await
}

/// [`run`] with the app's settings adjusted by `adjust`.
pub async fn run_with<F, Fut>(backend: Backend, adjust: impl FnOnce(&mut Config), test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(app) = TestApp::spawn_with(backend, adjust).await else {
        return;
    };
    test(app).await;
}

/// The log output of every app in this test process, for tests that search it.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(Default::default)
}

/// Collects log output; with `SIMBA_TEST_LOG` set it also goes to stderr, for debugging.
#[derive(Clone)]
struct BufferWriter {
    buffer: Arc<Mutex<Vec<u8>>>,
    echo: bool,
}

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.echo {
            std::io::stderr().write_all(buf)?;
        }
        self.buffer.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_log_capture() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let buffer = log_buffer().clone();
        tracing_subscriber::fmt()
            .with_env_filter("trace,sqlx=info,hyper=info,h2=info,reqwest=info")
            .with_writer(move || BufferWriter {
                buffer: buffer.clone(),
                echo: std::env::var_os("SIMBA_TEST_LOG").is_some(),
            })
            .with_ansi(false)
            .init();
    });
}

fn unique_name() -> String {
    use rand::Rng;
    format!("simba_test_{:016x}", rand::rng().random::<u64>())
}

/// Says once per backend, past the test harness's output capture, that it is skipped.
fn say_skipped(backend: Backend, var: &str) {
    static SAID: Mutex<Vec<Backend>> = Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap();
    if !said.contains(&backend) {
        said.push(backend);
        let _ = writeln!(
            std::io::stderr(),
            "note: {backend:?} tests skipped: {var} is not set (.ci/run sets it)"
        );
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with `status` and returns its body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        assert!(
            body["title"].is_string() && body["detail"].is_string(),
            "{body}"
        );
        body
    }
}

/// An answer read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and the headers.
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Reads one answer (its head, and as much body as its `Content-Length` says) from `stream`;
/// `None` when the connection closes or `limit` passes first.
pub async fn read_response(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: std::time::Duration,
) -> Option<RawResponse> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
                let status = head.split(' ').nth(1)?.parse().ok()?;
                let mut response = RawResponse {
                    status,
                    head,
                    body: String::new(),
                };
                let length: usize = response
                    .header("content-length")
                    .map_or(0, |v| v.parse().unwrap());
                while bytes.len() < end + 4 + length {
                    let n = stream.read(&mut chunk).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    bytes.extend_from_slice(&chunk[..n]);
                }
                response.body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).into();
                return Some(response);
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(limit, read).await.ok().flatten()
}

/// Whether the server closes `stream` (an end of file or a reset) within `limit`, reading and
/// discarding whatever it sends before.
pub async fn closed_within(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: std::time::Duration,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    let closed = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, closed).await.is_ok()
}

/// A registered seller and their token.
#[derive(Debug, Clone)]
pub struct Seller {
    pub id: i64,
    pub token: String,
}

#[derive(Clone)]
pub struct TestApp {
    pub address: String,
    /// The database the app runs on, for a second process to share.
    pub database_url: String,
    pub state: AppState,
    pub client: reqwest::Client,
    db: Arc<TestDatabase>,
    shutdown: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
    /// Every response body this app sent, for tests that search them.
    pub bodies: Arc<Mutex<Vec<String>>>,
}

impl TestApp {
    /// Spawns with settings adjusted by `adjust` (such as another `SECRET_KEY`).
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
        init_log_capture();
        let (db, url) = TestDatabase::create(backend).await?;
        Some(Self::serve(Arc::new(db), url, adjust).await)
    }

    /// Another process of the app on this app's database, with settings adjusted by `adjust`
    /// from the test defaults: its own state, caches and port, as a second web process or this
    /// one restarted. The database stays until every app on it is dropped.
    pub async fn another_process(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::serve(self.db.clone(), self.database_url.clone(), adjust).await
    }

    async fn serve(
        db: Arc<TestDatabase>,
        url: String,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let mut config = Config::for_tests(&url);
        config.database_max_connections = 5;
        // The marketplace (the sandbox) posts push notifications to this app.
        config.engine.push.public_url = Some(address.clone());
        adjust(&mut config);
        let state = AppState::start(config).await.expect("the app starts");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app::serve(state.clone(), listener, async {
            rx.await.ok();
        }));
        TestApp {
            address,
            database_url: url,
            state,
            client: reqwest::Client::builder().build().unwrap(),
            db,
            shutdown: Arc::new(Mutex::new(Some(tx))),
            bodies: Default::default(),
        }
    }

    /// Stops the server and closes its connections, leaving the database to other processes.
    pub async fn stop(&self) {
        if let Some(tx) = self.shutdown.lock().unwrap().take() {
            tx.send(()).ok();
        }
        self.state.db.pool.close().await;
    }

    /// Adds a shop with sandbox credentials `sandbox-N` / `secret-N`.
    pub async fn create_sandbox_shop(&self, seller: &Seller, n: u32) -> i64 {
        let response = self
            .post(
                "/api/v1/shops",
                Some(&seller.token),
                json!({"name": format!("sandbox {n}"), "client_id": format!("sandbox-{n}"),
                       "client_secret": format!("secret-{n}"), "auto_sync": false}),
            )
            .await;
        assert_eq!(response.status, 201, "{}", response.text);
        response.json()["id"].as_i64().unwrap()
    }

    /// Starts a sync (202 expected) and returns the run's id.
    pub async fn start_sync(&self, seller: &Seller, shop_id: i64, mode: Option<&str>) -> i64 {
        let body = match mode {
            Some(mode) => json!({"mode": mode}),
            None => json!({}),
        };
        let started = self
            .post(
                &format!("/api/v1/shops/{shop_id}/sync"),
                Some(&seller.token),
                body,
            )
            .await;
        assert_eq!(started.status, 202, "{}", started.text);
        started.json()["id"].as_i64().unwrap()
    }

    /// Starts a sync and polls until a worker has ended the run; returns the run.
    pub async fn sync_and_wait(&self, seller: &Seller, shop_id: i64, mode: Option<&str>) -> Value {
        let run_id = self.start_sync(seller, shop_id, mode).await;
        self.wait_for_run(seller, run_id).await
    }

    /// Starts a sync and drives it to its end here with [`TestApp::run_pending_syncs`];
    /// returns the run.
    pub async fn sync(&self, seller: &Seller, shop_id: i64, mode: Option<&str>) -> Value {
        let run_id = self.start_sync(seller, shop_id, mode).await;
        self.run_pending_syncs().await;
        self.sync_run(seller, run_id).await
    }

    /// Drives every queued or running run to its end in the test itself, as a worker would,
    /// instead of polling until a background worker has; then asserts that none is left.
    pub async fn run_pending_syncs(&self) {
        assert!(
            !self.state.config.run_workers,
            "the app's own workers would race this one (SyncSetup spawns without them)"
        );
        let db = &self.state.db;
        // Never sent: the runs are driven to their end, not paused.
        let (_stop, stop) = tokio::sync::watch::channel(false);
        let mut driven = std::collections::HashSet::new();
        loop {
            let pending = simba::store::sync_runs::claimable(db, Timestamp::now(), 100)
                .await
                .unwrap();
            if pending.is_empty() {
                break;
            }
            for run in pending {
                // Driven once and still claimable, it would be driven again forever.
                assert!(driven.insert(run.run_id), "run {} did not end", run.run_id);
                let end = self
                    .state
                    .engine
                    .drive(run.run_id, stop.clone(), None)
                    .await;
                end.unwrap_or_else(|e| panic!("driving run {}: {e:#}", run.run_id));
            }
        }
        let active: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM sync_runs WHERE status IN ('queued', 'running') ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert!(
            active.is_empty(),
            "runs left active, their shops leased by another driver: {active:?}"
        );
    }

    /// The run as the API shows it.
    pub async fn sync_run(&self, seller: &Seller, run_id: i64) -> Value {
        self.get(&format!("/api/v1/sync-runs/{run_id}"), Some(&seller.token))
            .await
            .json()
    }

    /// Polls a run until its `progress[key]` reaches `at_least` (at most thirty seconds).
    pub async fn wait_for_progress(&self, seller: &Seller, run_id: i64, key: &str, at_least: i64) {
        for _ in 0..1500 {
            let run = self.sync_run(seller, run_id).await;
            if run["progress"][key].as_i64().unwrap() >= at_least {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("run {run_id} never reached {key} = {at_least}");
    }

    /// Polls a run until it is no longer queued or running (at most two minutes).
    pub async fn wait_for_run(&self, seller: &Seller, run_id: i64) -> Value {
        for _ in 0..2400 {
            let run = self.sync_run(seller, run_id).await;
            if run["status"] != "queued" && run["status"] != "running" {
                return run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("run {run_id} did not finish");
    }

    pub fn backend(&self) -> Backend {
        match self.state.db.backend {
            simba::store::Backend::Sqlite => Backend::Sqlite,
            simba::store::Backend::Postgres => Backend::Postgres,
            simba::store::Backend::Mysql => Backend::Mysql,
        }
    }

    /// Makes the database fail every `operation` (`UPDATE` or `DELETE`) of a row of `table`
    /// that matches `condition` (on `OLD`), as a deadlock or a busy database fails a write.
    pub async fn refuse(&self, operation: &str, table: &str, condition: &str) {
        let name = format!("refuse_{}_{table}", operation.to_lowercase());
        let statements = match self.backend() {
            Backend::Sqlite => vec![format!(
                "CREATE TRIGGER {name} BEFORE {operation} ON {table} FOR EACH ROW \
                 WHEN {condition} BEGIN SELECT RAISE(ABORT, 'refused by a test'); END"
            )],
            Backend::Postgres => vec![
                format!(
                    "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                     IF {condition} THEN RAISE EXCEPTION 'refused by a test'; END IF; \
                     IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$"
                ),
                format!(
                    "CREATE TRIGGER {name} BEFORE {operation} ON {table} FOR EACH ROW \
                     EXECUTE FUNCTION {name}()"
                ),
            ],
            Backend::Mysql => vec![format!(
                "CREATE TRIGGER {name} BEFORE {operation} ON {table} FOR EACH ROW BEGIN \
                 IF {condition} THEN SIGNAL SQLSTATE '45000' \
                 SET MESSAGE_TEXT = 'refused by a test'; END IF; END"
            )],
        };
        for sql in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&self.state.db.pool)
                .await
                .unwrap();
        }
    }

    /// A raw connection to the app, for tests of what a client does on the wire.
    pub async fn connect(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(self.host()).await.unwrap()
    }

    /// The `host:port` the app listens on, as a Host header names it.
    pub fn host(&self) -> &str {
        self.address.strip_prefix("http://").unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends a request built by `build` and reads the whole answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Response {
        let response = request.send().await.expect("the request is answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        self.bodies.lock().unwrap().push(text.clone());
        Response {
            status,
            headers,
            text,
        }
    }

    fn with_token(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        match token {
            Some(token) => request.header("Authorization", format!("Token {token}")),
            None => request,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send(self.with_token(self.client.get(self.url(path)), token))
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.send(self.with_token(self.client.delete(self.url(path)), token))
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.send(self.with_token(self.client.post(self.url(path)).json(&body), token))
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.send(self.with_token(self.client.put(self.url(path)).json(&body), token))
            .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.send(self.with_token(self.client.patch(self.url(path)).json(&body), token))
            .await
    }

    /// Registers a seller named `username` with a fixed, valid password.
    pub async fn register(&self, username: &str) -> Seller {
        let response = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"username": username, "email": format!("{username}@example.com"),
                       "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(response.status, 201, "{}", response.text);
        let body = response.json();
        Seller {
            id: body["user"]["id"].as_i64().unwrap(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Adds a shop for `seller` and returns its id.
    pub async fn create_shop(&self, seller: &Seller, name: &str) -> i64 {
        let response = self
            .post(
                "/api/v1/shops",
                Some(&seller.token),
                json!({"name": name, "client_id": format!("client-{name}"), "client_secret": "secret-value-1"}),
            )
            .await;
        assert_eq!(response.status, 201, "{}", response.text);
        response.json()["id"].as_i64().unwrap()
    }

    /// Stores `count` shipments in a shop, as the sync engine would, one second apart and
    /// alternating FBR/FBB; returns them.
    pub async fn store_shipments(
        &self,
        seller: &Seller,
        shop_id: i64,
        count: usize,
    ) -> Vec<simba::store::shipments::NewShipment> {
        let shipments: Vec<_> = (0..count).map(|i| shipment(shop_id, i)).collect();
        for chunk in shipments.chunks(200) {
            simba::store::shipments::insert_new(&self.state.db, seller.id, shop_id, chunk)
                .await
                .unwrap();
        }
        shipments
    }
}

/// The `i`-th test shipment of a shop.
pub fn shipment(shop_id: i64, i: usize) -> simba::store::shipments::NewShipment {
    use simba::store::shipments::{ItemKey, NewShipment};
    let ean = format!("87{:011}", i % 7);
    NewShipment {
        shipment_id: format!("{shop_id}{i:06}"),
        shipment_date: Timestamp::from_unix_seconds(1_790_000_000 + i as i64),
        shipment_reference: Some(format!("REF-{shop_id}-{i}")),
        fulfilment_method: if i.is_multiple_of(2) {
            FulfilmentMethod::Fbr
        } else {
            FulfilmentMethod::Fbb
        },
        order_id: Some(format!("O{shop_id}-{}", i / 2)),
        order_placed_at: Some(Timestamp::from_unix_seconds(1_789_990_000 + i as i64)),
        pickup_point: Some(i.is_multiple_of(5)),
        transport_id: Some(format!("T{i}")),
        transporter_code: Some("TNT".into()),
        track_and_trace: Some(format!("3SABCD{shop_id}{i:05}")),
        shipping_label_id: Some(format!("L{i}")),
        transport_events: Some(
            json!([{"event_code": "AT_TRANSPORTER", "event_date_time": "2026-09-15T10:00:00Z"}]).to_string(),
        ),
        items: json!([{"order_item_id": format!("I{i}"), "ean": ean, "title": "Theepot glas 1,2 L", "quantity": 1}])
            .to_string(),
        item_keys: vec![ItemKey {
            order_item_id: format!("I{i}"),
            ean: Some(ean),
        }],
        customer: Some(json!({"shipment_details": {"first_name": "Sanne", "city": "Utrecht"}}).to_string()),
        raw: Some(json!({"shipmentId": format!("{shop_id}{i:06}")}).to_string()),
        detail_synced_at: Some(Timestamp::from_unix_seconds(1_790_100_000)),
    }
}
