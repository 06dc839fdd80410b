//! The request's host as a DNS name, and what it says about the tenant:
//! a subdomain of the platform's base domain, or a name to look up as a
//! tenant's custom domain. Strict, because a host that parses two ways
//! could name two tenants.

use http::Request;
use http::header::HOST;
use kailash_core::TenantId;

use super::refusal::Refusal;

/// Longest `Host` accepted (the DNS limit).
const MAX_HOST_LEN: usize = 253;

/// The request's host, lowercase, without port or trailing dot: from the one
/// `Host` header, else from the URI's authority (HTTP/2). `Ok(None)` when the
/// request carries neither or names an IPv6 literal; an error when `Host` is
/// repeated or malformed.
pub(super) fn request_host<B>(req: &Request<B>) -> Result<Option<String>, Refusal> {
    let mut values = req.headers().get_all(HOST).iter();
    let raw = match values.next() {
        Some(value) => {
            if values.next().is_some() {
                return Err(Refusal::MalformedHost);
            }
            value.to_str().map_err(|_| Refusal::MalformedHost)?
        }
        None => match req.uri().authority() {
            Some(authority) => authority.as_str(),
            None => return Ok(None),
        },
    };
    // An IPv6 literal names no tenant (and no custom domain).
    if raw.starts_with('[') {
        return Ok(None);
    }
    parse_host(raw).map(Some)
}

/// Normalises an authority (`host[:port]`) to a lowercase DNS name. IP
/// literals and userinfo are refused: neither names a tenant.
fn parse_host(raw: &str) -> Result<String, Refusal> {
    let host = match raw.rsplit_once(':') {
        Some((host, port)) => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Refusal::MalformedHost);
            }
            host
        }
        None => raw,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return Err(Refusal::MalformedHost);
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(Refusal::MalformedHost);
        }
    }
    Ok(host.to_ascii_lowercase())
}

/// What a (normalised) host says about the tenant under `base`: `Ok(None)`
/// when the host is not exactly one label below `base`.
pub(super) fn subdomain_tenant(host: &str, base: &str) -> Result<Option<TenantId>, Refusal> {
    let Some(label) = host
        .strip_suffix(base)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return Ok(None);
    };
    if label.is_empty() || label.contains('.') {
        return Ok(None);
    }
    TenantId::new(label)
        .map(Some)
        .map_err(|_| Refusal::MalformedHost)
}

/// Whether `host` is `base` or below it.
pub(super) fn under_base(host: &str, base: &str) -> bool {
    host == base
        || host
            .strip_suffix(base)
            .is_some_and(|rest| rest.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    #[test]
    fn hosts_are_normalised_strictly() {
        assert_eq!(
            parse_host("Acme.Example.com:8443").unwrap(),
            "acme.example.com"
        );
        assert_eq!(parse_host("acme.example.com.").unwrap(), "acme.example.com");
        for bad in [
            "",
            ":80",
            "acme.example.com:",
            "acme.example.com:8x",
            "user@acme.example.com",
            "acme..example.com",
            "acme example.com",
            "-acme.example.com",
        ] {
            assert_eq!(parse_host(bad), Err(Refusal::MalformedHost), "{bad:?}");
        }
    }

    #[test]
    fn subdomains_name_exactly_one_label() {
        let base = "example.com";
        assert_eq!(
            subdomain_tenant("acme.example.com", base),
            Ok(Some(id("acme")))
        );
        assert_eq!(subdomain_tenant("example.com", base), Ok(None));
        assert_eq!(subdomain_tenant("a.b.example.com", base), Ok(None));
        assert_eq!(subdomain_tenant("acmeexample.com", base), Ok(None));
        assert_eq!(subdomain_tenant("acme.example.org", base), Ok(None));
        assert!(under_base("example.com", base));
        assert!(under_base("a.b.example.com", base));
        assert!(!under_base("badexample.com", base));
    }

    #[test]
    fn request_host_prefers_a_single_host_header() {
        let req = Request::get("http://other.example.org/x")
            .header(HOST, "acme.example.com:80")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Ok(Some("acme.example.com".to_owned())));
        let req = Request::get("http://acme.example.com/x").body(()).unwrap();
        assert_eq!(request_host(&req), Ok(Some("acme.example.com".to_owned())));
        let req = Request::get("/x").body(()).unwrap();
        assert_eq!(request_host(&req), Ok(None));
        let req = Request::get("/x")
            .header(HOST, "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Ok(None));
        let req = Request::get("/x")
            .header(HOST, "a.example.com")
            .header(HOST, "b.example.com")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Err(Refusal::MalformedHost));
    }
}
