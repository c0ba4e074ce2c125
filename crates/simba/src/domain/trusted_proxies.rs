//! The reverse proxies whose `X-Forwarded-For` the login throttle believes
//! (`SIMBA_TRUSTED_PROXIES`), parsed once from the setting: addresses and CIDR blocks, none
//! wider than /8.

use std::net::IpAddr;
use std::str::FromStr;

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
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
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
}
