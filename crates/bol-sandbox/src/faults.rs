//! Injected faults: 5xx answers, latency, malformed or truncated bodies, dropped connections.
//!
//! Held in atomics rather than behind a lock because every API request reads them.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Fault settings; rates are probabilities per request in `[0, 1]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Answer 500/502/503/504 with an HTML body.
    pub error_rate: f64,
    /// Wait this long before handling each API request.
    pub latency_ms: u64,
    /// Replace a 200 body by invalid JSON of the same length.
    pub malformed_rate: f64,
    /// Announce the full `Content-Length`, send half the body, then close the connection.
    pub truncated_rate: f64,
    /// Close the connection without answering.
    pub drop_rate: f64,
}

impl Faults {
    /// Every rate must be a probability.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("error_rate", self.error_rate),
            ("malformed_rate", self.malformed_rate),
            ("truncated_rate", self.truncated_rate),
            ("drop_rate", self.drop_rate),
        ];
        match rates.iter().find(|(_, r)| !(0.0..=1.0).contains(r)) {
            Some((name, r)) => Err(format!("{name} must be between 0 and 1, got {r}")),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct FaultCell {
    error_rate: AtomicU64,
    latency_ms: AtomicU64,
    malformed_rate: AtomicU64,
    truncated_rate: AtomicU64,
    drop_rate: AtomicU64,
}

impl FaultCell {
    pub(crate) fn set(&self, f: &Faults) {
        let store = |cell: &AtomicU64, v: f64| cell.store(v.to_bits(), Ordering::Relaxed);
        store(&self.error_rate, f.error_rate);
        store(&self.malformed_rate, f.malformed_rate);
        store(&self.truncated_rate, f.truncated_rate);
        store(&self.drop_rate, f.drop_rate);
        self.latency_ms.store(f.latency_ms, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Faults {
        let load = |cell: &AtomicU64| f64::from_bits(cell.load(Ordering::Relaxed));
        Faults {
            error_rate: load(&self.error_rate),
            latency_ms: self.latency_ms.load(Ordering::Relaxed),
            malformed_rate: load(&self.malformed_rate),
            truncated_rate: load(&self.truncated_rate),
            drop_rate: load(&self.drop_rate),
        }
    }
}

/// Invalid JSON of the same length: an object opened as an array.
pub(crate) fn malformed(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    match out.first_mut() {
        Some(first) => *first = b'[',
        None => out.push(b'['),
    }
    if out.len() == 1 {
        out.push(b'}');
    }
    out
}

/// The HTML page a load balancer answers with.
pub(crate) fn error_page(status: u16) -> String {
    let reason = match status {
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    };
    format!(
        "<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bodies_do_not_parse() {
        for body in [&b"{}"[..], b"{\"shipments\":[]}", b""] {
            assert!(serde_json::from_slice::<serde_json::Value>(&malformed(body)).is_err());
        }
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        assert!(
            Faults {
                drop_rate: 1.5,
                ..Faults::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Faults {
                error_rate: 0.5,
                ..Faults::default()
            }
            .validate()
            .is_ok()
        );
    }
}
