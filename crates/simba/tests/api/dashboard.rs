//! The web dashboard over HTTP: sessions and their cookie, CSRF, HTML errors, the forms, each
//! seller seeing only their own data, and the CSV export.

use crate::helpers::sync_setup::SyncSetup;
use crate::helpers::{self, Backend, Seller, TestApp};
use simba::domain::FulfilmentMethod;

/// `backend_tests!` without the sync workers: these tests write runs themselves, and a worker
/// must not take one up meanwhile.
macro_rules! without_workers {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::without_workers(crate::helpers::Backend::Sqlite, super::$name).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::without_workers(crate::helpers::Backend::Postgres, super::$name).await })* }
        mod mysql { $(#[tokio::test] async fn $name() { super::without_workers(crate::helpers::Backend::Mysql, super::$name).await })* }
    };
}

without_workers!(
    another_sellers_shop_run_and_shipment_are_not_found,
    a_queued_run_is_cancelled_from_its_page,
    the_csv_has_a_header_and_one_row_per_filtered_shipment,
    the_shop_list_shows_failures_since_the_last_success,
    the_privacy_page_sets_retention_erases_after_a_confirmation_and_shows_the_log,
);

async fn without_workers<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    helpers::run_with(backend, |config| config.run_workers = false, test).await
}

/// A browser's view of the dashboard: no redirects followed, the session cookie kept.
pub struct Web {
    app: TestApp,
    client: reqwest::Client,
    pub cookie: String,
    /// Sent as `X-Forwarded-For` with the login form, as a reverse proxy would.
    pub forwarded_for: Option<String>,
}

pub const PASSWORD: &str = "correct horse battery";

impl Web {
    pub fn new(app: &TestApp) -> Web {
        Web {
            app: app.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: String::new(),
            forwarded_for: None,
        }
    }

    /// Registers `username` through the API and logs in through the login form.
    pub async fn logged_in(app: &TestApp, username: &str) -> (Web, Seller) {
        let seller = app.register(username).await;
        let mut web = Web::new(app);
        let response = web.log_in(username, PASSWORD).await;
        assert_eq!(response.status, 303, "{}", response.text);
        web.cookie = session_cookie(&response).expect("a session cookie");
        (web, seller)
    }

    pub async fn log_in(&self, username: &str, password: &str) -> helpers::Response {
        let fields = encode(&[
            ("username", username),
            ("password", password),
            ("next", "/shops"),
        ]);
        self.post_login_form(fields.as_bytes()).await
    }

    /// Posts the login form with its token and cookie, and `fields` (urlencoded, or not) after
    /// them.
    async fn post_login_form(&self, fields: &[u8]) -> helpers::Response {
        let form = self.get("/login").await;
        let login_cookie = set_cookies(&form)
            .into_iter()
            .find(|c| c.starts_with("simba_login="))
            .expect("the login form sets its cookie");
        let login_cookie = login_cookie.split(';').next().unwrap().to_owned();
        let mut body = encode(&[("csrf", &csrf(&form.text))]).into_bytes();
        body.push(b'&');
        body.extend_from_slice(fields);
        let mut request = self
            .client
            .post(self.app.url("/login"))
            .header("cookie", login_cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(forwarded_for) = &self.forwarded_for {
            request = request.header("x-forwarded-for", forwarded_for);
        }
        self.app.send(request).await
    }

    pub async fn get(&self, path: &str) -> helpers::Response {
        let mut request = self
            .client
            .get(self.app.url(path))
            .header("accept", "text/html");
        if !self.cookie.is_empty() {
            request = request.header("cookie", format!("simba_session={}", self.cookie));
        }
        self.app.send(request).await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> helpers::Response {
        let request = self
            .client
            .post(self.app.url(path))
            .header("cookie", format!("simba_session={}", self.cookie))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(fields));
        self.app.send(request).await
    }

    /// The CSRF token the page at `path` puts in its forms.
    async fn csrf_of(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        csrf(&page.text)
    }
}

fn encode(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

fn csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn set_cookies(response: &helpers::Response) -> Vec<String> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

pub fn session_cookie(response: &helpers::Response) -> Option<String> {
    set_cookies(response)
        .into_iter()
        .find_map(|c| {
            c.strip_prefix("simba_session=")
                .map(|rest| rest.split(';').next().unwrap().to_owned())
        })
        .filter(|v| !v.is_empty())
}

async fn sqlite<F, Fut>(test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    helpers::run(Backend::Sqlite, test).await
}

#[tokio::test]
async fn logging_in_sets_an_http_only_same_site_session_cookie() {
    sqlite(|app| async move {
        app.register("anna").await;
        let web = Web::new(&app);
        let response = web.log_in("anna", PASSWORD).await;
        assert_eq!(response.status, 303, "{}", response.text);
        assert_eq!(response.header("location"), Some("/shops"));
        let cookie = set_cookies(&response)
            .into_iter()
            .find(|c| c.starts_with("simba_session="))
            .unwrap();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(cookie.contains("Path=/"), "{cookie}");
        assert!(!cookie.contains("Secure"), "{cookie}");
        let key = session_cookie(&response).unwrap();
        let me = app.get("/api/v1/auth/user", Some(&key)).await;
        assert_eq!(
            me.json()["username"],
            "anna",
            "the cookie holds an API token"
        );
    })
    .await
}

#[tokio::test]
async fn the_cookie_is_secure_behind_an_https_proxy() {
    sqlite(|app| async move {
        let page = Web::new(&app);
        let response = page
            .app
            .send(
                page.client
                    .get(app.url("/login"))
                    .header("x-forwarded-proto", "https"),
            )
            .await;
        let cookie = set_cookies(&response).join("\n");
        assert!(cookie.contains("; Secure"), "{cookie}");
    })
    .await
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_with_an_error() {
    sqlite(|app| async move {
        app.register("anna").await;
        let response = Web::new(&app).log_in("anna", "wrong horse battery").await;
        assert_eq!(response.status, 401);
        assert!(session_cookie(&response).is_none());
        assert!(response.text.contains("do not match an account"));
        assert!(
            response.text.contains("value=\"anna\""),
            "the username is kept"
        );
    })
    .await
}

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled_like_the_api() {
    sqlite(|app| async move {
        app.register("anna").await;
        let web = Web::new(&app);
        for _ in 0..5 {
            assert_eq!(web.log_in("anna", "wrong horse battery").await.status, 401);
        }
        let response = web.log_in("anna", PASSWORD).await;
        assert_eq!(response.status, 429);
        assert!(response.text.contains("Too many failed attempts"));
        assert!(session_cookie(&response).is_none());
    })
    .await
}

#[tokio::test]
async fn a_login_without_its_form_token_is_refused() {
    sqlite(|app| async move {
        app.register("anna").await;
        let web = Web::new(&app);
        let response = app
            .send(
                web.client
                    .post(app.url("/login"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(encode(&[
                        ("csrf", "forged"),
                        ("username", "anna"),
                        ("password", PASSWORD),
                    ])),
            )
            .await;
        assert_eq!(response.status, 403);
        assert!(session_cookie(&response).is_none());
    })
    .await
}

/// Whether `location`, resolved as a browser resolves a redirect from the app, stays on the
/// app's origin.
fn stays_on_the_site(app: &TestApp, location: &str) -> bool {
    let base = url::Url::parse(&app.address).unwrap();
    base.join(location)
        .is_ok_and(|target| target.origin() == base.origin())
}

#[tokio::test]
async fn next_with_control_characters_never_leaves_the_site() {
    sqlite(|app| async move {
        app.register("anna").await;
        let web = Web::new(&app);
        let controls = (0u8..0x20).chain([0x7f]).map(char::from);
        for c in controls {
            for next in [
                format!("/{c}/evil.example"),
                format!("{c}//evil.example"),
                format!("/{c}\\evil.example"),
                format!("/\\{c}evil.example"),
            ] {
                let encoded = encode(&[("next", &next)]);
                let form = web.get(&format!("/login?{encoded}")).await;
                assert_eq!(form.status, 200, "GET {next:?}: {}", form.text);
                let marker = "name=\"next\" value=\"";
                let start = form.text.find(marker).unwrap() + marker.len();
                let kept = form.text[start..].split('"').next().unwrap();
                assert!(stays_on_the_site(&app, kept), "GET {next:?} → {kept:?}");

                let fields = encode(&[
                    ("username", "anna"),
                    ("password", PASSWORD),
                    ("next", &next),
                ]);
                let mut raw = encode(&[("username", "anna"), ("password", PASSWORD)]).into_bytes();
                raw.extend_from_slice(b"&next=");
                raw.extend_from_slice(next.as_bytes());
                for body in [fields.into_bytes(), raw] {
                    let response = web.post_login_form(&body).await;
                    assert_eq!(response.status, 303, "POST {next:?}: {}", response.text);
                    let location = response.header("location").unwrap();
                    assert!(
                        stays_on_the_site(&app, location)
                            && !location.chars().any(|l| l.is_control()),
                        "POST {next:?} → {location:?}"
                    );
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn pages_redirect_to_the_login_form_when_logged_out() {
    sqlite(|app| async move {
        let web = Web::new(&app);
        for path in [
            "/shops",
            "/runs",
            "/shipments?q=x",
            "/shipments/1",
            "/shipments.csv",
        ] {
            let response = web.get(path).await;
            assert_eq!(response.status, 303, "{path}");
            let location = response.header("location").unwrap();
            assert!(
                location.starts_with("/login?next=%2F"),
                "{path}: {location}"
            );
        }
        let root = web.get("/").await;
        assert_eq!(root.header("location"), Some("/shops"));
        let mut stale = Web::new(&app);
        stale.cookie = "not-a-token".into();
        assert_eq!(stale.get("/shops").await.status, 303);
    })
    .await
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_forbidden_and_changes_nothing() {
    sqlite(|app| async move {
        let (web, seller) = Web::logged_in(&app, "anna").await;
        let shop = app.create_shop(&seller, "main").await;
        for fields in [vec![], vec![("csrf", "0000")]] {
            let response = web.post(&format!("/shops/{shop}/delete"), &fields).await;
            assert_eq!(response.status, 403, "{}", response.text);
            assert!(response.text.contains("Form expired"));
        }
        let kept = app
            .get(&format!("/api/v1/shops/{shop}"), Some(&seller.token))
            .await;
        assert_eq!(kept.status, 200);
        let logout = web.post("/logout", &[]).await;
        assert_eq!(logout.status, 403, "logging out takes the token too");
    })
    .await
}

#[tokio::test]
async fn logging_out_revokes_the_session_token() {
    sqlite(|app| async move {
        let (web, _) = Web::logged_in(&app, "anna").await;
        let csrf = web.csrf_of("/shops").await;
        let response = web.post("/logout", &[("csrf", &csrf)]).await;
        assert_eq!(response.status, 303);
        assert_eq!(response.header("location"), Some("/login"));
        assert!(
            set_cookies(&response)
                .iter()
                .any(|c| c.contains("Max-Age=0"))
        );
        assert_eq!(web.get("/shops").await.status, 303);
        let me = app.get("/api/v1/auth/user", Some(&web.cookie)).await;
        assert_eq!(me.status, 401);
    })
    .await
}

#[tokio::test]
async fn unknown_pages_are_html_for_browsers_and_problem_json_for_the_api() {
    sqlite(|app| async move {
        let (web, _) = Web::logged_in(&app, "anna").await;
        for path in ["/no-such-page", "/shops/abc/edit", "/runs/99999"] {
            let page = web.get(path).await;
            assert_eq!(page.status, 404, "{path}");
            assert!(
                page.header("content-type")
                    .unwrap()
                    .starts_with("text/html")
            );
            assert!(page.text.contains("Not found"));
        }
        app.get("/no-such-page", None).await.problem(404);
        let api = web.get("/api/v1/nothing").await;
        api.problem(404);
    })
    .await
}

#[tokio::test]
async fn shops_are_added_edited_and_deleted_through_the_forms() {
    sqlite(|app| async move {
        let (web, seller) = Web::logged_in(&app, "anna").await;
        let csrf = web.csrf_of("/shops/new").await;
        let created = web
            .post(
                "/shops/new",
                &[
                    ("csrf", &csrf),
                    ("name", "Bakkerij, \"Ünal\""),
                    ("client_id", "client-1"),
                    ("client_secret", "top-secret-1"),
                    ("sync_interval_minutes", "30"),
                ],
            )
            .await;
        assert_eq!(created.status, 303, "{}", created.text);
        let shops = app.get("/api/v1/shops", Some(&seller.token)).await.json();
        let shop = &shops["results"][0];
        assert_eq!(shop["name"], "Bakkerij, \"Ünal\"");
        assert_eq!(shop["auto_sync"], false, "an unticked box is off");
        assert_eq!(shop["sync_interval_minutes"], 30);
        let id = shop["id"].as_i64().unwrap();

        let list = web.get("/shops").await;
        assert!(list.text.contains("Bakkerij, &quot;Ünal&quot;"), "escaped");
        let edit = web.get(&format!("/shops/{id}/edit")).await;
        assert!(
            !edit.text.contains("top-secret-1"),
            "the secret is write-only"
        );
        let saved = web
            .post(
                &format!("/shops/{id}/edit"),
                &[
                    ("csrf", &csrf),
                    ("name", "Renamed"),
                    ("client_id", "client-1"),
                    ("client_secret", ""),
                    ("sync_interval_minutes", "15"),
                    ("auto_sync", "on"),
                    ("push_enabled", "on"),
                ],
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.text);
        let shop = app
            .get(&format!("/api/v1/shops/{id}"), Some(&seller.token))
            .await
            .json();
        assert_eq!(shop["name"], "Renamed");
        assert_eq!(shop["auto_sync"], true);
        assert_eq!(shop["push_enabled"], true);
        assert_eq!(shop["push"]["status"], "pending");
        let edit = web.get(&format!("/shops/{id}/edit")).await;
        assert!(
            edit.text
                .contains(r#"name="push_enabled" value="on" checked"#),
            "{}",
            edit.text
        );
        let (client_id, secret) = simba::store::shops::credentials(&app.state.db, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(client_id, "client-1");
        let kept = app
            .state
            .cipher
            .decrypt(simba::store::shops::SECRET_PURPOSE, &secret)
            .unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&kept),
            "top-secret-1",
            "an empty secret keeps the stored one"
        );

        let confirm = web.get(&format!("/shops/{id}/delete")).await;
        assert!(confirm.text.contains("cannot be undone"));
        let deleted = web
            .post(&format!("/shops/{id}/delete"), &[("csrf", &csrf)])
            .await;
        assert_eq!(deleted.status, 303);
        let gone = app
            .get(&format!("/api/v1/shops/{id}"), Some(&seller.token))
            .await;
        assert_eq!(gone.status, 404);
    })
    .await
}

#[tokio::test]
async fn an_invalid_shop_form_shows_each_error_by_its_field() {
    sqlite(|app| async move {
        let (web, seller) = Web::logged_in(&app, "anna").await;
        let csrf = web.csrf_of("/shops/new").await;
        let response = web
            .post(
                "/shops/new",
                &[
                    ("csrf", &csrf),
                    ("name", "Kept name"),
                    ("client_id", "has space"),
                    ("sync_interval_minutes", "abc"),
                ],
            )
            .await;
        assert_eq!(response.status, 422, "{}", response.text);
        for message in [
            "Client id must not contain whitespace",
            "Client secret is required",
            "between 1 and 10080",
        ] {
            assert!(response.text.contains(message), "{message}");
        }
        assert!(response.text.contains("value=\"Kept name\""));
        assert!(response.text.contains("aria-invalid=\"true\""));
        app.create_shop(&seller, "dup").await;
        let duplicate = web
            .post(
                "/shops/new",
                &[
                    ("csrf", &csrf),
                    ("name", "again"),
                    ("client_id", "client-dup"),
                    ("client_secret", "another-secret"),
                    ("sync_interval_minutes", "15"),
                ],
            )
            .await;
        assert_eq!(duplicate.status, 409);
        assert!(duplicate.text.contains("already have a shop"));
    })
    .await
}

#[tokio::test]
async fn sync_now_starts_a_run_whose_page_shows_it_finished() {
    let setup = SyncSetup::new(Backend::Sqlite).shipments(30, 10);
    let Some((app, _sandbox)) = setup.spawn_app().await else {
        return;
    };
    let (web, seller) = Web::logged_in(&app, "anna").await;
    let shop = app.create_sandbox_shop(&seller, 1).await;
    let csrf = web.csrf_of("/shops").await;
    let started = web
        .post(&format!("/shops/{shop}/sync"), &[("csrf", &csrf)])
        .await;
    assert_eq!(started.status, 303, "{}", started.text);
    let location = started.header("location").unwrap().to_owned();
    let run_id: i64 = location.strip_prefix("/runs/").unwrap().parse().unwrap();
    let page = web.get(&location).await;
    assert!(page.text.contains("/static/live.js"));
    app.run_pending_syncs().await;
    let run = app.sync_run(&seller, run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let fragment = web.get(&format!("/runs/{run_id}/progress")).await;
    assert!(fragment.text.contains("succeeded"));
    assert!(
        !fragment.text.contains("data-poll"),
        "an ended run is not polled"
    );
    assert!(fragment.text.contains("Details fetched"));
    let shops = web.get("/shops").await;
    assert!(shops.text.contains("OK"));
}

async fn another_sellers_shop_run_and_shipment_are_not_found(app: TestApp) {
    let (anna_web, anna) = Web::logged_in(&app, "anna").await;
    let shop = app.create_shop(&anna, "main").await;
    app.store_shipments(&anna, shop, 2).await;
    let shipment = app.get("/api/v1/shipments", Some(&anna.token)).await.json()["results"][0]["id"]
        .as_i64()
        .unwrap();
    let run = simba::store::sync_runs::create_queued(
        &app.state.db,
        shop,
        simba::domain::Mode::Full,
        simba::domain::Trigger::Cli,
    )
    .await
    .unwrap()
    .id;
    let (bert, _) = Web::logged_in(&app, "bert").await;
    for path in [
        format!("/shops/{shop}/edit"),
        format!("/shops/{shop}/delete"),
        format!("/runs/{run}"),
        format!("/runs/{run}/progress"),
        format!("/runs?shop={shop}"),
        format!("/shipments/{shipment}"),
    ] {
        assert_eq!(bert.get(&path).await.status, 404, "{path}");
    }
    let csrf = bert.csrf_of("/shops").await;
    for path in [
        format!("/shops/{shop}/delete"),
        format!("/shops/{shop}/sync"),
        format!("/shops/{shop}/edit"),
        format!("/runs/{run}/cancel"),
    ] {
        let response = bert.post(&path, &[("csrf", &csrf)]).await;
        assert_eq!(response.status, 404, "{path}");
    }
    assert_eq!(anna_web.get(&format!("/runs/{run}")).await.status, 200);
    let list = bert.get("/shipments").await;
    assert!(list.text.contains("No shipments match"));
    let csv = bert.get("/shipments.csv").await;
    assert_eq!(csv.text.lines().count(), 1, "only the header: {}", csv.text);
}

async fn a_queued_run_is_cancelled_from_its_page(app: TestApp) {
    let (web, seller) = Web::logged_in(&app, "anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let run = simba::store::sync_runs::create_queued(
        &app.state.db,
        shop,
        simba::domain::Mode::Full,
        simba::domain::Trigger::Cli,
    )
    .await
    .unwrap()
    .id;
    let page = web.get(&format!("/runs/{run}")).await;
    assert!(page.text.contains("Cancel this run"));
    assert!(page.text.contains("data-poll"), "a queued run is polled");
    let cancelled = web
        .post(
            &format!("/runs/{run}/cancel"),
            &[("csrf", &csrf(&page.text))],
        )
        .await;
    assert_eq!(
        cancelled.header("location"),
        Some(format!("/runs/{run}").as_str())
    );
    let page = web.get(&format!("/runs/{run}")).await;
    assert!(page.text.contains("badge cancelled"));
    assert!(!page.text.contains("Cancel this run"));
    assert!(!page.text.contains("data-poll"));
}

async fn the_csv_has_a_header_and_one_row_per_filtered_shipment(app: TestApp) {
    let (web, seller) = Web::logged_in(&app, "anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let stored = app.store_shipments(&seller, shop, 2105).await;
    let all = web.get("/shipments.csv").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        all.header("content-disposition"),
        Some("attachment; filename=\"shipments.csv\"")
    );
    let lines: Vec<&str> = all.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("id,shop_id,shipment_id,shipment_date,"));
    assert_eq!(lines.len(), 1 + stored.len(), "across three pages of 1,000");
    let mut ids: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(2).unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), stored.len(), "no row twice");
    assert!(
        lines[1].contains(",\"1 x Theepot glas 1,2 L (8700000000000)\","),
        "a comma is quoted: {}",
        lines[1]
    );

    let after = simba::domain::Timestamp::from_unix_seconds(1_790_001_000);
    let filtered = web
        .get(&format!(
            "/shipments.csv?fulfilment_method=FBB&shipped_after={}&q=",
            simba::api::rfc3339(after)
        ))
        .await;
    let rows: Vec<&str> = filtered
        .text
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .collect();
    let expected = stored
        .iter()
        .filter(|s| s.fulfilment_method == FulfilmentMethod::Fbb && s.shipment_date >= after)
        .count();
    assert!(expected > 0 && expected < stored.len());
    assert_eq!(rows.len(), expected);
    assert!(rows.iter().all(|r| r.contains(",FBB,")));

    let bad = web.get("/shipments.csv?shipped_after=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("shipped_after"));
}

async fn the_shop_list_shows_failures_since_the_last_success(app: TestApp) {
    use simba::domain::{Mode, RunStatus, Trigger};
    use simba::store::sync_runs::{self, ApiCalls, RunFinish};
    let (web, seller) = Web::logged_in(&app, "anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let calls = ApiCalls::default();
    for status in [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Failed] {
        let run = sync_runs::create_queued(&app.state.db, shop, Mode::Full, Trigger::Cli)
            .await
            .unwrap();
        let finish = RunFinish {
            status,
            error: Some("the marketplace answered 500"),
            calls: &calls,
        };
        sync_runs::finish(&app.state.db, run.id, shop, None, &finish)
            .await
            .unwrap();
    }
    let page = web.get("/shops").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Failing since"), "{}", page.text);
    let runs = web.get("/runs").await;
    assert_eq!(runs.text.matches("badge failed").count(), 2);
    assert_eq!(runs.text.matches("badge succeeded").count(), 1);
}

#[tokio::test]
async fn webhooks_are_added_tested_redelivered_and_deleted_through_the_forms() {
    sqlite(|app| async move {
        let (web, seller) = Web::logged_in(&app, "anna").await;
        let csrf = web.csrf_of("/webhooks").await;
        let refused = web
            .post(
                "/webhooks",
                &[
                    ("csrf", &csrf),
                    ("url", "ftp://93.184.216.34/"),
                    ("events", "webhook.test"),
                ],
            )
            .await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        let created = web
            .post(
                "/webhooks",
                &[
                    ("csrf", &csrf),
                    ("url", "https://93.184.216.34/hook"),
                    ("events", "webhook.test"),
                    ("events", "sync_run.failed"),
                ],
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert!(created.text.contains("whsec_"), "the secret is shown once");
        let list = web.get("/webhooks").await;
        assert!(list.text.contains("https://93.184.216.34/hook") && !list.text.contains("whsec_"));
        let endpoints = app
            .get("/api/v1/webhooks", Some(&seller.token))
            .await
            .json();
        let id = endpoints["results"][0]["id"].as_i64().unwrap();
        assert_eq!(
            endpoints["results"][0]["events"],
            serde_json::json!(["sync_run.failed", "webhook.test"])
        );
        let sent = web
            .post(&format!("/webhooks/{id}/test"), &[("csrf", &csrf)])
            .await;
        assert_eq!(sent.status, 303, "{}", sent.text);
        let page = web.get(&format!("/webhooks/{id}")).await;
        assert!(page.text.contains("webhook.test"), "{}", page.text);
        let deliveries = app
            .get(
                &format!("/api/v1/webhooks/{id}/deliveries"),
                Some(&seller.token),
            )
            .await
            .json();
        let delivery = deliveries["results"][0]["id"].as_i64().unwrap();
        let again = web
            .post(
                &format!("/webhooks/{id}/deliveries/{delivery}/redeliver"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(again.status, 303, "{}", again.text);
        let deliveries = app
            .get(
                &format!("/api/v1/webhooks/{id}/deliveries"),
                Some(&seller.token),
            )
            .await
            .json();
        assert_eq!(deliveries["count"], 2);
        let (other, _) = Web::logged_in(&app, "mallory").await;
        assert_eq!(other.get(&format!("/webhooks/{id}")).await.status, 404);
        let other_csrf = other.csrf_of("/webhooks").await;
        let stolen = other
            .post(&format!("/webhooks/{id}/test"), &[("csrf", &other_csrf)])
            .await;
        assert_eq!(stolen.status, 404);
        let forged = web
            .post(&format!("/webhooks/{id}/delete"), &[("csrf", "0000")])
            .await;
        assert_eq!(forged.status, 403);
        let deleted = web
            .post(&format!("/webhooks/{id}/delete"), &[("csrf", &csrf)])
            .await;
        assert_eq!(deleted.status, 303);
        let gone = app
            .get(&format!("/api/v1/webhooks/{id}"), Some(&seller.token))
            .await;
        assert_eq!(gone.status, 404);
    })
    .await;
}

async fn the_privacy_page_sets_retention_erases_after_a_confirmation_and_shows_the_log(
    app: TestApp,
) {
    use crate::data_protection::{days_ago, store_bought_by};
    let (web, seller) = Web::logged_in(&app, "anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let ids = store_bought_by(&app, &seller, shop, 0, 2, "ann@example.nl", days_ago(1)).await;
    let csrf = web.csrf_of("/privacy").await;

    let refused = web
        .post(
            "/privacy/retention",
            &[("csrf", &csrf), ("retention_days", "10")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.text.contains("Retention must be"),
        "{}",
        refused.text
    );
    let saved = web
        .post(
            "/privacy/retention",
            &[("csrf", &csrf), ("retention_days", "90")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    let user = app.get("/api/v1/auth/user", Some(&seller.token)).await;
    assert_eq!(user.json()["retention_days"], 90);

    let form = [
        ("csrf", csrf.as_str()),
        ("kind", "email"),
        ("value", "ann@example.nl"),
    ];
    let confirm = web.post("/privacy/erase", &form).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
    assert!(
        confirm.text.contains("<strong>2</strong>"),
        "{}",
        confirm.text
    );
    let detail = app
        .get(
            &format!("/api/v1/shipments/{}", ids[0]),
            Some(&seller.token),
        )
        .await
        .json();
    assert!(
        detail["customer"].is_object(),
        "nothing is erased before the confirmation"
    );

    let mut confirmed = form.to_vec();
    confirmed.push(("confirm", "yes"));
    let done = web.post("/privacy/erase", &confirmed).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.text.contains("from 2 shipment"), "{}", done.text);
    let page = web.get(&format!("/shipments/{}", ids[0])).await;
    assert!(
        page.text.contains("personal data was erased"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("ann@example.nl"));
    assert!(web.get("/shipments").await.text.contains("(erased)"));

    let log = web.get("/privacy/access-log").await;
    assert_eq!(log.status, 200);
    assert!(log.text.contains("dashboard.shipment") && log.text.contains("dashboard:anna"));
    let log = app
        .get("/api/v1/access-log", Some(&seller.token))
        .await
        .json();
    assert_eq!(
        log["results"][0]["shipment_ids"],
        serde_json::json!([ids[0]])
    );
}

#[tokio::test]
async fn the_shops_page_shows_a_shops_push_status() {
    let setup = SyncSetup::new(Backend::Sqlite)
        .shipments(3, 0)
        .time_scale(60.0);
    let Some((app, sandbox)) = setup.spawn_app().await else {
        return;
    };
    let (web, seller) = Web::logged_in(&app, "anna").await;
    let shop = app.create_sandbox_shop(&seller, 1).await;
    let r = app
        .patch(
            &format!("/api/v1/shops/{shop}"),
            Some(&seller.token),
            serde_json::json!({ "push_enabled": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(web.get("/shops").await.text.contains("Push being set up"));
    let mut active = false;
    for _ in 0..100 {
        app.state.engine.manage_subscriptions().await.unwrap();
        active = web.get("/shops").await.text.contains("Push on, 0 events");
        if active {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(active, "{}", web.get("/shops").await.text);
    sandbox.disable_push_subscriptions();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.state.engine.manage_subscriptions().await.unwrap();
    let page = web.get("/shops").await.text;
    assert!(page.contains("Push disabled by the marketplace"), "{page}");
}
