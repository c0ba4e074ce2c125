//! Outbound webhooks' vocabulary: the event types a seller subscribes to, a delivery's status,
//! and the rules an endpoint's URL, description and event list must meet before anything is
//! stored. Which addresses a webhook may reach is decided here too ([`forbidden_address`]),
//! once, for the check at creation and the one at every delivery.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

/// What happened, as the `type` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ShipmentsChanged,
    SyncRunSucceeded,
    SyncRunFailed,
    ShopCredentialsRejected,
    Test,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::ShipmentsChanged,
        EventType::SyncRunSucceeded,
        EventType::SyncRunFailed,
        EventType::ShopCredentialsRejected,
        EventType::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ShipmentsChanged => "shipments.changed",
            EventType::SyncRunSucceeded => "sync_run.succeeded",
            EventType::SyncRunFailed => "sync_run.failed",
            EventType::ShopCredentialsRejected => "shop.credentials_rejected",
            EventType::Test => "webhook.test",
        }
    }

    pub fn parse(value: &str) -> Result<EventType, String> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == value)
            .ok_or_else(|| {
                format!(
                    "has an unknown event {value:?}; known events: {}",
                    EventType::ALL.map(EventType::as_str).join(", ")
                )
            })
    }
}

/// The events an endpoint receives: at least one, each once, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSet(Vec<EventType>);

impl EventSet {
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<EventSet, String> {
        if values.is_empty() {
            return Err("must name at least one event".into());
        }
        let mut events = values
            .iter()
            .map(|v| EventType::parse(v.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        events.sort();
        events.dedup();
        Ok(EventSet(events))
    }

    /// The set as stored: the names joined by commas.
    pub fn stored(&self) -> String {
        self.names().join(",")
    }

    /// Reads back what [`EventSet::stored`] wrote.
    pub fn from_stored(stored: &str) -> Result<EventSet, String> {
        EventSet::parse(&stored.split(',').collect::<Vec<_>>())
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|e| e.as_str()).collect()
    }

    pub fn contains(&self, event: EventType) -> bool {
        self.0.contains(&event)
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Result<DeliveryStatus, String> {
        match value {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(format!("unknown delivery status {other:?}")),
        }
    }
}

/// The longest URL an endpoint may have.
pub const MAX_URL_CHARS: usize = 2048;
/// The longest description an endpoint may have.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// An endpoint's URL as far as its text can tell: `https://` (or `http://` where private
/// targets are allowed), a host, no credentials, no fragment, and not an address literal
/// webhooks may not reach. Whether its name resolves to such an address is checked by who
/// resolves it (`webhooks::address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    pub fn parse(value: &str, allow_private: bool) -> Result<WebhookUrl, String> {
        let value = value.trim();
        if value.chars().count() > MAX_URL_CHARS {
            return Err(format!("must be at most {MAX_URL_CHARS} characters"));
        }
        let url = Url::parse(value).map_err(|e| format!("is not a valid URL ({e})"))?;
        // Parsing percent-encodes what it must, which can make the URL stored much longer.
        if url.as_str().len() > MAX_URL_CHARS {
            return Err(format!(
                "must be at most {MAX_URL_CHARS} characters once encoded"
            ));
        }
        match url.scheme() {
            "https" => {}
            "http" if allow_private => {}
            "http" => return Err("must be an https:// URL".into()),
            _ => return Err("must be an https:// URL".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain a user name or password".into());
        }
        if url.fragment().is_some() {
            return Err("must not contain a fragment (#...)".into());
        }
        let literal = match url.host() {
            None => return Err("must name a host".into()),
            Some(url::Host::Domain(_)) => None,
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        };
        if let Some(ip) = literal
            && !allow_private
            && forbidden_address(ip)
        {
            return Err(
                "must not point to a private, loopback, link-local or otherwise internal address"
                    .into(),
            );
        }
        Ok(WebhookUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// An endpoint's description: any text without control characters, possibly empty.
pub fn parse_description(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "must be at most {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_owned())
}

/// Whether a webhook may not reach this address without `SIMBA_WEBHOOK_ALLOW_PRIVATE`: anything
/// that is not a public unicast address (RFC 6890's special-purpose blocks), so that a seller
/// cannot make Simba's servers call into their own network or a cloud metadata service.
pub fn forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => forbidden_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(ip),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18.0.0/15
        || a >= 240 // reserved, 240.0.0.0/4
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation, 2001:db8::/32
        || first == 0x0064 && ip.segments()[1] == 0xff9b // NAT64, 64:ff9b::/96 and /48
        || first == 0x0100 && ip.segments()[1..4] == [0, 0, 0] // discard, 100::/64
        || first == 0x2002 // 6to4, which embeds any IPv4 address
        || ip.to_ipv4().is_some_and(|v4| ip.segments()[..6] == [0; 6] && forbidden_v4(v4)) // IPv4-compatible
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_limit_holds_for_the_url_as_stored() {
        let short_but_encoded = format!("https://example.com/{}", "é".repeat(1000));
        assert!(short_but_encoded.chars().count() <= MAX_URL_CHARS);
        let refused = WebhookUrl::parse(&short_but_encoded, false).unwrap_err();
        assert!(refused.contains("at most 2048"), "{refused}");
    }

    #[test]
    fn internal_addresses_are_forbidden_and_public_ones_are_not() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "ff02::1",
        ] {
            assert!(
                forbidden_address(internal.parse().unwrap()),
                "{internal} must be refused"
            );
        }
        for public in ["93.184.216.34", "8.8.8.8", "100.128.0.1", "2606:4700::1111"] {
            assert!(
                !forbidden_address(public.parse().unwrap()),
                "{public} is public"
            );
        }
    }

    #[test]
    fn urls_must_be_https_to_a_public_host_unless_private_targets_are_allowed() {
        assert!(WebhookUrl::parse("https://hooks.example.com/simba", false).is_ok());
        assert!(WebhookUrl::parse("http://hooks.example.com/simba", false).is_err());
        assert!(WebhookUrl::parse("ftp://hooks.example.com/", false).is_err());
        assert!(WebhookUrl::parse("https://127.0.0.1/", false).is_err());
        assert!(WebhookUrl::parse("https://[::ffff:10.0.0.1]/", false).is_err());
        assert!(WebhookUrl::parse("https://user:pw@example.com/", false).is_err());
        assert!(WebhookUrl::parse("http://127.0.0.1:9/", true).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(WebhookUrl::parse(&long, false).is_err());
    }

    #[test]
    fn event_sets_refuse_unknown_events_and_keep_each_once() {
        let set = EventSet::parse(&["webhook.test", "shipments.changed", "webhook.test"]).unwrap();
        assert_eq!(set.names(), ["shipments.changed", "webhook.test"]);
        assert_eq!(EventSet::from_stored(&set.stored()).unwrap(), set);
        assert!(EventSet::parse(&["shipments.deleted"]).is_err());
        assert!(EventSet::parse::<&str>(&[]).is_err());
    }
}
