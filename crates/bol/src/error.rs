//! What can go wrong talking to bol, sorted by what the caller should do about it.

use crate::Calls;

/// A failed call to bol.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token endpoint rejected the client id or secret (401 `invalid_client`); retrying
    /// cannot help until the seller fixes them.
    #[error("bol rejected the client id or secret (401 invalid_client)")]
    InvalidCredentials,
    /// An API call was refused with 401 even with a freshly issued token.
    #[error("bol refused a freshly issued token: {0}")]
    Unauthorized(String),
    /// bol kept answering 429 past the retry cap.
    #[error("bol kept answering 429 Too Many Requests after {0} attempts")]
    RateLimited(u32),
    /// The resource does not exist (or belongs to another seller).
    #[error("bol has no such resource: {0}")]
    NotFound(String),
    /// A 200 whose body is not the JSON expected (after retries).
    #[error("bol sent a malformed body: {0}")]
    MalformedBody(String),
    /// No answer: connection refused or dropped, timeout, body cut off (after retries).
    #[error("could not reach bol: {0}")]
    Transport(String),
    /// bol answered 5xx (after retries).
    #[error("bol answered {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// bol's problem title and detail, or a snippet of the body.
        message: String,
    },
    /// bol refused the request with another 4xx (400, 403, 406, ...).
    #[error("bol refused the request with {status}: {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// bol's problem title and detail, or a snippet of the body.
        message: String,
    },
    /// The client could not be built (bad base URL, TLS set-up).
    #[error("invalid bol client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The HTTP status bol answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::InvalidCredentials | Error::Unauthorized(_) => Some(401),
            Error::RateLimited(_) => Some(429),
            Error::NotFound(_) => Some(404),
            Error::MalformedBody(_) => Some(200),
            Error::Server { status, .. } | Error::Rejected { status, .. } => Some(*status),
            Error::Transport(_) | Error::Config(_) => None,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::RateLimited(_)
                | Error::MalformedBody(_)
                | Error::Transport(_)
                | Error::Server { .. }
        )
    }
}

/// A failed call together with the calls it made on the way, so they can still be counted.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failure {
    /// What went wrong.
    #[source]
    pub error: Error,
    /// The calls made before giving up.
    pub calls: Calls,
}

impl Failure {
    /// See [`Error::status`].
    pub fn status(&self) -> Option<u16> {
        self.error.status()
    }

    /// See [`Error::is_transient`].
    pub fn is_transient(&self) -> bool {
        self.error.is_transient()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_that_may_pass_are_transient() {
        assert!(!Error::InvalidCredentials.is_transient());
        assert!(!Error::NotFound("x".into()).is_transient());
        assert!(Error::Transport("reset".into()).is_transient());
        let server = Error::Server {
            status: 503,
            message: "down".into(),
        };
        assert!(server.is_transient());
        assert_eq!(server.status(), Some(503));
        assert_eq!(Error::InvalidCredentials.status(), Some(401));
    }
}
