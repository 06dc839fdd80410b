//! Where an address is: the [`GeoResolver`] trait and [`CidrGeoFile`], a
//! resolver over a text file of `cidr country [lat lon]` lines.
//!
//! No GeoIP database ships with kailash-rs: export the ranges you have (a
//! commercial or free GeoIP database, your own office and VPN ranges) into
//! the file format below, or implement [`GeoResolver`] over your database.
//!
//! ```text
//! # cidr           country  [latitude longitude]
//! 192.0.2.0/24     NL       52.37  4.90
//! 2001:db8::/32    JP       35.68  139.69
//! 198.51.100.0/24  DE
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

/// The largest geo file [`CidrGeoFile::load`] reads, in bytes.
pub const MAX_GEO_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The most ranges one geo file may hold.
pub const MAX_GEO_RANGES: usize = 4_000_000;

/// Where an address is: an ISO 3166-1 alpha-2 country, and coordinates
/// when the source knows them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoLocation {
    country: [u8; 2],
    /// Latitude and longitude in degrees.
    pub coords: Option<(f64, f64)>,
}

impl GeoLocation {
    /// A location in `country` (two ASCII letters, any case), with optional
    /// coordinates (latitude −90..=90, longitude −180..=180). `None` for
    /// anything else.
    pub fn new(country: &str, coords: Option<(f64, f64)>) -> Option<Self> {
        let b = country.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        if let Some((lat, lon)) = coords
            && !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
        {
            return None;
        }
        Some(Self {
            country: [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()],
            coords,
        })
    }

    /// The country code, upper case (`"NL"`).
    pub fn country(&self) -> &str {
        // Always two ASCII letters (checked in `new`).
        std::str::from_utf8(&self.country).unwrap_or("??")
    }
}

/// Resolves a client address to a location. Called on successful logins
/// only, off the request path; implementations should still answer from
/// memory (no network call per login).
pub trait GeoResolver: Send + Sync + 'static {
    /// The location of `ip`, if known.
    fn resolve(&self, ip: IpAddr) -> Option<GeoLocation>;
}

/// The great-circle distance between two points (latitude, longitude in
/// degrees), in kilometres (haversine, mean Earth radius 6371 km).
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Why a geo file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeoFileError {
    /// The file could not be read.
    #[error("cannot read the geo file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is larger than [`MAX_GEO_FILE_BYTES`] or holds more than
    /// [`MAX_GEO_RANGES`] ranges.
    #[error("the geo file is too large: {0}")]
    TooLarge(&'static str),
    /// A line is malformed (1-based line number).
    #[error("line {line}: {message}")]
    Line {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// An in-memory longest-prefix-match table of CIDR ranges to locations,
/// read from a text file: one `cidr country [latitude longitude]` per line,
/// `#` starts a comment, blank lines are skipped. IPv4-mapped IPv6
/// addresses (`::ffff:192.0.2.1`) are looked up as IPv4.
///
/// ```
/// use kailash_monitoring::anomaly::{CidrGeoFile, GeoResolver};
///
/// let geo = CidrGeoFile::parse("192.0.2.0/24 NL 52.37 4.90\n192.0.2.128/25 be\n").unwrap();
/// assert_eq!(geo.resolve("192.0.2.7".parse().unwrap()).unwrap().country(), "NL");
/// assert_eq!(geo.resolve("::ffff:192.0.2.200".parse().unwrap()).unwrap().country(), "BE");
/// assert!(geo.resolve("198.51.100.1".parse().unwrap()).is_none());
/// assert_eq!(
///     CidrGeoFile::parse("10.0.0.0/8 NL\nnot-a-cidr NL\n").unwrap_err().to_string(),
///     "line 2: `not-a-cidr` is not a CIDR range: invalid IP address syntax"
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct CidrGeoFile {
    /// (is IPv6, prefix length, masked network) → location.
    ranges: HashMap<(bool, u8, u128), GeoLocation>,
    /// Prefix lengths present, longest first.
    v4_lengths: Vec<u8>,
    v6_lengths: Vec<u8>,
}

fn bits(ip: IpAddr) -> (bool, u128) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

fn mask(value: u128, len: u8, v6: bool) -> u128 {
    let width: u32 = if v6 { 128 } else { 32 };
    let len = u32::from(len).min(width);
    if len == 0 {
        return 0;
    }
    let shift = width - len;
    (value >> shift) << shift
}

impl CidrGeoFile {
    /// Reads and parses the file at `path` (at most [`MAX_GEO_FILE_BYTES`]).
    pub fn load(path: &Path) -> Result<Self, GeoFileError> {
        let size = std::fs::metadata(path)?.len();
        if size > MAX_GEO_FILE_BYTES {
            return Err(GeoFileError::TooLarge("more than 256 MiB"));
        }
        let text = std::fs::read_to_string(path)?;
        Self::parse(&text)
    }

    /// Parses the file's text. The error names the first bad line.
    pub fn parse(text: &str) -> Result<Self, GeoFileError> {
        let mut out = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let bad = |message: String| GeoFileError::Line { line, message };
            let content = raw.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            let fields: Vec<&str> = content.split_whitespace().collect();
            let (cidr, country, coords) = match fields.as_slice() {
                [cidr, country] => (*cidr, *country, None),
                [cidr, country, lat, lon] => {
                    let parse = |what: &str, v: &str| {
                        v.parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite())
                            .ok_or_else(|| bad(format!("{what} `{}` is not a number", clip(v))))
                    };
                    (
                        *cidr,
                        *country,
                        Some((parse("latitude", lat)?, parse("longitude", lon)?)),
                    )
                }
                _ => {
                    return Err(bad(
                        "expected `cidr country [latitude longitude]`".to_owned()
                    ));
                }
            };
            let net: IpNet = cidr
                .parse()
                .map_err(|e| bad(format!("`{}` is not a CIDR range: {e}", clip(cidr))))?;
            if net.trunc() != net {
                return Err(bad(format!(
                    "`{}` has host bits set (the range is {})",
                    clip(cidr),
                    net.trunc()
                )));
            }
            let location = GeoLocation::new(country, coords).ok_or_else(|| {
                bad(format!(
                    "`{}` is not a two-letter country code, or the coordinates are out of range",
                    clip(country)
                ))
            })?;
            let (v6, value) = bits(net.network());
            // An IPv4-mapped range (`::ffff:a.b.c.d/n`, n ≥ 96) is an IPv4 range.
            let (v6, len) = match (net, v6) {
                (IpNet::V6(n), false) => {
                    if n.prefix_len() < 96 {
                        return Err(bad(format!(
                            "`{}` covers IPv4-mapped and other addresses; write the IPv4 range",
                            clip(cidr)
                        )));
                    }
                    (false, n.prefix_len() - 96)
                }
                (n, v6) => (v6, n.prefix_len()),
            };
            if out.ranges.len() >= MAX_GEO_RANGES {
                return Err(GeoFileError::TooLarge("more than 4 000 000 ranges"));
            }
            if out
                .ranges
                .insert((v6, len, mask(value, len, v6)), location)
                .is_some()
            {
                return Err(bad(format!("`{}` is listed twice", clip(cidr))));
            }
            let lengths = if v6 {
                &mut out.v6_lengths
            } else {
                &mut out.v4_lengths
            };
            if let Err(at) = lengths.binary_search_by(|l| len.cmp(l)) {
                lengths.insert(at, len);
            }
        }
        Ok(out)
    }

    /// How many ranges the table holds.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// At most 64 characters of a field, for an error message.
fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

impl GeoResolver for CidrGeoFile {
    fn resolve(&self, ip: IpAddr) -> Option<GeoLocation> {
        let (v6, value) = bits(ip);
        let lengths = if v6 {
            &self.v6_lengths
        } else {
            &self.v4_lengths
        };
        lengths
            .iter()
            .find_map(|&len| self.ranges.get(&(v6, len, mask(value, len, v6))))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_mapped_addresses_are_ipv4() {
        let geo = CidrGeoFile::parse(
            "# comment\n\n10.0.0.0/8 NL 52.37 4.90 # trailing\n10.1.0.0/16 de\n0.0.0.0/0 ZZ\n\
             2001:db8::/32 JP 35.68 139.69\n2001:db8:1::/48 us\n::ffff:172.16.0.0/108 FR\n",
        )
        .unwrap();
        assert_eq!(geo.len(), 6);
        let c = |s: &str| geo.resolve(ip(s)).map(|l| l.country().to_owned());
        assert_eq!(c("10.2.3.4").as_deref(), Some("NL"));
        assert_eq!(c("10.1.3.4").as_deref(), Some("DE"));
        assert_eq!(c("::ffff:10.1.3.4").as_deref(), Some("DE"));
        assert_eq!(c("11.0.0.1").as_deref(), Some("ZZ"));
        assert_eq!(c("172.16.9.9").as_deref(), Some("FR"));
        assert_eq!(c("2001:db8:1::5").as_deref(), Some("US"));
        assert_eq!(c("2001:db8:2::5").as_deref(), Some("JP"));
        assert_eq!(c("2001:db9::1"), None);
        assert_eq!(
            geo.resolve(ip("10.9.9.9")).unwrap().coords,
            Some((52.37, 4.90))
        );
        assert_eq!(geo.resolve(ip("10.1.9.9")).unwrap().coords, None);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line, needle) in [
            ("10.0.0.0/8 NL\n10.0.0.1/8 NL\n", 2, "host bits"),
            ("10.0.0.0/8\n", 1, "expected"),
            ("10.0.0.0/8 NL 1\n", 1, "expected"),
            ("\n\n10.0.0.0/8 NLD\n", 3, "two-letter"),
            ("10.0.0.0/8 N1\n", 1, "two-letter"),
            ("10.0.0.0/8 NL 91 0\n", 1, "out of range"),
            ("10.0.0.0/8 NL x 0\n", 1, "latitude"),
            ("10.0.0.0/8 NL 0 NaN\n", 1, "longitude"),
            ("10.0.0.0/33 NL\n", 1, "not a CIDR"),
            ("10.0.0.0/8 NL\n10.0.0.0/8 DE\n", 2, "twice"),
        ] {
            match CidrGeoFile::parse(text) {
                Err(GeoFileError::Line { line: l, message }) => {
                    assert_eq!(l, line, "{text}: {message}");
                    assert!(message.contains(needle), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    proptest::proptest! {
        /// Any text is a table or an error naming a line; never a panic.
        #[test]
        fn any_text_parses_or_names_a_line(text in "(([0-9a-f.:/]{0,20}|[A-Za-z]{0,3}|-?[0-9.]{0,6}|#| |\t){0,8}\n?){0,6}") {
            match CidrGeoFile::parse(&text) {
                Ok(geo) => {
                    for ip in ["0.0.0.0", "255.255.255.255", "::", "::ffff:1.2.3.4", "ffff::1"] {
                        let _ = geo.resolve(ip.parse().unwrap());
                    }
                }
                Err(GeoFileError::Line { line, .. }) => {
                    proptest::prop_assert!(line >= 1 && line <= text.lines().count());
                }
                Err(e) => proptest::prop_assert!(false, "{e}"),
            }
        }

        /// Every address resolves to the longest range holding it.
        #[test]
        fn lookups_agree_with_a_linear_scan(
            ranges in proptest::collection::vec((proptest::num::u32::ANY, 0u8..=32), 0..20),
            probe in proptest::num::u32::ANY,
        ) {
            let mut text = String::new();
            let mut nets = Vec::new();
            for (i, (addr, len)) in ranges.iter().enumerate() {
                let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(*addr), *len).unwrap().trunc();
                if nets.iter().any(|(n, _)| *n == net) {
                    continue;
                }
                let country = format!("{}{}", (b'A' + (i % 26) as u8) as char, (b'A' + (i / 26) as u8) as char);
                text.push_str(&format!("{net} {country}\n"));
                nets.push((net, country));
            }
            let geo = CidrGeoFile::parse(&text).unwrap();
            let ip = std::net::Ipv4Addr::from(probe);
            let expected = nets
                .iter()
                .filter(|(n, _)| n.contains(&ip))
                .max_by_key(|(n, _)| n.prefix_len())
                .map(|(_, c)| c.clone());
            let got = geo.resolve(IpAddr::V4(ip)).map(|l| l.country().to_owned());
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn haversine_matches_known_distances() {
        let amsterdam = (52.37, 4.90);
        let tokyo = (35.68, 139.69);
        let d = haversine_km(amsterdam, tokyo);
        assert!((d - 9_300.0).abs() < 100.0, "{d}");
        assert!(haversine_km(amsterdam, amsterdam).abs() < 1e-9);
        // Antipodes: half the circumference.
        let d = haversine_km((0.0, 0.0), (0.0, 180.0));
        assert!((d - 20_015.0).abs() < 5.0, "{d}");
    }
}
