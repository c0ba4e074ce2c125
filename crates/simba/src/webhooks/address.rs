//! Which addresses a delivery may connect to, checked where the connection is made: the
//! client's resolver resolves the endpoint's name, refuses it if any address is internal
//! ([`forbidden_address`]), and hands the connector exactly the addresses it checked. A name
//! cannot resolve to a public address for the check and to an internal one for the connection
//! (DNS rebinding), because there is only one resolution. The same check answers the API's
//! question at creation, with a 422 instead of a failed delivery.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::domain::webhook::forbidden_address;

/// Why an endpoint's host may not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("could not be resolved")]
    Unresolvable,
    #[error("resolves to a private, loopback, link-local or otherwise internal address")]
    Internal,
    #[error("must be https:// unless it points to a private or loopback address")]
    PlainHttpToPublic,
}

/// Resolves `host` and checks every address; `allow_private` accepts them all.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, AddressError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| AddressError::Unresolvable)?
        .collect();
    if addrs.is_empty() {
        return Err(AddressError::Unresolvable);
    }
    if !allow_private && addrs.iter().any(|a| forbidden_address(a.ip())) {
        return Err(AddressError::Internal);
    }
    Ok(addrs)
}

/// Checks the URL's host as a delivery would: an address literal directly, a name resolved.
/// Plain `http://` (only ever accepted where private targets are allowed) must stay inside:
/// in the clear, a public receiver's events could be read on the way.
pub async fn check_url(url: &Url, allow_private: bool) -> Result<(), AddressError> {
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match url.host() {
        None => return Err(AddressError::Unresolvable),
        Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(Host::Domain(name)) => resolve_checked(name, port, allow_private)
            .await?
            .iter()
            .map(SocketAddr::ip)
            .collect(),
    };
    if !allow_private && addresses.iter().any(|&ip| forbidden_address(ip)) {
        return Err(AddressError::Internal);
    }
    if url.scheme() == "http" && addresses.iter().any(|&ip| !forbidden_address(ip)) {
        return Err(AddressError::PlainHttpToPublic);
    }
    Ok(())
}

/// The delivery client's resolver (reqwest asks it for names only; literals are checked
/// before the request by [`check_url`]).
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    pub allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            // The port is the connector's to set; 0 here is replaced.
            let addrs = resolve_checked(name.as_str(), 0, allow_private).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_unless_private_targets_are_allowed() {
        let url = Url::parse("https://localhost:8443/hook").unwrap();
        assert_eq!(check_url(&url, false).await, Err(AddressError::Internal));
        assert_eq!(check_url(&url, true).await, Ok(()));
        let literal = Url::parse("https://[::1]/hook").unwrap();
        assert_eq!(
            check_url(&literal, false).await,
            Err(AddressError::Internal)
        );
    }

    #[tokio::test]
    async fn plain_http_reaches_only_private_addresses_even_where_they_are_allowed() {
        let check = |url: &str| {
            let url = Url::parse(url).unwrap();
            async move { check_url(&url, true).await }
        };
        assert_eq!(check("http://127.0.0.1:9/hook").await, Ok(()));
        assert_eq!(check("http://localhost:9/hook").await, Ok(()));
        assert_eq!(
            check("http://93.184.215.14/hook").await,
            Err(AddressError::PlainHttpToPublic)
        );
        assert_eq!(check("https://93.184.215.14/hook").await, Ok(()));
    }
}
