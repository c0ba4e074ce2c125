//! The HTTP/1.1 server: accepts connections up to a cap, in all and per client, and closes the
//! ones that keep the process waiting, which `axum::serve` never does (a client that opened a
//! connection and sent nothing, or half its headers, or stopped reading its answer, held it for
//! good, and a shutdown waited for it for good).
//!
//! Written over hyper's connection builder rather than with its `header_read_timeout` alone:
//! hyper 1.x starts that timer whenever it waits for a request head, and a keep-alive
//! connection waits for one from the end of its last answer (`Conn::poll_read_head`, re-armed
//! by `State::idle`), so it cannot give a request ten seconds for its headers while letting a
//! connection idle for longer than a proxy's pool does (an idle timeout under the proxy's makes
//! it send requests on connections being closed). Here each connection is in one of four
//! phases, and three of them have a deadline:
//! - opened, from its accept until its first byte: `header_timeout`, as a client that means to
//!   send a request sends it at once, and a silent connection is one an attacker holds;
//! - idle, from the end of its last answer until its next byte: `idle_timeout`;
//! - reading a request head, from that byte until the router has the request: `header_timeout`;
//! - busy while a request is answered: no phase deadline (the body has its own,
//!   `api::limits`, and a handler takes what it takes).
//!
//! In every phase, a connection whose socket has taken none of the bytes waiting to be sent for
//! `write_timeout` is closed: a client that stops reading an answer would otherwise hold its
//! connection, and hyper never gives up on a write. The timer restarts with every write that
//! makes progress, so a slow but live download goes on for as long as it takes.
//!
//! At the cap the server stops accepting: further connections wait in the kernel's listen
//! backlog, which costs the process nothing, and a burst over the cap is served a moment later
//! instead of refused. Accepting and closing them would spend an accept and a close on every
//! attempt a client retries.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
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
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::HttpSettings;
use crate::domain::ClientBlock;
use crate::domain::TrustedProxies;

/// The most a connection buffers of a request head (and of an answer waiting to be written).
/// hyper's default, about 400 KB, lets every connection in its header phase hold that much;
/// browsers send a few KB, 16 KB with many cookies. A head that does not fit gets 431.
const MAX_BUFFER_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests in flight finish for up to `settings.shutdown_timeout`, closes idle connections and
/// returns once every connection is closed, or dropped at the end of that time.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: HttpSettings,
    trusted_proxies: &TrustedProxies,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let open_per_block = OpenPerBlock::default();
    let graceful = GracefulShutdown::new();
    // Owns the connections, so that those still open when the shutdown timeout ends are dropped.
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    // The phases below time the headers; hyper's timer would also cut idle connections short.
    builder.header_read_timeout(None);
    builder.max_buf_size(MAX_BUFFER_BYTES);
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
        while connections.try_join_next().is_some() {}
        // A trusted reverse proxy carries every client's connections, so it is not one client.
        let block_hold = if trusted_proxies.contains(peer.ip()) {
            None
        } else {
            // Not left waiting as at the global cap: the backlog is one queue for every client
            // and names no address before the accept, so this client's connections would hold
            // up everyone's behind them; holding this one open would give it the place the cap
            // denies. Closing it costs the client a reconnect.
            let block = ClientBlock::from(peer.ip());
            let Some(hold) = open_per_block.hold(block, settings.max_connections_per_address)
            else {
                count_closed(Closed::PerAddressCap, 1);
                tracing::debug!(client.addr = %peer, "closed a connection over the per-address cap");
                continue;
            };
            Some(hold)
        };
        let state = Arc::new(watch::Sender::new(State::opened()));
        let io = TokioIo::new(WatchedStream {
            stream,
            state: state.clone(),
        });
        let service = hyper::service::service_fn({
            let router = router.clone();
            let state = state.clone();
            move |request| answer(router.clone(), peer, Busy::start(state.clone()), request)
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        connections.spawn(async move {
            let _holds = (slot, block_hold);
            tokio::select! {
                served = connection => if let Err(error) = served {
                    tracing::debug!(error = %error, client.addr = %peer, "connection ended");
                },
                closed = deadline_passed(&state, settings) => {
                    count_closed(closed, 1);
                    tracing::debug!(client.addr = %peer, reason = closed.label(), "closed a connection");
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        while connections.try_join_next().is_some() {}
        count_closed(Closed::ShutdownTimeout, connections.len());
        tracing::warn!(
            connections = connections.len(),
            "dropping the connections whose answers are not sent by the end of the shutdown timeout"
        );
    }
    connections.shutdown().await;
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
    Opened(Instant),
    Idle(Instant),
    ReadingHead(Instant),
    /// Answers whose body has not been sent yet.
    Busy(usize),
}

/// What a connection's deadlines are reckoned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    phase: Phase,
    /// Since when the socket has taken none of the bytes hyper tries to write.
    write_stalled_since: Option<Instant>,
}

impl State {
    fn opened() -> State {
        State {
            phase: Phase::Opened(Instant::now()),
            write_stalled_since: None,
        }
    }

    /// Follows a write that the socket took (`stalled` false) or did not; whether anything
    /// changed.
    fn after_write(&mut self, stalled: bool, now: Instant) -> bool {
        let stall_changed = match (self.write_stalled_since, stalled) {
            (None, true) => {
                self.write_stalled_since = Some(now);
                true
            }
            (Some(_), false) => {
                self.write_stalled_since = None;
                true
            }
            _ => false,
        };
        // The last answer's body is handed to hyper before its final bytes leave: while they
        // do, the client is reading, not idle, however slowly.
        if let (Phase::Idle(_), false) = (self.phase, stalled) {
            self.phase = Phase::Idle(now);
            return true;
        }
        stall_changed
    }

    /// When the connection is to be closed and why; `None` while a handler has it and its
    /// writes get through.
    fn deadline(&self, settings: HttpSettings) -> Option<(Instant, Closed)> {
        let phase = match self.phase {
            Phase::Opened(since) | Phase::ReadingHead(since) => {
                Some((since + settings.header_timeout, Closed::HeaderTimeout))
            }
            Phase::Idle(since) => Some((since + settings.idle_timeout, Closed::IdleTimeout)),
            Phase::Busy(_) => None,
        };
        let write = self
            .write_stalled_since
            .map(|since| (since + settings.write_timeout, Closed::WriteTimeout));
        phase.into_iter().chain(write).min_by_key(|(at, _)| *at)
    }
}

/// Why the server closed a connection, as `http_connections_closed_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    HeaderTimeout,
    IdleTimeout,
    WriteTimeout,
    PerAddressCap,
    ShutdownTimeout,
}

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::WriteTimeout => "write_timeout",
            Closed::PerAddressCap => "per_address_cap",
            Closed::ShutdownTimeout => "shutdown_timeout",
        }
    }
}

fn count_closed(closed: Closed, connections: usize) {
    metrics::counter!("http_connections_closed_total", "reason" => closed.label())
        .increment(connections as u64);
}

/// Completes, with the reason, when the connection has passed one of its deadlines.
async fn deadline_passed(state: &watch::Sender<State>, settings: HttpSettings) -> Closed {
    let mut changes = state.subscribe();
    loop {
        let deadline = changes.borrow_and_update().deadline(settings);
        // `state` outlives this future, so `changed` never fails.
        match deadline {
            Some((deadline, closed)) => tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep_until(deadline) => return closed,
            },
            None => {
                let _ = changes.changed().await;
            }
        }
    }
}

/// The connections open per client block, for `max_connections_per_address`.
#[derive(Debug, Clone, Default)]
struct OpenPerBlock(Arc<Mutex<HashMap<ClientBlock, usize>>>);

impl OpenPerBlock {
    /// A hold on one of `block`'s connections, or `None` when it has `cap` of them already.
    fn hold(&self, block: ClientBlock, cap: usize) -> Option<BlockHold> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(block).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(BlockHold {
            open: self.clone(),
            block,
        })
    }
}

/// One open connection of a client block; its drop frees the place.
#[derive(Debug)]
struct BlockHold {
    open: OpenPerBlock,
    block: ClientBlock,
}

impl Drop for BlockHold {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Entry::Occupied(mut count) = open.entry(self.block) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

/// A client's socket that marks the end of a waiting phase when a byte arrives, and the
/// writes that make no progress.
struct WatchedStream {
    stream: TcpStream,
    state: Arc<watch::Sender<State>>,
}

impl WatchedStream {
    fn note_write<T>(&self, written: &Poll<T>) {
        let stalled = written.is_pending();
        self.state
            .send_if_modified(|state| state.after_write(stalled, Instant::now()));
    }
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
            this.state.send_if_modified(|state| match state.phase {
                Phase::Opened(_) | Phase::Idle(_) => {
                    state.phase = Phase::ReadingHead(Instant::now());
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
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.note_write(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.note_write(&written);
        written
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
struct Busy(Arc<watch::Sender<State>>);

impl Busy {
    fn start(state: Arc<watch::Sender<State>>) -> Busy {
        state.send_modify(|state| {
            state.phase = match state.phase {
                Phase::Busy(answers) => Phase::Busy(answers + 1),
                Phase::Opened(_) | Phase::Idle(_) | Phase::ReadingHead(_) => Phase::Busy(1),
            }
        });
        Busy(state)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|state| {
            state.phase = match state.phase {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HttpSettings {
        HttpSettings {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(20),
            max_connections: 512,
            max_connections_per_address: 64,
        }
    }

    #[test]
    fn the_nearer_of_the_phase_and_write_deadlines_applies() {
        let t = Instant::now();
        let state = |phase, write_stalled_since| State {
            phase,
            write_stalled_since,
        };
        let deadline = |state: State| state.deadline(settings());
        let secs = Duration::from_secs;
        assert_eq!(
            deadline(state(Phase::Opened(t), None)),
            Some((t + secs(10), Closed::HeaderTimeout))
        );
        assert_eq!(deadline(state(Phase::Busy(1), None)), None);
        assert_eq!(
            deadline(state(Phase::Busy(2), Some(t))),
            Some((t + secs(30), Closed::WriteTimeout))
        );
        assert_eq!(
            deadline(state(Phase::Idle(t), Some(t))),
            Some((t + secs(30), Closed::WriteTimeout))
        );
        assert_eq!(
            deadline(state(Phase::ReadingHead(t), Some(t))),
            Some((t + secs(10), Closed::HeaderTimeout))
        );
    }

    #[test]
    fn the_last_bytes_of_an_answer_leaving_slowly_keep_the_connection_from_idling() {
        let t = Instant::now();
        let later = t + Duration::from_secs(60);
        let mut state = State {
            phase: Phase::Idle(t),
            write_stalled_since: None,
        };
        assert!(state.after_write(false, later));
        assert_eq!(state.phase, Phase::Idle(later));
        assert!(state.after_write(true, later));
        assert_eq!(
            state.phase,
            Phase::Idle(later),
            "a stalled write is no progress"
        );
        assert_eq!(state.write_stalled_since, Some(later));
        let mut busy = State {
            phase: Phase::Busy(1),
            write_stalled_since: None,
        };
        assert!(!busy.after_write(false, later));
        assert_eq!(busy.phase, Phase::Busy(1));
    }

    #[test]
    fn a_block_holds_up_to_its_cap_and_frees_a_place_on_drop() {
        let open = OpenPerBlock::default();
        let block = ClientBlock::from(std::net::IpAddr::from([192, 0, 2, 7]));
        let other = ClientBlock::from(std::net::IpAddr::from([192, 0, 2, 8]));
        let first = open.hold(block, 2).unwrap();
        let _second = open.hold(block, 2).unwrap();
        assert!(open.hold(block, 2).is_none());
        assert!(open.hold(other, 2).is_some());
        drop(first);
        assert!(open.hold(block, 2).is_some());
        assert!(open.0.lock().unwrap().get(&other).is_none());
    }
}
