//! The HTTP/1.1 server: accepts connections up to a cap and closes the ones that keep the
//! process waiting, which `axum::serve` never does (a client that opened a connection and sent
//! nothing, or half its headers, held it for good).
//!
//! Written over hyper's connection builder rather than with its `header_read_timeout` alone:
//! hyper 1.x starts that timer whenever it waits for a request head, and a keep-alive
//! connection waits for one from the end of its last answer (`Conn::poll_read_head`, re-armed
//! by `State::idle`), so it cannot give a request ten seconds for its headers while letting a
//! connection idle for longer than a proxy's pool does (an idle timeout under the proxy's makes
//! it send requests on connections being closed). Here each connection is in one of three
//! phases, and two of them have a deadline:
//! - idle, from its accept or the end of its last answer until its next byte: `idle_timeout`;
//! - reading a request head, from that byte until the router has the request: `header_timeout`;
//! - busy while a request is answered: no connection deadline (the body has its own,
//!   `api::limits`, and a handler takes what it takes).
//!
//! At the cap the server stops accepting: further connections wait in the kernel's listen
//! backlog, which costs the process nothing, and a burst over the cap is served a moment later
//! instead of refused. Accepting and closing them would spend an accept and a close on every
//! attempt a client retries.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::HttpSettings;

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests in flight finish, closes idle connections and returns once every connection is
/// closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: HttpSettings,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // The phases below time the headers; hyper's timer would also cut idle connections short.
    builder.header_read_timeout(None);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    wait_after_accept_error(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let phase = Arc::new(watch::Sender::new(Phase::Idle(Instant::now())));
        let io = TokioIo::new(WatchedStream {
            stream,
            phase: phase.clone(),
        });
        let service = hyper::service::service_fn({
            let router = router.clone();
            let phase = phase.clone();
            move |request| answer(router.clone(), peer, Busy::start(phase.clone()), request)
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                served = connection => if let Err(error) = served {
                    tracing::debug!(error = %error, client.addr = %peer, "connection ended");
                },
                () = deadline_passed(&phase, settings) => {
                    tracing::debug!(client.addr = %peer, "closed an idle or slow connection");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Runs `request` through the router as `axum::serve` does with
/// `into_make_service_with_connect_info::<SocketAddr>`, keeping the connection busy until the
/// answer's body has been sent.
async fn answer(
    router: Router,
    peer: SocketAddr,
    busy: Busy,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = router.oneshot(request).await?;
    Ok(response.map(|body| Body::new(BusyBody { body, _busy: busy })))
}

/// Connection errors concern one client; any other (out of file descriptors) would fail again
/// at once, so the loop pauses instead of spinning.
async fn wait_after_accept_error(error: &io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Where a connection is between requests; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle(Instant),
    ReadingHead(Instant),
    /// Answers whose body has not been sent yet.
    Busy(usize),
}

/// Completes when the connection has stayed idle, or taken to send a request's head, past its
/// limit.
async fn deadline_passed(phase: &watch::Sender<Phase>, settings: HttpSettings) {
    let mut changes = phase.subscribe();
    loop {
        let deadline = match *changes.borrow_and_update() {
            Phase::Idle(since) => Some(since + settings.idle_timeout),
            Phase::ReadingHead(since) => Some(since + settings.header_timeout),
            Phase::Busy(_) => None,
        };
        // `phase` outlives this future, so `changed` never fails.
        match deadline {
            Some(deadline) => tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep_until(deadline) => return,
            },
            None => {
                let _ = changes.changed().await;
            }
        }
    }
}

/// A client's socket that marks the end of an idle phase when a byte arrives.
struct WatchedStream {
    stream: TcpStream,
    phase: Arc<watch::Sender<Phase>>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.phase.send_if_modified(|phase| match phase {
                Phase::Idle(_) => {
                    *phase = Phase::ReadingHead(Instant::now());
                    true
                }
                Phase::ReadingHead(_) | Phase::Busy(_) => false,
            });
        }
        read
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Held from the moment the router gets a request until its answer's body is dropped (sent,
/// or abandoned with the connection); the last one out makes the connection idle.
struct Busy(Arc<watch::Sender<Phase>>);

impl Busy {
    fn start(phase: Arc<watch::Sender<Phase>>) -> Busy {
        phase.send_modify(|phase| {
            *phase = match *phase {
                Phase::Busy(answers) => Phase::Busy(answers + 1),
                Phase::Idle(_) | Phase::ReadingHead(_) => Phase::Busy(1),
            }
        });
        Busy(phase)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|phase| {
            *phase = match *phase {
                Phase::Busy(answers) if answers > 1 => Phase::Busy(answers - 1),
                _ => Phase::Idle(Instant::now()),
            }
        });
    }
}

/// An answer's body, which keeps its connection busy until hyper drops it.
struct BusyBody {
    body: Body,
    _busy: Busy,
}

impl HttpBody for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
