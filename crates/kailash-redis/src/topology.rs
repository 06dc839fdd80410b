//! What a Redis URL names: one server, or a Redis Cluster by its seed nodes.
//!
//! * `redis://…`, `rediss://…`, `redis+unix://…`: one server, exactly as the
//!   `redis` crate reads it.
//! * `redis+cluster://[user:password@]host:port[,host:port…][/]` (and
//!   `rediss+cluster://` for TLS): a Redis Cluster. The hosts are seed
//!   nodes — any of them gives the slot map, the client finds the rest.
//!   Every node takes the same credentials and TLS settings. A cluster has
//!   one database, so a path other than `/` or `/0` is refused.
//! * `redis+sentinel://[user:password@]host:port[,host:port…]/<master>[/<db>]`
//!   (and `rediss+sentinel://` for TLS to the sentinels and the servers):
//!   a primary found through Redis Sentinel. The hosts are sentinels (each
//!   with its port: a sentinel's is usually 26379), `<master>` the name they
//!   monitor it under. The credentials are the servers'; sentinels are
//!   asked without them.
//!
//! Errors never echo the URL, which may carry a password.

use kailash_core::state::StateError;
use redis::IntoConnectionInfo;

/// The most seed nodes one cluster URL may name.
const MAX_SEEDS: usize = 64;

/// A parsed Redis URL.
pub(crate) enum Target {
    /// One server.
    Node(Box<redis::ConnectionInfo>),
    /// A Redis Cluster's seed nodes (at least one), all with the same
    /// credentials and TLS mode.
    Cluster(Vec<redis::ConnectionInfo>),
    /// A primary found through Redis Sentinel.
    Sentinel(Box<SentinelTarget>),
}

/// What a `redis+sentinel://` URL names.
pub(crate) struct SentinelTarget {
    /// The sentinels' addresses.
    pub(crate) sentinels: Vec<redis::ConnectionAddr>,
    /// The name the sentinels monitor the primary under.
    pub(crate) master: String,
    /// The database, user and password on the servers.
    pub(crate) redis: redis::RedisConnectionInfo,
    /// TLS to the sentinels and the servers.
    pub(crate) tls: bool,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, StateError> {
        let cluster = [
            ("redis+cluster://", "redis://"),
            ("rediss+cluster://", "rediss://"),
        ]
        .into_iter()
        .find_map(|(scheme, node)| url.strip_prefix(scheme).map(|rest| (rest, node)));
        if let Some((rest, tls)) = [("redis+sentinel://", false), ("rediss+sentinel://", true)]
            .into_iter()
            .find_map(|(scheme, tls)| url.strip_prefix(scheme).map(|rest| (rest, tls)))
        {
            return sentinel(rest, tls).map(|t| Target::Sentinel(Box::new(t)));
        }
        match cluster {
            Some((rest, node_scheme)) => cluster_seeds(rest, node_scheme).map(Target::Cluster),
            None => node_info(url).map(|info| Target::Node(Box::new(info))),
        }
    }
}

/// One node's URL, checked: certificate verification cannot be switched off.
pub(crate) fn node_info(url: &str) -> Result<redis::ConnectionInfo, StateError> {
    let info = url
        .into_connection_info()
        .map_err(|_| StateError::InvalidArgument("invalid Redis URL"))?;
    if let redis::ConnectionAddr::TcpTls { insecure: true, .. } = info.addr() {
        return Err(StateError::InvalidArgument(
            "a rediss:// URL with #insecure is refused: the server certificate is always verified",
        ));
    }
    Ok(info)
}

/// The seed nodes of `rest` (what follows `redis+cluster://`), each read as
/// a `node_scheme` URL with the shared credentials.
fn cluster_seeds(rest: &str, node_scheme: &str) -> Result<Vec<redis::ConnectionInfo>, StateError> {
    const BAD: StateError = StateError::InvalidArgument(
        "invalid Redis Cluster URL: expected redis+cluster://[user:password@]host:port[,host:port...]",
    );
    if rest.contains(['#', '?']) {
        return Err(StateError::InvalidArgument(
            "a Redis Cluster URL takes no query or fragment",
        ));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !matches!(path, "" | "0") {
        return Err(StateError::InvalidArgument(
            "a Redis Cluster has only database 0: the URL's path must be empty or /0",
        ));
    }
    let (userinfo, hosts) = split_authority(authority)?;
    let mut seeds = Vec::with_capacity(hosts.len());
    for host in hosts {
        if host.is_empty() || host.contains(['@', '/']) {
            return Err(BAD);
        }
        let url = match userinfo {
            Some(userinfo) => format!("{node_scheme}{userinfo}@{host}"),
            None => format!("{node_scheme}{host}"),
        };
        seeds.push(node_info(&url).map_err(|e| match e {
            StateError::InvalidArgument("invalid Redis URL") => BAD,
            other => other,
        })?);
    }
    Ok(seeds)
}

/// The sentinels, master name, database and credentials of `rest` (what
/// follows `redis+sentinel://`).
fn sentinel(rest: &str, tls: bool) -> Result<SentinelTarget, StateError> {
    const BAD: StateError = StateError::InvalidArgument(
        "invalid Redis Sentinel URL: expected redis+sentinel://[user:password@]host:port[,host:port...]/<master>[/<db>]",
    );
    if rest.contains(['#', '?']) {
        return Err(StateError::InvalidArgument(
            "a Redis Sentinel URL takes no query or fragment",
        ));
    }
    let (authority, path) = rest.split_once('/').ok_or(BAD)?;
    let (master, db) = match path.split_once('/') {
        Some((master, db)) => (master, db),
        None => (path, ""),
    };
    let named = !master.is_empty()
        && master.len() <= 128
        && master
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !named {
        return Err(StateError::InvalidArgument(
            "a Redis Sentinel URL names the master after the hosts: 1 to 128 of [A-Za-z0-9_.-]",
        ));
    }
    let (userinfo, hosts) = split_authority(authority)?;
    let scheme = if tls { "rediss://" } else { "redis://" };
    let mut sentinels = Vec::with_capacity(hosts.len());
    for host in hosts {
        // A sentinel's port is not Redis's default: it must be given.
        let has_port = host.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty()
                && !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && !h.ends_with(':')
        });
        if host.is_empty() || host.contains(['@', '/']) || !has_port {
            return Err(BAD);
        }
        let info = node_info(&format!("{scheme}{host}")).map_err(|_| BAD)?;
        sentinels.push(info.addr().clone());
    }
    // The servers' database and credentials, read as a URL would give them.
    let credentials = match userinfo {
        Some(userinfo) => format!("redis://{userinfo}@localhost/{db}"),
        None => format!("redis://localhost/{db}"),
    };
    let redis = node_info(&credentials)
        .map_err(|_| BAD)?
        .redis_settings()
        .clone();
    Ok(SentinelTarget {
        sentinels,
        master: master.to_owned(),
        redis,
        tls,
    })
}

/// The shared credentials and the comma-separated hosts of a URL's
/// authority (at most [`MAX_SEEDS`]).
fn split_authority(authority: &str) -> Result<(Option<&str>, Vec<&str>), StateError> {
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let hosts: Vec<&str> = hosts.split(',').collect();
    if hosts.len() > MAX_SEEDS {
        return Err(StateError::InvalidArgument(
            "a Redis URL names more than 64 hosts",
        ));
    }
    Ok((userinfo, hosts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(url: &str) -> Vec<String> {
        match Target::parse(url) {
            Ok(Target::Cluster(seeds)) => seeds.iter().map(|s| s.addr().to_string()).collect(),
            Ok(Target::Node(_) | Target::Sentinel(_)) => panic!("{url}: not read as a cluster"),
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn cluster_urls_name_their_seed_nodes() {
        assert_eq!(seeds("redis+cluster://127.0.0.1:7000"), ["127.0.0.1:7000"]);
        assert_eq!(
            seeds("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001/"),
            ["10.0.0.1:7000", "10.0.0.2:7001"]
        );
        assert_eq!(
            seeds("redis+cluster://[::1]:7000,node-b:7001/0"),
            ["::1:7000", "node-b:7001"]
        );
        match Target::parse("redis+cluster://u:p%40ss@a:1,b:2").ok() {
            Some(Target::Cluster(s)) => {
                for node in &s {
                    assert_eq!(node.redis_settings().username(), Some("u"));
                    assert_eq!(node.redis_settings().password(), Some("p@ss"));
                }
            }
            _ => panic!("credentials apply to every seed"),
        }
        match Target::parse("rediss+cluster://a:1,b:2").ok() {
            Some(Target::Cluster(s)) => assert!(
                s.iter()
                    .all(|n| matches!(n.addr(), redis::ConnectionAddr::TcpTls { .. }))
            ),
            _ => panic!("rediss+cluster is TLS to every seed"),
        }
        assert!(matches!(
            Target::parse("redis://127.0.0.1:6379/2"),
            Ok(Target::Node(_))
        ));
    }

    #[test]
    fn malformed_cluster_urls_are_refused_without_echoing_them() {
        for bad in [
            "redis+cluster://",
            "redis+cluster://a:1,,b:2",
            "redis+cluster://a:1/3",
            "redis+cluster://a:1?x=1",
            "redis+cluster://:secret@a:1#insecure",
            "rediss+cluster://a:1/#insecure",
            "redis+cluster://a:notaport",
            "redis+cluster://:secret@",
        ] {
            let err = Target::parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(!err.to_string().contains("secret"), "{bad}: {err}");
        }
        let many = format!("redis+cluster://{}", vec!["a:1"; 65].join(","));
        assert!(Target::parse(&many).is_err());
    }

    #[test]
    fn sentinel_urls_name_sentinels_a_master_and_the_servers_credentials() {
        let Ok(Target::Sentinel(t)) =
            Target::parse("redis+sentinel://:s%40cret@10.0.0.1:26379,[::1]:26380/mymaster/2")
        else {
            panic!("not read as Sentinel");
        };
        assert_eq!(t.sentinels.len(), 2);
        assert_eq!(t.master, "mymaster");
        assert_eq!(t.redis.db(), 2);
        assert_eq!(t.redis.password(), Some("s@cret"));
        assert!(!t.tls);
        let Ok(Target::Sentinel(t)) = Target::parse("rediss+sentinel://s1:26379/primary") else {
            panic!("not read as Sentinel");
        };
        assert!(t.tls);
        assert!(matches!(
            t.sentinels[0],
            redis::ConnectionAddr::TcpTls { .. }
        ));
        assert_eq!(t.redis.db(), 0);
        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel://s1/mymaster",
            "redis+sentinel://s1:26379/my master",
            "redis+sentinel://:secret@s1:26379/m/x",
            "redis+sentinel://s1:26379,,s2:26379/m",
            "redis+sentinel://s1:26379/m?x=1",
            "rediss+sentinel://:secret@s1:26379/m#insecure",
        ] {
            let err = Target::parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(!err.to_string().contains("secret"), "{bad}: {err}");
        }
    }
}
