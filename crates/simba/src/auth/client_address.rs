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

/// The reverse proxies whose `X-Forwarded-For` is believed (`SIMBA_TRUSTED_PROXIES`): none by
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Whether `address` is a trusted proxy; an IPv4-mapped IPv6 address (a dual-stack
    /// listener's view of an IPv4 peer) is its IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|cidr| cidr.contains(address))
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// Comma-separated addresses (`10.0.0.1`) and CIDR blocks (`10.0.0.0/8`, `fd00::/8`).
    fn from_str(value: &str) -> Result<TrustedProxies, String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| Cidr::parse(entry).ok_or_else(|| entry.to_owned()))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

/// The shortest prefix a trusted block may have: `10.0.0.0/8` and `fd00::/8`, the private
/// ranges proxies live in, and nothing wider.
const WIDEST_PREFIX: u32 = 8;

/// A block of addresses: those whose first `prefix` bits are `network`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u32,
}

impl Cidr {
    /// A block with host bits set (`10.0.0.1/8`) is refused rather than guessed at: the
    /// operator may have meant the address or the block. So is one wider than
    /// [`WIDEST_PREFIX`]: `0.0.0.0/0` would let every client name its own address.
    fn parse(entry: &str) -> Option<Cidr> {
        let (address, prefix) = match entry.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (entry, None),
        };
        let network = IpAddr::from_str(address).ok()?.to_canonical();
        let bits = bit_length(network);
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse()
                .ok()
                .filter(|p| (WIDEST_PREFIX..=bits).contains(p))?,
            None => bits,
        };
        (masked(network, prefix) == bits_of(network)).then_some(Cidr { network, prefix })
    }

    fn contains(&self, address: IpAddr) -> bool {
        bit_length(address) == bit_length(self.network)
            && masked(address, self.prefix) == masked(self.network, self.prefix)
    }
}

fn bit_length(address: IpAddr) -> u32 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The address as a number, left-aligned in 128 bits so both families mask alike.
fn bits_of(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn masked(address: IpAddr, prefix: u32) -> u128 {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    bits_of(address) & mask
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
    fn blocks_hold_the_addresses_of_their_prefix() {
        let proxies = trusted("10.0.0.0/8, 192.168.1.7, fd00::/8");
        assert!(proxies.contains(ip("10.255.0.1")));
        assert!(!proxies.contains(ip("11.0.0.1")));
        assert!(proxies.contains(ip("192.168.1.7")));
        assert!(!proxies.contains(ip("192.168.1.8")));
        assert!(proxies.contains(ip("fd12::1")));
        assert!(!proxies.contains(ip("fe80::1")));
        assert!(trusted("64.0.0.0/8").contains(ip("64.0.113.1")));
        assert!(!trusted("64.0.0.0/8").contains(ip("2001:db8::1")));
        assert!(!TrustedProxies::default().contains(ip("127.0.0.1")));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in [
            "0.0.0.0/0",
            "::/0",
            "0.0.0.0/7",
            "fc00::/7",
            "10.0.0.0/33",
            "10.0.0.1/8",
            "fd00::/129",
            "proxy.local",
            "10.0.0.0/",
            "/8",
        ] {
            assert_eq!(bad.parse::<TrustedProxies>(), Err(bad.to_owned()), "{bad}");
        }
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
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
