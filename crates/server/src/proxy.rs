//! The address a request comes from. Behind a reverse proxy every connection's peer is the proxy,
//! so when the peer is one of the configured trusted proxies the client is read from
//! `X-Forwarded-For`: the right-most entry that is not itself a trusted proxy. Entries further
//! left were written by the client, or by hops nobody vouches for, so they are never believed;
//! from a peer that is not trusted the header is ignored altogether, so it cannot be forged.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The reverse proxies whose `X-Forwarded-For` is believed; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR range such as 10.0.0.0/8")]
pub struct ProxyParseError(String);

impl TrustedProxies {
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        TrustedProxies(nets.into_iter().collect())
    }

    /// One IP address (a range of one) or CIDR range.
    pub fn parse_entry(entry: &str) -> Result<IpNet, ProxyParseError> {
        let entry = entry.trim();
        IpNet::from_str(entry)
            .map(|net| net.trunc())
            .or_else(|_| IpAddr::from_str(entry).map(|ip| IpNet::from(ip.to_canonical())))
            .map_err(|_| ProxyParseError(entry.to_string()))
    }

    /// A comma-separated list of IP addresses and CIDR ranges; an empty list trusts nobody.
    pub fn parse(list: &str) -> Result<Self, ProxyParseError> {
        list.split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(Self::parse_entry)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request that arrived from `peer` with `headers`.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        // Each proxy appends the address it received the request from, so reading right to left
        // walks back towards the client, one trusted hop at a time.
        let mut entries: Vec<Option<&str>> = Vec::new();
        for value in headers.get_all(X_FORWARDED_FOR) {
            match value.to_str() {
                Ok(text) => entries.extend(text.split(',').map(Some)),
                Err(_) => entries.push(None),
            }
        }
        for entry in entries.into_iter().rev() {
            // An unreadable entry ends the walk: the hop that wrote it is the last one known.
            let Some(address) = entry.and_then(forwarded_address) else {
                break;
            };
            client = address;
            if !self.contains(address) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`203.0.113.7:4711`,
/// `[2001:db8::1]:4711`) as some proxies write it.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let bare = entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(entry);
    IpAddr::from_str(bare)
        .or_else(|_| SocketAddr::from_str(entry).map(|socket| socket.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn addresses_and_ranges_are_parsed() {
        let proxies = TrustedProxies::parse(" 127.0.0.1, 10.0.0.0/8,::1 , 2001:db8::/32,").unwrap();
        for trusted in [
            "127.0.0.1",
            "10.1.2.3",
            "::1",
            "2001:db8::7",
            "::ffff:127.0.0.1",
        ] {
            assert!(proxies.contains(ip(trusted)), "{trusted}");
        }
        for other in ["127.0.0.2", "11.0.0.1", "::2", "2001:db9::1"] {
            assert!(!proxies.contains(ip(other)), "{other}");
        }
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["localhost", "10.0.0.0/33", "1.2.3", "127.0.0.1:80"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let headers = forwarded(&["203.0.113.7"]);
        let nobody = TrustedProxies::default();
        assert_eq!(
            nobody.client_addr(ip("127.0.0.1"), &headers),
            ip("127.0.0.1")
        );
        let loopback = TrustedProxies::parse("127.0.0.1").unwrap();
        assert_eq!(
            loopback.client_addr(ip("198.51.100.1"), &headers),
            ip("198.51.100.1"),
            "a client that connects directly cannot choose its address"
        );
        assert_eq!(
            loopback.client_addr(ip("127.0.0.1"), &headers),
            ip("203.0.113.7")
        );
        assert_eq!(
            loopback.client_addr(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1"),
            "without the header the proxy itself is the client"
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let peer = ip("127.0.0.1");
        let cases = [
            (&["198.51.100.9, 203.0.113.7"][..], "203.0.113.7"),
            (&["198.51.100.9, 203.0.113.7, 10.0.0.5"], "203.0.113.7"),
            (&["198.51.100.9", "203.0.113.7, 10.0.0.5"], "203.0.113.7"),
            (&["203.0.113.7:4711"], "203.0.113.7"),
            (&["[2001:db8::1]:4711"], "2001:db8::1"),
            (&["::ffff:203.0.113.7"], "203.0.113.7"),
            (&["10.0.0.6, 10.0.0.5"], "10.0.0.6"),
            (&["203.0.113.7, unknown, 10.0.0.5"], "10.0.0.5"),
            (&["203.0.113.7, "], "127.0.0.1"),
        ];
        for (values, client) in cases {
            assert_eq!(
                proxies.client_addr(peer, &forwarded(values)),
                ip(client),
                "{values:?}"
            );
        }
    }
}
