//! IP allow-lists: requests from addresses outside a list are refused with
//! `403` before anything else runs.
//!
//! [`IpAllowLayer`] checks the client address that
//! [`SetRequestContextLayer`](crate::context::SetRequestContextLayer)
//! resolved under its trusted-proxy policy — never a raw `X-Forwarded-For`,
//! so a client cannot talk its way in with a header. IPv4 clients reaching
//! a dual-stack socket as IPv4-mapped IPv6 (`::ffff:10.1.2.3`) are matched
//! as the IPv4 address they are, and a list entry written as mapped IPv6
//! matches the IPv4 clients it means.
//!
//! A layer holds a global list and/or lists for path prefixes (route
//! groups, e.g. `/api/admin`): every list that applies to a request must
//! hold the address. A refusal is problem+json
//! `urn:kailash:problem:ip-not-allowed` naming the `scope` (`global` or the
//! prefix, never the address), counted in
//! `kailash_security_ip_refusals_total{scope}`, and — with an audit sink —
//! audited as `security.ip_refused` before it is answered. A request
//! without a resolved client address (the layer outside
//! `SetRequestContextLayer`) is refused too: the layer fails closed.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use kailash_core::context::{PeerAddr, SetRequestContextLayer, TrustedProxies};
//! use kailash_core::ip_allow::{IpAllowLayer, IpAllowList};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let office = IpAllowList::parse(["10.0.0.0/8", "192.0.2.7"]).unwrap();
//! let mut svc = ServiceBuilder::new()
//!     .layer(SetRequestContextLayer::new().trusted_proxies(TrustedProxies::new(["127.0.0.1/32".parse().unwrap()])))
//!     .layer(IpAllowLayer::new().route_group("/admin", office))
//!     .service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//!     });
//!
//! let from = |ip: &str, path: &str| {
//!     let mut req = Request::get(path).header("x-forwarded-for", ip).body(()).unwrap();
//!     // The TCP peer is the trusted proxy, which names the client.
//!     req.extensions_mut().insert(PeerAddr("127.0.0.1:9".parse().unwrap()));
//!     req
//! };
//! let ok = svc.ready().await.unwrap().call(from("10.9.8.7", "/admin/users")).await.unwrap();
//! assert_eq!(ok.status(), StatusCode::OK);
//! let refused = svc.ready().await.unwrap().call(from("203.0.113.5", "/admin")).await.unwrap();
//! assert_eq!(refused.status(), StatusCode::FORBIDDEN);
//! // Other paths are not in the group.
//! let other = svc.ready().await.unwrap().call(from("203.0.113.5", "/administrators")).await.unwrap();
//! assert_eq!(other.status(), StatusCode::OK);
//! # });
//! ```

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tower::{Layer, Service};

use crate::audit::{AuditDecision, AuditEvent, AuditSeverity, AuditSink, offer};
use crate::context::RequestContext;
use crate::guard::GuardFuture;
use crate::problem::{Problem, ResponseBody};

/// The most entries one list holds.
pub const MAX_ENTRIES: usize = 4096;

/// Networks a client address must be in. Written as CIDRs
/// (`10.0.0.0/8`, `2001:db8::/32`) or single addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAllowList {
    nets: Arc<[IpNet]>,
}

/// Why a list cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpAllowError {
    /// An entry is neither a CIDR nor an address.
    #[error("{entry:?} is not an IP network (CIDR such as 10.0.0.0/8) or address")]
    Invalid {
        /// The entry, as written (at most 64 characters of it).
        entry: String,
    },
    /// An empty list would refuse everybody.
    #[error("an empty allow-list would refuse every client; leave it out instead")]
    Empty,
    /// Too many entries.
    #[error("at most {MAX_ENTRIES} entries")]
    TooMany,
}

impl IpAllowList {
    /// A list of these networks (IPv4-mapped IPv6 networks are stored as the
    /// IPv4 networks they mean).
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Result<Self, IpAllowError> {
        let nets: Vec<IpNet> = nets.into_iter().map(canonical_net).collect();
        if nets.is_empty() {
            return Err(IpAllowError::Empty);
        }
        if nets.len() > MAX_ENTRIES {
            return Err(IpAllowError::TooMany);
        }
        Ok(Self { nets: nets.into() })
    }

    /// Parses CIDRs and single addresses.
    pub fn parse<I, S>(entries: I) -> Result<Self, IpAllowError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut nets = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if nets.len() == MAX_ENTRIES {
                return Err(IpAllowError::TooMany);
            }
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| IpAllowError::Invalid {
                    entry: entry.chars().take(64).collect(),
                })?;
            nets.push(net);
        }
        Self::new(nets)
    }

    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }
}

impl Serialize for IpAllowList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.nets.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for IpAllowList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(d)?;
        Self::parse(&entries).map_err(serde::de::Error::custom)
    }
}

/// `::ffff:a.b.c.d/n` (n ≥ 96) is the IPv4 network `a.b.c.d/(n-96)`.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(mapped) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped.trunc());
    }
    net.trunc()
}

/// One list and where it applies.
#[derive(Debug, Clone)]
struct Rule {
    /// `None`: every request.
    prefix: Option<String>,
    scope: Cow<'static, str>,
    list: IpAllowList,
}

impl Rule {
    fn applies(&self, path: &str) -> bool {
        match &self.prefix {
            None => true,
            Some(p) => crate::public::under(path, p),
        }
    }
}

#[derive(Clone, Default)]
struct Config {
    rules: Vec<Rule>,
    audit: Option<Arc<dyn AuditSink>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("rules", &self.rules)
            .field("audit", &self.audit.is_some())
            .finish()
    }
}

/// Refuses requests whose client address is outside the lists that apply.
/// See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct IpAllowLayer {
    config: Arc<Config>,
}

impl IpAllowLayer {
    /// A layer with no list yet (it lets everything through until one is
    /// added).
    pub fn new() -> Self {
        Self::default()
    }

    fn with_rule(mut self, rule: Rule) -> Self {
        Arc::make_mut(&mut self.config).rules.push(rule);
        self
    }

    /// Every request's client must be in `list` (scope `global`).
    #[must_use]
    pub fn global(self, list: IpAllowList) -> Self {
        self.with_rule(Rule {
            prefix: None,
            scope: Cow::Borrowed("global"),
            list,
        })
    }

    /// Requests to `prefix` and below it (`/api/admin`, `/api/admin/…`,
    /// not `/api/administrators`) must come from `list`; the scope is the
    /// prefix.
    #[must_use]
    pub fn route_group(self, prefix: &str, list: IpAllowList) -> Self {
        let prefix = if prefix.len() > 1 {
            prefix.trim_end_matches('/')
        } else {
            prefix
        };
        self.with_rule(Rule {
            prefix: Some(prefix.to_owned()),
            scope: Cow::Owned(prefix.to_owned()),
            list,
        })
    }

    /// Audits each refusal (`security.ip_refused`) before answering it; a
    /// sink that refuses the event turns the answer into `503`.
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        Arc::make_mut(&mut self.config).audit = Some(sink);
        self
    }

    /// Whether any list applies to requests for `path`.
    pub fn applies_to(&self, path: &str) -> bool {
        self.config.rules.iter().any(|r| r.applies(path))
    }

    /// Whether refusals are audited.
    pub fn has_audit(&self) -> bool {
        self.config.audit.is_some()
    }

    /// Whether any list is set.
    pub fn is_empty(&self) -> bool {
        self.config.rules.is_empty()
    }
}

impl<S> Layer<S> for IpAllowLayer {
    type Service = IpAllow<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IpAllow {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`IpAllowLayer`].
#[derive(Debug, Clone)]
pub struct IpAllow<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for IpAllow<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: 'static,
    S::Error: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.config.rules.is_empty() {
            return GuardFuture::pass(self.inner.call(req));
        }
        let ctx = req.extensions().get::<RequestContext>();
        let path = req.uri().path();
        let refused = match ctx {
            None => {
                tracing::error!(
                    "IpAllowLayer found no RequestContext (it belongs inside SetRequestContextLayer); request refused"
                );
                Some(Cow::Borrowed("global"))
            }
            Some(ctx) => {
                let ip = ctx.client_ip();
                self.config
                    .rules
                    .iter()
                    .find(|r| r.applies(path) && !r.list.contains(ip))
                    .map(|r| r.scope.clone())
            }
        };
        let Some(scope) = refused else {
            return GuardFuture::pass(self.inner.call(req));
        };
        metrics::counter!("kailash_security_ip_refusals_total", "scope" => scope.clone().into_owned())
            .increment(1);
        let problem = Problem::new(StatusCode::FORBIDDEN, "ip-not-allowed", "Forbidden")
            .with_detail("requests from this network are not allowed here")
            .with_extension("scope", scope.as_ref());
        let mut event = AuditEvent::new("security.ip_refused", AuditDecision::Deny)
            .severity(AuditSeverity::Warning)
            .resource(scope.into_owned())
            .reason("client address not in the allow-list");
        if let Some(ctx) = ctx {
            event = event.context(ctx);
        }
        GuardFuture::refused_after(offer(self.config.audit.as_ref(), event), problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_match_and_refuse_bad_entries() {
        let list =
            IpAllowList::parse(["10.0.0.0/8", "172.16.0.0/12", "2001:db8::/32", "192.0.2.7"])
                .unwrap();
        for ok in [
            "10.1.2.3",
            "172.31.255.255",
            "2001:db8::1",
            "192.0.2.7",
            "::ffff:10.9.9.9",
        ] {
            assert!(list.contains(ok.parse().unwrap()), "{ok}");
        }
        for no in [
            "11.0.0.1",
            "172.32.0.1",
            "2001:db9::1",
            "192.0.2.8",
            "::ffff:11.0.0.1",
            "::a00:1",
        ] {
            assert!(!list.contains(no.parse().unwrap()), "{no}");
        }
        // A mapped entry means the IPv4 network.
        let mapped = IpAllowList::parse(["::ffff:10.0.0.0/104"]).unwrap();
        assert!(mapped.contains("10.4.5.6".parse().unwrap()));
        assert_eq!(mapped.networks()[0].to_string(), "10.0.0.0/8");
        // Host bits are dropped.
        assert_eq!(
            IpAllowList::parse(["10.1.2.3/8"]).unwrap().networks()[0].to_string(),
            "10.0.0.0/8"
        );
        for bad in ["10.0.0.0/33", "10.0.0", "", "example.com", "10.0.0.0/8/8"] {
            assert!(
                matches!(IpAllowList::parse([bad]), Err(IpAllowError::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            IpAllowList::parse(Vec::<String>::new()),
            Err(IpAllowError::Empty)
        );
        let many = vec!["10.0.0.1"; MAX_ENTRIES + 1];
        assert_eq!(IpAllowList::parse(many), Err(IpAllowError::TooMany));
        let json: IpAllowList = serde_json::from_str(r#"["10.0.0.0/8"]"#).unwrap();
        assert_eq!(serde_json::to_string(&json).unwrap(), r#"["10.0.0.0/8"]"#);
        assert!(serde_json::from_str::<IpAllowList>(r#"["10.0.0.0/99"]"#).is_err());
    }

    #[test]
    fn route_groups_match_whole_segments() {
        let list = IpAllowList::parse(["10.0.0.0/8"]).unwrap();
        let layer = IpAllowLayer::new().route_group("/api/admin/", list);
        let rule = &layer.config.rules[0];
        for yes in ["/api/admin", "/api/admin/", "/api/admin/tenants/acme"] {
            assert!(rule.applies(yes), "{yes}");
        }
        for no in ["/api/administrators", "/api", "/api/adm", "/"] {
            assert!(!rule.applies(no), "{no}");
        }
        let root =
            IpAllowLayer::new().route_group("/", IpAllowList::parse(["10.0.0.0/8"]).unwrap());
        assert!(root.config.rules[0].applies("/anything"));
    }
}
