//! The outbound HTTP client: address checks, connecting to the checked
//! address, redirects within the integration, timeouts and the body cap.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use kailash_core::outbound::{Either, PoolError, PoolKey};

use super::integrations::Integration;
use crate::node::NodeError;

/// The most redirects one request follows.
pub const MAX_REDIRECTS: usize = 5;
/// The most addresses of one host name that are checked and tried.
const MAX_ADDRESSES: usize = 16;
/// The `User-Agent` the outbound nodes send.
pub const USER_AGENT_VALUE: &str = concat!("kailash-runtime/", env!("CARGO_PKG_VERSION"));
/// The longest path (with its query) a request or redirect may have.
pub const MAX_PATH_BYTES: usize = 4096;

/// A special-purpose address range an outbound node refuses unless its
/// integration sets `allow_private` (see [`AddressClass::never_reachable`]
/// for the ones refused even then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressClass {
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `fc00::/7` (and the deprecated site-local `fec0::/10`).
    UniqueLocal,
    /// `100.64.0.0/10`, carrier-grade NAT.
    SharedCgnat,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`.
    Documentation,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Other special-purpose ranges: `192.0.0.0/24`, `198.18.0.0/15`,
    /// `240.0.0.0/4`, `100::/64`, Teredo `2001::/32`, IPv4-compatible
    /// `::/96`, local NAT64 `64:ff9b:1::/48`.
    Reserved,
}

impl AddressClass {
    /// Its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::SharedCgnat => "shared (CGNAT)",
            Self::Documentation => "documentation",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
        }
    }

    /// Whether no integration may reach it, `allow_private` or not
    /// (unspecified, multicast, broadcast: never a real peer).
    pub fn never_reachable(self) -> bool {
        matches!(self, Self::Unspecified | Self::Multicast | Self::Broadcast)
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The special-purpose class of `ip`, or `None` for an ordinary public
/// address. IPv4 addresses embedded in IPv6 (mapped `::ffff:0:0/96`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) are classified as the IPv4 address.
///
/// ```
/// use std::net::IpAddr;
/// use kailash_runtime::outbound::{AddressClass, classify};
///
/// let class = |s: &str| classify(s.parse::<IpAddr>().unwrap());
/// assert_eq!(class("127.0.0.1"), Some(AddressClass::Loopback));
/// assert_eq!(class("::ffff:10.0.0.1"), Some(AddressClass::Private));
/// assert_eq!(class("100.64.1.1"), Some(AddressClass::SharedCgnat));
/// assert_eq!(class("93.184.216.34"), None);
/// ```
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => Unspecified,
        (127, _, _) => Loopback,
        (10, _, _) | (192, 168, _) => Private,
        (172, b, _) if b & 0xf0 == 16 => Private,
        (169, 254, _) => LinkLocal,
        (100, b, _) if b & 0xc0 == 64 => SharedCgnat,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (192, 0, 0) => Reserved,
        (198, b, _) if b & 0xfe == 18 => Reserved,
        (224..=239, _, _) => Multicast,
        _ if ip == Ipv4Addr::BROADCAST => Broadcast,
        (240..=255, _, _) => Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    Some(match s {
        // IPv4-compatible (deprecated): never a legitimate destination.
        [0, 0, 0, 0, 0, 0, _, _] => Reserved,
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return classify_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Reserved,
        [0x2002, hi, lo, ..] => return classify_v4(embedded(hi, lo)),
        [0x2001, 0, ..] => Reserved,
        [0x2001, 0xdb8, ..] => Documentation,
        [0x100, 0, 0, 0, ..] => Reserved,
        [x, ..] if x & 0xfe00 == 0xfc00 => UniqueLocal,
        [x, ..] if x & 0xffc0 == 0xfe80 => LinkLocal,
        [x, ..] if x & 0xffc0 == 0xfec0 => UniqueLocal,
        [x, ..] if x & 0xff00 == 0xff00 => Multicast,
        _ => return None,
    })
}

/// Splits `host[:port]` (an IPv6 host in brackets), lowercasing the host.
pub(crate) fn split_authority(authority: &str, https: bool) -> Option<(String, u16)> {
    let default = if https { 443 } else { 80 };
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<Ipv6Addr>().ok()?;
        (v6, after)
    } else {
        match authority.find(':') {
            Some(i) => authority.split_at(i),
            None => (authority, ""),
        }
    };
    let port = match port {
        "" => default,
        p => {
            let digits = p.strip_prefix(':')?;
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            match digits.parse::<u16>().ok()? {
                0 => return None,
                n => n,
            }
        }
    };
    let host = host.to_ascii_lowercase();
    if !host.contains(':') {
        // A DNS name or an IPv4 literal.
        if host.is_empty()
            || host.len() > 253
            || host
                .split('.')
                .any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-') || l.ends_with('-'))
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return None;
        }
    }
    Some((host, port))
}

fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&b)
}

/// Checks an absolute path (no query): `/`-separated RFC 3986 segments,
/// well-formed `%` escapes, no empty inner segment, no `.`/`..` segment and
/// no escaped `.`, `/` or `\` (so no server's normalisation can climb out
/// of the base path).
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("is longer than {MAX_PATH_BYTES} bytes"));
    }
    if !path.starts_with('/') {
        return Err("must start with `/`".to_owned());
    }
    if let Some(b) = path.bytes().find(|&b| b != b'/' && !is_pchar(b)) {
        return Err(format!(
            "has a character that must be escaped ({:?})",
            char::from(b)
        ));
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or("has a truncated `%` escape")?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err("has a malformed `%` escape".to_owned());
            }
            if matches!(
                hex.to_ascii_lowercase().as_slice(),
                b"2e" | b"2f" | b"5c" | b"00"
            ) {
                return Err("must not escape `.`, `/`, `\\` or NUL".to_owned());
            }
        }
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        if *seg == "." || *seg == ".." {
            return Err("must not have `.` or `..` segments".to_owned());
        }
        if seg.is_empty() && i != last {
            return Err("must not have empty segments (`//`)".to_owned());
        }
    }
    Ok(())
}

/// Checks a query string (without the `?`).
pub(crate) fn check_query(query: &str) -> Result<(), String> {
    if query.bytes().all(|b| is_pchar(b) || b == b'/' || b == b'?') {
        Ok(())
    } else {
        Err("has a character that must be escaped".to_owned())
    }
}

/// Percent-encodes `s` for a query key or value (RFC 3986 unreserved kept).
pub(crate) fn encode_query_part(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

/// One outbound request, relative to the integration's first base URL.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: Method,
    /// Appended to the base path: `/…` with an optional `?query`.
    pub(crate) path_and_query: String,
    /// Headers besides `Host`, `User-Agent`, `Content-Type`, `Content-Length`.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// The body and its content type.
    pub(crate) body: Option<(Bytes, HeaderValue)>,
}

/// A final (non-redirect) response, its body read in full.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// The response body cap and what set it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cap {
    pub(crate) bytes: u64,
    pub(crate) what: &'static str,
}

impl Cap {
    /// The lower of the integration's cap and the run's remaining budget.
    pub(crate) fn of(integration: &Integration, budget_remaining: u64) -> Self {
        if budget_remaining < integration.max_response_bytes() {
            Self {
                bytes: budget_remaining,
                what: "the bytes left in the run's budget",
            }
        } else {
            Self {
                bytes: integration.max_response_bytes(),
                what: "the integration's max_response_bytes",
            }
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone)]
struct Target {
    https: bool,
    host: String,
    port: u16,
    path_and_query: String,
}

impl Target {
    fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    fn origin(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{}://{host}:{}",
            if self.https { "https" } else { "http" },
            self.port
        )
    }

    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.https { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Sends `request` through `integration`: every hop's host resolved and
/// checked, the connection made to the checked address, redirects followed
/// only within the integration, the whole exchange within its timeout and
/// the final body within `cap`. Errors name the integration, never a key.
pub(crate) async fn send(
    integration: &Integration,
    request: Request,
    cap: Cap,
) -> Result<Response, NodeError> {
    let name = integration.name();
    let total = integration.timeout();
    match tokio::time::timeout(total, follow(integration, request, cap)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(reason)) => Err(NodeError::new(format!("integration {name:?}: {reason}"))),
        Err(_) => Err(NodeError::new(format!(
            "integration {name:?}: no complete answer within the timeout of {} ms",
            total.as_millis()
        ))),
    }
}

enum Exchanged {
    Done(Response),
    Redirect(StatusCode, String),
}

async fn follow(integration: &Integration, request: Request, cap: Cap) -> Result<Response, String> {
    let Some(base) = integration.base_urls().first() else {
        return Err("has no base URL".to_owned());
    };
    let mut target = Target {
        https: base.is_https(),
        host: base.host().to_owned(),
        port: base.port(),
        path_and_query: format!("{}{}", base.path(), request.path_and_query),
    };
    let mut method = request.method;
    let mut body = request.body;
    for hop in 0..=MAX_REDIRECTS {
        match exchange(
            integration,
            &target,
            &method,
            &request.headers,
            body.clone(),
            cap,
        )
        .await?
        {
            Exchanged::Done(response) => return Ok(response),
            Exchanged::Redirect(status, location) => {
                if hop == MAX_REDIRECTS {
                    break;
                }
                let next = resolve_location(&target, &location)?;
                if !integration
                    .base_urls()
                    .iter()
                    .any(|b| b.contains(next.https, &next.host, next.port, next.path()))
                {
                    return Err(format!(
                        "refused a redirect to {}{} outside the integration's base URLs",
                        next.origin(),
                        cut(next.path(), 128)
                    ));
                }
                let to_get = status == StatusCode::SEE_OTHER
                    || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                        && method == Method::POST);
                if to_get {
                    if method != Method::HEAD {
                        method = Method::GET;
                    }
                    body = None;
                }
                target = next;
            }
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Resolves a `Location` against the current target, then checks its path
/// and query like a configured path.
fn resolve_location(at: &Target, location: &str) -> Result<Target, String> {
    let location = location.split_once('#').map_or(location, |(l, _)| l);
    if location.len() > MAX_PATH_BYTES {
        return Err("refused an over-long redirect Location".to_owned());
    }
    let (https, host, port, rest) = if let Some(rest) = location
        .strip_prefix("https://")
        .map(|r| (true, r))
        .or_else(|| location.strip_prefix("http://").map(|r| (false, r)))
        .or_else(|| location.strip_prefix("//").map(|r| (at.https, r)))
    {
        let (https, rest) = rest;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err("refused a redirect Location with user information".to_owned());
        }
        let (host, port) = split_authority(authority, https)
            .ok_or_else(|| "refused a redirect Location with a bad host".to_owned())?;
        let path = if path.is_empty() || path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        (https, host, port, path)
    } else if location.starts_with('/') {
        (at.https, at.host.clone(), at.port, location.to_owned())
    } else if location
        .split(['/', '?'])
        .next()
        .is_some_and(|head| head.contains(':'))
    {
        return Err("refused a redirect to another scheme".to_owned());
    } else {
        // A relative reference: against the current path's directory.
        let path = at.path();
        let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
        (
            at.https,
            at.host.clone(),
            at.port,
            format!("{dir}{location}"),
        )
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest.as_str(), None),
    };
    check_path(path).map_err(|e| format!("refused a redirect whose path {e}"))?;
    if let Some(q) = query {
        check_query(q).map_err(|e| format!("refused a redirect whose query {e}"))?;
    }
    Ok(Target {
        https,
        host,
        port,
        path_and_query: rest,
    })
}

/// Resolves `host` and checks every address it has; the connection is
/// then made to one of exactly these, so a second resolution (DNS
/// rebinding) cannot change where it goes.
async fn checked_addresses(
    integration: &Integration,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve host {host:?} ({})", e.kind()))?
            .take(MAX_ADDRESSES)
            .collect(),
    };
    if addresses.is_empty() {
        return Err(format!("host {host:?} has no address"));
    }
    for a in &addresses {
        if let Some(class) = classify(a.ip()) {
            if class.never_reachable() {
                return Err(format!(
                    "host {host:?} resolves to an {class} address, which is never reachable"
                ));
            }
            if !integration.allow_private() {
                return Err(format!(
                    "host {host:?} resolves to a {class} address, refused (the integration does not set allow_private)"
                ));
            }
        }
    }
    Ok(addresses)
}

async fn exchange(
    integration: &Integration,
    at: &Target,
    method: &Method,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<(Bytes, HeaderValue)>,
    cap: Cap,
) -> Result<Exchanged, String> {
    let request = request(at, method, headers, body)?;
    let connect_timeout = integration.connect_timeout();
    // Only a new connection resolves and checks the host: a kept-alive one
    // of this integration's partition was opened to a checked address.
    let connect = || async move {
        let addresses = checked_addresses(integration, &at.host, at.port).await?;
        let connect = async {
            let mut last = None;
            for a in &addresses {
                match tokio::net::TcpStream::connect(a).await {
                    Ok(tcp) => return Ok(tcp),
                    Err(e) => last = Some(e.kind()),
                }
            }
            Err(format!(
                "cannot connect to {} ({})",
                at.origin(),
                last.map_or_else(|| "no address".to_owned(), |k| k.to_string())
            ))
        };
        let timed_out = || {
            format!(
                "connecting to {} took longer than {} ms",
                at.origin(),
                connect_timeout.as_millis()
            )
        };
        if at.https {
            let tls = integration
                .tls()
                .ok_or_else(|| "has no TLS configuration for an https URL".to_owned())?;
            let name = rustls::pki_types::ServerName::try_from(at.host.clone())
                .map_err(|_| format!("host {:?} is not a valid TLS server name", at.host))?;
            let stream = tokio::time::timeout(connect_timeout, async {
                let tcp = connect.await?;
                tls.connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {} failed: {e}", at.origin()))
            })
            .await
            .map_err(|_| timed_out())??;
            Ok(Either::Right(stream))
        } else {
            let tcp = tokio::time::timeout(connect_timeout, connect)
                .await
                .map_err(|_| timed_out())??;
            Ok(Either::Left(tcp))
        }
    };
    // Tenants' traffic: never more than the pool's workload share.
    let key = PoolKey::new(at.https, at.host.clone(), at.port)
        .partition(integration.partition())
        .workload();
    let (response, connection) = integration
        .pool()
        .send(&key, connect, request)
        .await
        .map_err(|e| match e {
            PoolError::Connect(reason) => reason,
            e => format!("the request to {} failed: {e}", at.origin()),
        })?;
    let status = response.status();
    if status.is_redirection()
        && matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
        && let Some(location) = response.headers().get(LOCATION)
    {
        let location = location
            .to_str()
            .map_err(|_| "refused a redirect Location that is not ASCII".to_owned())?;
        // The redirect's body is not read: its connection is closed.
        return Ok(Exchanged::Redirect(status, location.to_owned()));
    }
    let too_large = || {
        format!(
            "the response body is larger than {} bytes ({})",
            cap.bytes, cap.what
        )
    };
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap.bytes) {
        return Err(too_large());
    }
    let (parts, mut incoming) = response.into_parts();
    let mut body: Vec<u8> = Vec::new();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| format!("reading the response failed: {e}"))?;
        if let Ok(data) = frame.into_data() {
            let len = u64::try_from(body.len().saturating_add(data.len())).unwrap_or(u64::MAX);
            if len > cap.bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&data);
        }
    }
    // Read to its end: the connection can carry the integration's next
    // request.
    connection.release();
    Ok(Exchanged::Done(Response {
        status,
        headers: parts.headers,
        body: Bytes::from(body),
    }))
}

/// The request to `at`: origin-form, `Host`, `User-Agent`, the trace
/// context, the node's headers and body.
fn request(
    at: &Target,
    method: &Method,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<(Bytes, HeaderValue)>,
) -> Result<http::Request<Bytes>, String> {
    let authority =
        HeaderValue::from_str(&at.authority()).map_err(|_| "bad host header".to_owned())?;
    let mut request = http::Request::builder()
        .method(method.clone())
        .uri(at.path_and_query.as_str());
    let request_headers = request
        .headers_mut()
        .ok_or_else(|| "bad request".to_owned())?;
    request_headers.insert(HOST, authority);
    request_headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    for (name, value) in headers {
        request_headers.append(name.clone(), value.clone());
    }
    // The run's trace continues at the called service (W3C traceparent).
    kailash_core::trace_context::inject(request_headers);
    let body = match body {
        Some((bytes, content_type)) => {
            request_headers.insert(CONTENT_TYPE, content_type);
            request_headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            bytes
        }
        None => Bytes::new(),
    };
    request
        .body(body)
        .map_err(|e| format!("cannot build the request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let c = |s: &str| classify(s.parse().unwrap());
        for (ip, class) in [
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("127.0.0.1", AddressClass::Loopback),
            ("10.1.1.1", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("100.64.0.1", AddressClass::SharedCgnat),
            ("100.127.255.255", AddressClass::SharedCgnat),
            ("192.0.2.1", AddressClass::Documentation),
            ("198.51.100.1", AddressClass::Documentation),
            ("203.0.113.1", AddressClass::Documentation),
            ("192.0.0.8", AddressClass::Reserved),
            ("198.18.0.1", AddressClass::Reserved),
            ("224.0.0.1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("250.0.0.1", AddressClass::Reserved),
            ("::", AddressClass::Unspecified),
            ("::1", AddressClass::Loopback),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::127.0.0.1", AddressClass::Reserved),
            ("64:ff9b::10.0.0.1", AddressClass::Private),
            ("2002:7f00:1::", AddressClass::Loopback),
            ("2001::1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Documentation),
            ("fc00::1", AddressClass::UniqueLocal),
            ("fd12:3456::1", AddressClass::UniqueLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("ff02::1", AddressClass::Multicast),
        ] {
            assert_eq!(c(ip), Some(class), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(c(ip), None, "{ip}");
        }
    }

    #[test]
    fn paths() {
        for ok in ["/", "/v1/chat", "/a/b/", "/a%20b", "/a:b@c", "/x;y=1"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "v1",
            "//evil.com/x",
            "/a/../b",
            "/..",
            "/a/./b",
            "/a%2e%2e/b",
            "/a%2Fb",
            "/a b",
            "/a\\b",
            "/a?b",
            "/a#b",
            "/a%zz",
            "/a%2",
            "/a//b",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn authorities() {
        assert_eq!(
            split_authority("Api.Example.com", true),
            Some(("api.example.com".into(), 443))
        );
        assert_eq!(
            split_authority("127.0.0.1:8080", false),
            Some(("127.0.0.1".into(), 8080))
        );
        assert_eq!(split_authority("[::1]:9", false), Some(("::1".into(), 9)));
        for bad in [
            "", ":80", "a:0", "a:99999", "a:+1", "[zz]:1", "a_b.com", "-a.com", "a..b", "a:",
        ] {
            assert_eq!(split_authority(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn locations() {
        let at = Target {
            https: true,
            host: "api.example.com".into(),
            port: 443,
            path_and_query: "/v1/items?x=1".into(),
        };
        let r =
            |l: &str| resolve_location(&at, l).map(|t| (t.https, t.host, t.port, t.path_and_query));
        assert_eq!(
            r("/v1/other?y=2").unwrap(),
            (true, "api.example.com".into(), 443, "/v1/other?y=2".into())
        );
        assert_eq!(r("next").unwrap().3, "/v1/next");
        assert_eq!(
            r("http://Other.com:81").unwrap(),
            (false, "other.com".into(), 81, "/".into())
        );
        assert_eq!(r("//cdn.example.com/a#frag").unwrap().1, "cdn.example.com");
        assert!(r("../admin").is_err());
        assert!(r("/v1/%2e%2e/admin").is_err());
        assert!(r("javascript:alert(1)").is_err());
        assert!(r("http://user@evil.com/").is_err());
    }
}
