//! The block of addresses one client usually holds, which per-client limits count by: an IPv6
//! subscriber gets a whole /64 and can pick any address in it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// An IPv4 address, or the /64 of an IPv6 one; an IPv4-mapped IPv6 address is its IPv4
/// address, as the same client reaches a dual-stack socket that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientBlock {
    V4(Ipv4Addr),
    V6([u16; 4]),
}

impl From<IpAddr> for ClientBlock {
    fn from(ip: IpAddr) -> ClientBlock {
        match ip {
            IpAddr::V4(v4) => ClientBlock::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientBlock::V4(v4),
                None => {
                    let s = v6.segments();
                    ClientBlock::V6([s[0], s[1], s[2], s[3]])
                }
            },
        }
    }
}

impl fmt::Display for ClientBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientBlock::V4(v4) => write!(f, "{v4}"),
            ClientBlock::V6([a, b, c, d]) => write!(f, "{a:x}:{b:x}:{c:x}:{d:x}::/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ip: &str) -> ClientBlock {
        ClientBlock::from(ip.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(block("2001:db8:1:2:aaaa::1"), block("2001:db8:1:2:ffff::9"));
        assert_ne!(block("2001:db8:1:2::1"), block("2001:db8:1:3::1"));
        assert_eq!(block("::ffff:192.0.2.7"), block("192.0.2.7"));
        assert_ne!(block("192.0.2.7"), block("192.0.2.8"));
    }

    #[test]
    fn a_block_reads_as_its_address_or_its_64() {
        assert_eq!(block("192.0.2.7").to_string(), "192.0.2.7");
        assert_eq!(
            block("2001:db8:0:2:aaaa::1").to_string(),
            "2001:db8:0:2::/64"
        );
    }
}
