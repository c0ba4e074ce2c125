//! The address a request comes from, as the login throttle counts it: the TCP peer, or, when the
//! peer is one of the operator's reverse proxies (`SIMBA_TRUSTED_PROXIES`), the client that the
//! proxies name in `X-Forwarded-For`.
//!
//! Behind a proxy every client shares the proxy's address, so its budget of failures would be
//! everyone's. A client can write any `X-Forwarded-For` it likes, though: only the entries that
//! trusted proxies appended can be believed, so the header is read from the right, past the
//! trusted proxies, to the first address none of them is; whatever lies left of it is the
//! client's own say. A peer that is no trusted proxy is the client, whatever it sends.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::AuthContext;
use crate::domain::TrustedProxies;
use crate::error::ApiError;

/// The client's address of a request, for the login throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl<S: AuthContext> FromRequestParts<S> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no peer address on a request")))?;
        Ok(ClientAddress(client_address(
            peer.ip(),
            &parts.headers,
            state.trusted_proxies(),
        )))
    }
}

/// The client behind `peer`: the right-most `X-Forwarded-For` address that is not a trusted
/// proxy (the left-most if all are), when `peer` is a trusted proxy; otherwise, or when the
/// header is missing or an entry it must read is no address, `peer` itself.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    // Split as bytes and decode only the entries read: the left part is the client's own
    // writing, and a byte there that is no text must not send it to the proxy's budget.
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        hops.extend(value.as_bytes().split(|b| *b == b','));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(address) = std::str::from_utf8(hop).ok().and_then(parse_hop) else {
            return peer;
        };
        client = address;
        if !trusted.contains(address) {
            break;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, which some proxies write with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let unbracketed = hop
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(hop);
    let address = IpAddr::from_str(unbracketed)
        .or_else(|_| SocketAddr::from_str(hop).map(|a| a.ip()))
        .ok()?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            client_address(ip("198.51.100.1"), &headers, &trusted("10.0.0.0/8")),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &headers, &TrustedProxies::default()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let proxies = trusted("10.0.0.0/8");
        let peer = ip("10.0.0.1");
        for (values, client) in [
            (&["203.0.113.9"][..], "203.0.113.9"),
            (&["1.1.1.1, 203.0.113.9"], "203.0.113.9"),
            (&["1.1.1.1, 203.0.113.9, 10.0.0.2"], "203.0.113.9"),
            (&["1.1.1.1", "203.0.113.9, 10.0.0.2"], "203.0.113.9"),
            (&["garbage, 203.0.113.9"], "203.0.113.9"),
            (&["203.0.113.9:5555"], "203.0.113.9"),
            (&["[2001:db8::1]:443"], "2001:db8::1"),
            (&["[2001:db8::1]"], "2001:db8::1"),
            (&["::ffff:203.0.113.9"], "203.0.113.9"),
            (&["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
        ] {
            assert_eq!(
                client_address(peer, &forwarded(values), &proxies),
                ip(client),
                "{values:?}"
            );
        }
    }

    #[test]
    fn a_missing_or_malformed_header_leaves_the_peer() {
        let proxies = trusted("10.0.0.0/8");
        let peer = ip("10.0.0.1");
        for values in [
            &[][..],
            &[""],
            &["203.0.113.9, garbage"],
            &["203.0.113.9, "],
        ] {
            assert_eq!(
                client_address(peer, &forwarded(values), &proxies),
                peer,
                "{values:?}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.\xff").unwrap(),
        );
        assert_eq!(client_address(peer, &headers, &proxies), peer);
    }

    #[test]
    fn bytes_that_are_no_text_in_the_part_not_read_leave_the_client_as_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.9").unwrap(),
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &headers, &trusted("10.0.0.0/8")),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_mapped_ipv4_peer_matches_ipv4_blocks() {
        assert!(trusted("10.0.0.0/8").contains(ip("::ffff:10.0.0.1")));
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            client_address(ip("::ffff:10.0.0.1"), &headers, &trusted("10.0.0.0/8")),
            ip("203.0.113.9")
        );
    }
}
