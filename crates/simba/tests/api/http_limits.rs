//! The HTTP server's limits as a slow or hostile client meets them, on raw sockets with limits
//! of a second or two: silent and slow headers, idle connections, stalled bodies, clients that
//! stop reading, the connection caps, oversized heads, a declared body over the limit,
//! ambiguous Hosts, and a graceful shutdown. The database plays no part, so these run on SQLite
//! only.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use simba::app::{self, AppState};
use simba::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{self, Backend, TestApp, closed_within, read_response};

/// Limits in seconds: the headers', the idle connection's and the body's.
fn limits(header: u64, idle: u64, body: u64) -> impl FnOnce(&mut Config) {
    move |config| {
        config.http.header_timeout = Duration::from_secs(header);
        config.http.idle_timeout = Duration::from_secs(idle);
        config.http.body_timeout = Duration::from_secs(body);
    }
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    helpers::run_with(Backend::Sqlite, limits(1, 30, 30), |app| async move {
        let mut stream = app.connect().await;
        let started = Instant::now();
        stream
            .write_all(
                format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Slow: ", app.host()).as_bytes(),
            )
            .await
            .unwrap();
        // A byte every 200 ms: each read makes progress, the headers never end.
        let mut closed = false;
        while !closed && started.elapsed() < Duration::from_secs(20) {
            closed = stream.write_all(b"a").await.is_err()
                || closed_within(&mut stream, Duration::from_millis(200)).await;
        }
        assert!(closed, "the connection is still open after 20 s");
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_secs(15),
            "closed after {after:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    helpers::run_with(Backend::Sqlite, limits(30, 2, 30), |app| async move {
        let mut stream = app.connect().await;
        stream
            .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.host()).as_bytes())
            .await
            .unwrap();
        let answer = read_response(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(answer.expect("an answer").status, 200);
        assert!(
            !closed_within(&mut stream, Duration::from_secs(1)).await,
            "a keep-alive connection is closed at once"
        );
        assert!(
            closed_within(&mut stream, Duration::from_secs(10)).await,
            "an idle keep-alive connection stays open"
        );
    })
    .await;
}

#[tokio::test]
async fn a_silent_new_connection_is_closed_after_the_header_timeout() {
    helpers::run_with(Backend::Sqlite, limits(1, 30, 30), |app| async move {
        let mut silent = app.connect().await;
        let started = Instant::now();
        assert!(
            closed_within(&mut silent, Duration::from_secs(10)).await,
            "a connection that never sent a byte is still open after 10 s"
        );
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_secs(5),
            "closed after {after:?}"
        );
    })
    .await;
}

/// Connects with a receive buffer of a few KB and asks for the 1.7 MB Swagger bundle sixteen
/// times, pipelined, then a `/healthz`: far more than the kernel's buffers hold (the server's
/// send buffer grows to 4 MB by default), so the server's writes stall while nothing is read.
async fn ask_for_more_than_the_buffers_hold(address: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(address).await.unwrap();
    let bundle = format!("GET /docs/swagger-ui-bundle.js HTTP/1.1\r\nHost: {address}\r\n\r\n");
    let requests = bundle.repeat(16) + &format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    stream.write_all(requests.as_bytes()).await.unwrap();
    stream
}

/// Reads `stream` to its end; the bytes read, or `None` if it is still open after `limit`.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<usize> {
    let read = async {
        let mut total = 0;
        let mut chunk = [0u8; 65536];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let one_slot = |config: &mut Config| {
        limits(30, 30, 30)(config);
        config.http.write_timeout = Duration::from_secs(1);
        config.http.max_connections = 1;
    };
    helpers::run_with(Backend::Sqlite, one_slot, |app| async move {
        let address: SocketAddr = app.host().parse().unwrap();
        let mut stalled = ask_for_more_than_the_buffers_hold(address).await;
        let started = Instant::now();
        let mut next = app.connect().await;
        next.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let answer = read_response(&mut next, Duration::from_secs(15)).await;
        assert_eq!(
            answer.expect("the only slot is freed").status,
            200,
            "after {:?}",
            started.elapsed()
        );
        let after = started.elapsed();
        assert!(after < Duration::from_secs(8), "freed after {after:?}");
        let received = read_to_close(&mut stalled, Duration::from_secs(5))
            .await
            .expect("the stalled connection is closed");
        assert!(received < 1_732_839 * 16, "received all {received} bytes");
    })
    .await;
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let caps = |config: &mut Config| {
        limits(30, 30, 30)(config);
        config.http.max_connections = 4;
        config.http.max_connections_per_address = 2;
    };
    helpers::run_with(Backend::Sqlite, caps, |app| async move {
        let address: SocketAddr = app.host().parse().unwrap();
        let mut held = vec![app.connect().await, app.connect().await];
        for _ in 0..2 {
            let mut over = app.connect().await;
            assert!(
                closed_within(&mut over, Duration::from_secs(2)).await,
                "a connection over the per-address cap stays open"
            );
        }
        let healthz =
            format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        let another = TcpSocket::new_v4().unwrap();
        another.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut another = another.connect(address).await.unwrap();
        another.write_all(healthz.as_bytes()).await.unwrap();
        let answer = read_response(&mut another, Duration::from_secs(5)).await;
        assert_eq!(answer.expect("another address is served").status, 200);

        held.pop();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut again = app.connect().await;
        again.write_all(healthz.as_bytes()).await.unwrap();
        let answer = read_response(&mut again, Duration::from_secs(5)).await;
        assert_eq!(
            answer
                .expect("a closed connection frees its address's place")
                .status,
            200
        );
    })
    .await;
}

#[tokio::test]
async fn a_trusted_proxy_is_not_held_to_the_per_address_cap() {
    let caps = |config: &mut Config| {
        limits(30, 30, 30)(config);
        config.http.max_connections = 8;
        config.http.max_connections_per_address = 2;
        config.trusted_proxies = "127.0.0.1/32".parse().unwrap();
    };
    helpers::run_with(Backend::Sqlite, caps, |app| async move {
        let address: SocketAddr = app.host().parse().unwrap();
        let _held = [app.connect().await, app.connect().await];
        let mut third = app.connect().await;
        let healthz =
            format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        third.write_all(healthz.as_bytes()).await.unwrap();
        let answer = read_response(&mut third, Duration::from_secs(5)).await;
        assert_eq!(
            answer
                .expect("the proxy's third connection is served")
                .status,
            200
        );
    })
    .await;
}

#[tokio::test]
async fn a_request_head_over_64_kb_is_refused_with_431() {
    helpers::run(Backend::Sqlite, |app| async move {
        let host = app.host().to_owned();
        let cookie = format!("session={}", "c".repeat(32 * 1024));
        let big_cookie = exchange(
            &app,
            &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n"),
        )
        .await;
        assert_eq!(big_cookie.status, 200, "a 32 KB cookie: {big_cookie:?}");
        // Exactly 64 KB of a head that has not ended, all of which the server reads: closing
        // with unread bytes would reset the connection and could lose the answer.
        let start = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Padding: ");
        let head = start.clone() + &"p".repeat(64 * 1024 - start.len());
        let answer = exchange(&app, &head).await;
        assert_eq!(answer.status, 431, "{answer:?}");
    })
    .await;
}

#[tokio::test]
async fn a_stalled_body_is_cut_off() {
    helpers::run_with(Backend::Sqlite, limits(30, 30, 1), |app| async move {
        let body = format!(
            r#"{{"username": "anna", "password": "{}"}}"#,
            "x".repeat(60)
        );
        let stream = app.connect().await;
        let (mut reader, mut writer) = stream.into_split();
        let started = Instant::now();
        writer
            .write_all(
                format!(
                    "POST /api/v1/auth/login HTTP/1.1\r\nHost: {}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    app.host(),
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        // A byte every 200 ms: the whole body would take 20 s, and no gap reaches the limit.
        let dribble = tokio::spawn(async move {
            for byte in body.bytes() {
                if writer.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let answer = read_response(&mut reader, Duration::from_secs(15))
            .await
            .expect("an answer before the body is complete");
        let after = started.elapsed();
        dribble.abort();
        assert_eq!(answer.status, 408, "{answer:?}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(answer.header("connection"), Some("close"));
        assert!(
            after >= Duration::from_millis(900),
            "cut off after {after:?}"
        );
        assert!(closed_within(&mut reader, Duration::from_secs(5)).await);
    })
    .await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_one() {
    let cap = |config: &mut Config| {
        limits(30, 30, 30)(config);
        config.http.max_connections = 2;
    };
    helpers::run_with(Backend::Sqlite, cap, |app| async move {
        let first = app.connect().await;
        let _second = app.connect().await;
        let mut third = app.connect().await;
        third
            .write_all(
                format!(
                    "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    app.host()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        assert!(
            read_response(&mut third, Duration::from_secs(1))
                .await
                .is_none(),
            "a third connection is served while two are open"
        );
        drop(first);
        let answer = read_response(&mut third, Duration::from_secs(10)).await;
        assert_eq!(answer.expect("served once a slot is free").status, 200);
    })
    .await;
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    helpers::run(Backend::Sqlite, |app| async move {
        let mut stream = app.connect().await;
        stream
            .write_all(
                format!(
                    "POST /api/v1/auth/register HTTP/1.1\r\nHost: {}\r\n\
                     Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n",
                    app.host()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let answer = read_response(&mut stream, Duration::from_secs(10))
            .await
            .expect("an answer without a byte of the body");
        assert_eq!(answer.status, 413, "{answer:?}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(answer.header("connection"), Some("close"));
        assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    })
    .await;
}

/// Sends `head` (a request without a body) on a connection of its own; its answer.
async fn exchange(app: &TestApp, head: &str) -> helpers::RawResponse {
    let mut stream = app.connect().await;
    stream.write_all(head.as_bytes()).await.unwrap();
    read_response(&mut stream, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no answer to {head:?}"))
}

#[tokio::test]
async fn two_host_headers_are_a_bad_request() {
    helpers::run(Backend::Sqlite, |app| async move {
        let host = app.host().to_owned();
        let one = exchange(
            &app,
            &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        )
        .await;
        assert_eq!(one.status, 200);
        let two = exchange(
            &app,
            &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\n\r\n"),
        )
        .await;
        assert_eq!(two.status, 400, "{two:?}");
        assert_eq!(two.header("content-type"), Some("application/problem+json"));
        assert!(two.body.contains("more than one Host"), "{}", two.body);
    })
    .await;
}

#[tokio::test]
async fn a_missing_host_or_a_target_naming_another_host_is_a_bad_request() {
    helpers::run(Backend::Sqlite, |app| async move {
        let host = app.host().to_owned();
        for (head, status) in [
            ("GET /healthz HTTP/1.1\r\n\r\n".to_owned(), 400),
            (
                format!("GET http://evil.example/healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"),
                400,
            ),
            (
                format!("GET http://{host}/healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"),
                200,
            ),
            // HTTP/1.0 has no Host requirement.
            ("GET /healthz HTTP/1.0\r\n\r\n".to_owned(), 200),
        ] {
            let answer = exchange(&app, &head).await;
            assert_eq!(answer.status, status, "{head:?}: {answer:?}");
        }
    })
    .await;
}

/// The app served on its own, for tests of its shutdown.
struct Served {
    address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    /// Ends when `serve` returns.
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn serve_alone(adjust: impl FnOnce(&mut Config)) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("simba.db").display()
    );
    let mut config = Config::for_tests(&url);
    adjust(&mut config);
    let state = AppState::start(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app::serve(state, listener, async {
        stopped.await.ok();
    }));
    Served {
        address,
        stop,
        server,
        _dir: dir,
    }
}

#[tokio::test]
async fn shutting_down_finishes_the_request_in_flight_and_closes_idle_connections() {
    let Served {
        address,
        stop,
        server,
        _dir,
    } = serve_alone(|_| {}).await;
    let mut idle = TcpStream::connect(address).await.unwrap();
    let mut busy = TcpStream::connect(address).await.unwrap();
    let body = r#"{"username": "nobody", "password": "wrong password"}"#;
    let (first_half, second_half) = body.split_at(10);
    busy.write_all(
        format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first_half}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.send(()).unwrap();

    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "an idle connection outlives the shutdown"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !server.is_finished(),
        "the server stopped with a request in flight"
    );
    busy.write_all(second_half.as_bytes()).await.unwrap();
    let answer = read_response(&mut busy, Duration::from_secs(5))
        .await
        .expect("the request in flight is answered");
    assert_eq!(answer.status, 401, "{answer:?}");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops once the request is answered")
        .unwrap();
    assert!(TcpStream::connect(address).await.is_err());
}

#[tokio::test]
async fn shutdown_does_not_wait_forever_for_a_client_that_does_not_read() {
    let Served {
        address,
        stop,
        server,
        _dir,
    } = serve_alone(|config| {
        config.http.write_timeout = Duration::from_secs(3600);
        config.http.shutdown_timeout = Duration::from_secs(2);
    })
    .await;
    let mut stalled = ask_for_more_than_the_buffers_hold(address).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    stop.send(()).unwrap();
    let started = Instant::now();

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !server.is_finished(),
        "the server stopped without waiting for the answer in flight"
    );
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops once its shutdown timeout has passed")
        .unwrap();
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1900),
        "stopped after {after:?}"
    );
    assert!(
        read_to_close(&mut stalled, Duration::from_secs(5))
            .await
            .is_some(),
        "the stalled connection outlives the server"
    );
}
