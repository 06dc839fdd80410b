use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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

/// Whether the nearest proxy's `X-Forwarded-Proto` says `https`: the last
/// value of the last header (a proxy appends what it saw; values left of
/// it were written by whoever sent the request).
pub(crate) fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get_all("x-forwarded-proto")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// How client addresses are grouped when something is counted per client
/// (rate limits, the login throttle, connection caps): IPv4 by a prefix of
/// `ipv4` bits (default 32, each address), IPv6 by a prefix of `ipv6` bits
/// (default 64: one IPv6 client usually holds a whole /64, so counting single
/// addresses would give it 2^64 buckets). IPv4-mapped IPv6 addresses count
/// as IPv4.
///
/// ```
/// use kailash_core::context::IpPrefixes;
///
/// let prefixes = IpPrefixes::default();
/// assert_eq!(prefixes.group("2001:db8::1".parse().unwrap()).to_string(), "2001:db8::/64");
/// assert_eq!(prefixes.group("2001:db8::2:3".parse().unwrap()), prefixes.group("2001:db8::1".parse().unwrap()));
/// assert_eq!(prefixes.group("::ffff:192.0.2.7".parse().unwrap()).to_string(), "192.0.2.7");
/// let coarse = IpPrefixes::new(24, 48).unwrap();
/// assert_eq!(coarse.group("192.0.2.7".parse().unwrap()).to_string(), "192.0.2.0/24");
/// assert!(IpPrefixes::new(33, 64).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefixes {
    ipv4: u8,
    ipv6: u8,
}

impl Default for IpPrefixes {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An IPv4 or IPv6 prefix length outside its allowed range (see
/// [`IpPrefixes::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPrefix {
    /// The IPv4 prefix length is not in `16..=32`.
    #[error("IPv4 prefix length must be 16 to 32, not {0}")]
    Ipv4(u8),
    /// The IPv6 prefix length is not in `32..=128`.
    #[error("IPv6 prefix length must be 32 to 128, not {0}")]
    Ipv6(u8),
}

impl IpPrefixes {
    /// Each IPv4 address alone, IPv6 by /64.
    pub const DEFAULT: Self = Self { ipv4: 32, ipv6: 64 };

    /// Groups IPv4 by `/ipv4` (16 to 32) and IPv6 by `/ipv6` (32 to 128).
    /// Shorter prefixes would put unrelated clients in one bucket.
    pub fn new(ipv4: u8, ipv6: u8) -> Result<Self, InvalidPrefix> {
        if !(16..=32).contains(&ipv4) {
            return Err(InvalidPrefix::Ipv4(ipv4));
        }
        if !(32..=128).contains(&ipv6) {
            return Err(InvalidPrefix::Ipv6(ipv6));
        }
        Ok(Self { ipv4, ipv6 })
    }

    /// The IPv4 prefix length.
    pub fn ipv4(&self) -> u8 {
        self.ipv4
    }

    /// The IPv6 prefix length.
    pub fn ipv6(&self) -> u8 {
        self.ipv6
    }

    /// The network `ip` is counted under.
    pub fn group(&self, ip: IpAddr) -> ClientNet {
        match canonical(ip) {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.ipv4)).unwrap_or(0);
                ClientNet {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)),
                    len: self.ipv4,
                }
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.ipv6))
                    .unwrap_or(0);
                ClientNet {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)),
                    len: self.ipv6,
                }
            }
        }
    }
}

/// The network a client address is counted under ([`IpPrefixes::group`]).
/// Displays as the address for a full-length prefix (`192.0.2.7`), else in
/// CIDR notation (`2001:db8::/64`): the form used in state keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNet {
    addr: IpAddr,
    len: u8,
}

impl ClientNet {
    /// The network address (the client address with its host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }
}

impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = match self.addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if self.len == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
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
    #[test]
    fn prefixes_group_clients_by_network() {
        let p = IpPrefixes::default();
        assert_eq!(p.group(ip("192.0.2.7")).to_string(), "192.0.2.7");
        assert_eq!(
            p.group(ip("2001:db8:1:2:aaaa::1")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_ne!(
            p.group(ip("2001:db8:1:3::1")),
            p.group(ip("2001:db8:1:2::1"))
        );
        let p = IpPrefixes::new(24, 48).unwrap();
        assert_eq!(p.group(ip("198.51.100.200")).to_string(), "198.51.100.0/24");
        assert_eq!(
            p.group(ip("2001:db8:1:ffff::1")).to_string(),
            "2001:db8:1::/48"
        );
        let p = IpPrefixes::new(32, 128).unwrap();
        assert_eq!(p.group(ip("2001:db8::1")).to_string(), "2001:db8::1");
        assert_eq!(p.group(ip("::ffff:10.0.0.1")).to_string(), "10.0.0.1");
        let p = IpPrefixes::new(16, 32).unwrap();
        assert_eq!(p.group(ip("10.1.2.3")).to_string(), "10.1.0.0/16");
        assert_eq!(p.group(ip("2001:db8:ff::1")).to_string(), "2001:db8::/32");
    }

    #[test]
    fn prefix_lengths_are_bounded() {
        assert_eq!(IpPrefixes::new(15, 64), Err(InvalidPrefix::Ipv4(15)));
        assert_eq!(IpPrefixes::new(33, 64), Err(InvalidPrefix::Ipv4(33)));
        assert_eq!(IpPrefixes::new(32, 31), Err(InvalidPrefix::Ipv6(31)));
        assert_eq!(IpPrefixes::new(32, 129), Err(InvalidPrefix::Ipv6(129)));
    }
}
