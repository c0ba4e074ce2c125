//! What a request may send before a handler sees it: a body no larger than the limit (refused
//! from its declared length, before it is sent), within a time limit, and one Host that is
//! allowed.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};

use super::BODY_LIMIT_BYTES;
use crate::config::Config;
use crate::error::ApiError;

/// Refuses a body declared larger than the limit at once, instead of after reading up to the
/// limit, and answers 408 when the body does not arrive within `timeout` of the headers.
/// Either way the connection is closed: the rest of the body may still be on its way.
pub(super) async fn limit_body(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT_BYTES as u64) {
        return closing(ApiError::PayloadTooLarge);
    }
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let timed_out = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timed_out: timed_out.clone(),
        })
    });
    let response = next.run(request).await;
    if timed_out.load(Ordering::Relaxed) {
        return closing(ApiError::RequestTimeout);
    }
    response
}

/// `error`'s answer, closing the connection after it.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once its deadline has passed, however the client paces it:
/// tower-http's `RequestBodyTimeout` restarts its timer at every chunk, so a client sending a
/// byte a second would hold the request for as long as the limit lets the body grow.
struct DeadlineBody {
    body: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )
            .into())));
        }
        Pin::new(&mut this.body)
            .poll_frame(cx)
            .map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Django's `ALLOWED_HOSTS`: a request for another Host is refused, so that links the API
/// builds from the Host header cannot point elsewhere. The Host must also be unambiguous
/// (RFC 9112 §3.2): one header, present on HTTP/1.1, and naming the same host as an
/// absolute-form target, which a server must otherwise prefer to it.
pub(super) async fn check_host(
    State(config): State<Arc<Config>>,
    request: Request,
    next: Next,
) -> Response {
    let detail = match requested_host(&request) {
        Ok(host) if config.allowed_hosts.allows(host) => return next.run(request).await,
        Ok(_) => "The Host header is not in ALLOWED_HOSTS.",
        Err(detail) => detail,
    };
    ApiError::BadRequest {
        detail: detail.into(),
        errors: None,
    }
    .into_response()
}

fn requested_host(request: &Request) -> Result<&str, &'static str> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("The request has more than one Host header.");
    }
    let host = host
        .map(|h| h.to_str())
        .transpose()
        .map_err(|_| "The Host header is not valid.")?;
    match (host, request.uri().authority()) {
        (Some(host), Some(target)) if !host.eq_ignore_ascii_case(target.as_str()) => {
            Err("The request target names another host than the Host header.")
        }
        (None, _) if request.version() >= Version::HTTP_11 => {
            Err("An HTTP/1.1 request must have a Host header.")
        }
        (Some(host), _) => Ok(host),
        (None, target) => Ok(target.map_or("", |t| t.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, target: &str, hosts: &[&str]) -> Request {
        let mut builder = Request::builder().version(version).uri(target);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn the_host_must_be_one_and_agree_with_the_target() {
        let v11 = Version::HTTP_11;
        assert_eq!(requested_host(&request(v11, "/x", &["a.nl"])), Ok("a.nl"));
        assert!(requested_host(&request(v11, "/x", &["a.nl", "b.nl"])).is_err());
        assert!(requested_host(&request(v11, "/x", &[])).is_err());
        assert_eq!(
            requested_host(&request(v11, "http://A.nl:80/x", &["a.nl:80"])),
            Ok("a.nl:80")
        );
        assert!(requested_host(&request(v11, "http://evil.example/x", &["a.nl"])).is_err());
        assert_eq!(
            requested_host(&request(Version::HTTP_10, "/x", &[])),
            Ok("")
        );
        assert_eq!(
            requested_host(&request(Version::HTTP_10, "http://a.nl/x", &[])),
            Ok("a.nl")
        );
    }
}
