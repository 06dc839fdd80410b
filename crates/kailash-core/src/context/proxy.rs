use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderMap;
use ipnet::IpNet;

/// The most `X-Forwarded-For` hops examined; a longer chain is cut at the
/// rightmost 32, which bounds the work any one request can cause.
const MAX_HOPS: usize = 32;

/// The networks whose `X-Forwarded-For` entries are believed: your own load
/// balancers and reverse proxies. Empty (the default) believes nobody, so the
/// TCP peer is always the client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
}

impl TrustedProxies {
    /// Trust these networks.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            nets: nets.into_iter().collect(),
        }
    }

    /// Trust nobody.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// Resolves the client address: the peer unless it is trusted; otherwise
    /// the rightmost `X-Forwarded-For` hop that is not trusted. A malformed
    /// hop ends the walk at the last address that could be read, since
    /// nothing left of it can be attributed to a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.is_trusted(client) {
            return client;
        }
        // Hops in order of appearance across repeated headers; walk from the right.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev().take(MAX_HOPS) {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.is_trusted(ip) {
                        return ip;
                    }
                }
                None => return client,
            }
        }
        client
    }
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) to IPv4 so one client
/// has one key whichever socket family accepted it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // Some proxies append the port: `1.2.3.4:5678` or `[::1]:5678`.
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()])
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header_says() {
        let h = headers(&["1.1.1.1"]);
        assert_eq!(
            proxies().client_ip(ip("198.51.100.7"), &h),
            ip("198.51.100.7")
        );
        assert_eq!(
            TrustedProxies::none().client_ip(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        let h = headers(&["6.6.6.6, 203.0.113.9", "10.0.0.9"]);
        assert_eq!(proxies().client_ip(ip("10.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn spoofed_left_entries_are_ignored() {
        // The client sent "X-Forwarded-For: 1.2.3.4"; our proxy appended the real address.
        let h = headers(&["1.2.3.4, 198.51.100.1"]);
        assert_eq!(proxies().client_ip(ip("10.0.0.1"), &h), ip("198.51.100.1"));
    }

    #[test]
    fn all_trusted_chain_resolves_to_the_leftmost() {
        let h = headers(&["10.9.9.9, 10.0.0.2"]);
        assert_eq!(proxies().client_ip(ip("10.0.0.1"), &h), ip("10.9.9.9"));
    }

    #[test]
    fn malformed_hop_stops_the_walk() {
        let h = headers(&["1.1.1.1, garbage, 10.0.0.2"]);
        assert_eq!(proxies().client_ip(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        let h = headers(&["not-an-ip"]);
        assert_eq!(proxies().client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn ports_and_mapped_addresses_are_normalised() {
        let h = headers(&["203.0.113.5:4711", "[fd00::1]:80"]);
        assert_eq!(
            proxies().client_ip(ip("::ffff:10.0.0.1"), &h),
            ip("203.0.113.5")
        );
        assert_eq!(
            TrustedProxies::none().client_ip(ip("::ffff:192.0.2.1"), &HeaderMap::new()),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn missing_header_means_the_peer() {
        assert_eq!(
            proxies().client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }
}
