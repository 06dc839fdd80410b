use std::fmt;

use crate::tenant::TenantId;

/// The owner-chosen first part of a [`StateKey`] (`"session"`, `"lockout"`).
///
/// Checked at compile time when declared as a constant: a namespace must be 1
/// to 32 characters of `[a-z0-9_.-]`.
///
/// ```
/// use kailash_core::state::Namespace;
/// const SESSIONS: Namespace = Namespace::new("session");
/// assert_eq!(SESSIONS.as_str(), "session");
/// ```
///
/// ```compile_fail
/// use kailash_core::state::Namespace;
/// const BAD: Namespace = Namespace::new("has:colon");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Namespace(&'static str);

impl Namespace {
    /// A namespace; a malformed literal fails to compile when used in a `const`.
    pub const fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(
            !bytes.is_empty() && bytes.len() <= 32,
            "namespace must be 1-32 bytes"
        );
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let ok =
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-';
            assert!(ok, "namespace may only contain [a-z0-9_.-]");
            i += 1;
        }
        Self(name)
    }

    /// The namespace text.
    pub const fn as_str(&self) -> &'static str {
        self.0
    }
}

/// A key in the shared state.
///
/// Built with [`StateKey::tenant`] (the key belongs to one tenant and carries
/// its id) or [`StateKey::global`] (deliberately shared by all tenants, such
/// as a per-client-IP rate limit). Tenant ids and namespaces cannot contain
/// `:`, so the id (free text, last) can never make two keys collide.
///
/// Rendered forms: `t:<tenant>:<namespace>:<id>` and `g:<namespace>:<id>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey(Box<str>);

impl StateKey {
    /// A key owned by `tenant`.
    pub fn tenant(tenant: &TenantId, namespace: Namespace, id: &str) -> Self {
        let (t, ns) = (tenant.as_str(), namespace.as_str());
        let mut s = String::with_capacity(4 + t.len() + ns.len() + id.len());
        s.push_str("t:");
        s.push_str(t);
        s.push(':');
        s.push_str(ns);
        s.push(':');
        s.push_str(id);
        Self(s.into_boxed_str())
    }

    /// A key shared by all tenants.
    pub fn global(namespace: Namespace, id: &str) -> Self {
        let ns = namespace.as_str();
        let mut s = String::with_capacity(3 + ns.len() + id.len());
        s.push_str("g:");
        s.push_str(ns);
        s.push(':');
        s.push_str(id);
        Self(s.into_boxed_str())
    }

    /// A global key whose id is written straight from a `Display` value
    /// (an IP address, a number) without an intermediate string.
    pub fn global_display(namespace: Namespace, id: impl fmt::Display) -> Self {
        use std::fmt::Write as _;
        let ns = namespace.as_str();
        let mut s = String::with_capacity(3 + ns.len() + 40);
        s.push_str("g:");
        s.push_str(ns);
        s.push(':');
        // Writing into a String cannot fail.
        let _ = write!(s, "{id}");
        Self(s.into_boxed_str())
    }

    /// The rendered key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A rendered key read back (from a backend's key listing): `None`
    /// unless it has the shape of a tenant or global key with a valid
    /// tenant id and namespace.
    pub fn parse(rendered: &str) -> Option<Self> {
        let rest = if let Some(rest) = rendered.strip_prefix("t:") {
            let (tenant, rest) = rest.split_once(':')?;
            TenantId::new(tenant).ok()?;
            rest
        } else {
            rendered.strip_prefix("g:")?
        };
        let (ns, _id) = rest.split_once(':')?;
        let ok = !ns.is_empty()
            && ns.len() <= 32
            && ns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        ok.then(|| Self(rendered.into()))
    }

    /// Whether the key is in `namespace` (under any tenant, or global).
    pub fn in_namespace(&self, namespace: Namespace) -> bool {
        let rest = match self.0.strip_prefix("t:") {
            Some(rest) => rest.split_once(':').map_or("", |(_, r)| r),
            None => self.0.strip_prefix("g:").unwrap_or(""),
        };
        rest.strip_prefix(namespace.as_str())
            .is_some_and(|r| r.starts_with(':'))
    }

    /// The id part (after the namespace).
    pub fn id(&self) -> &str {
        let rest = match self.0.strip_prefix("t:") {
            Some(rest) => rest.split_once(':').map_or("", |(_, r)| r),
            None => self.0.strip_prefix("g:").unwrap_or(""),
        };
        rest.split_once(':').map_or("", |(_, id)| id)
    }

    /// The tenant part, for tenant keys.
    pub fn tenant_id(&self) -> Option<&str> {
        self.0
            .strip_prefix("t:")
            .and_then(|rest| rest.split(':').next())
    }
}

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateKey({:?})", &*self.0)
    }
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_keys_parse_back_and_know_their_namespace() {
        const NS: Namespace = Namespace::new("mfa.secret");
        const OTHER: Namespace = Namespace::new("mfa");
        let acme = TenantId::new("acme").unwrap();
        for key in [
            StateKey::tenant(&acme, NS, "alice:x"),
            StateKey::global(NS, "bob"),
        ] {
            let back = StateKey::parse(key.as_str()).unwrap();
            assert_eq!(back, key);
            assert!(back.in_namespace(NS));
            assert!(!back.in_namespace(OTHER));
        }
        assert_eq!(StateKey::tenant(&acme, NS, "alice:x").id(), "alice:x");
        assert_eq!(StateKey::global(NS, "bob").id(), "bob");
        for bad in [
            "",
            "x:ns:id",
            "t:ACME:ns:id",
            "t:acme",
            "g:",
            "g:NS:id",
            "g:ns",
        ] {
            assert_eq!(StateKey::parse(bad), None, "{bad}");
        }
    }

    const QUOTA: Namespace = Namespace::new("quota.day");
    const RL_IP: Namespace = Namespace::new("rl.ip");

    #[test]
    fn keys_render_with_scope() {
        let acme = TenantId::new("acme").unwrap();
        let k = StateKey::tenant(&acme, QUOTA, "api:2026-11-26");
        assert_eq!(k.as_str(), "t:acme:quota.day:api:2026-11-26");
        assert_eq!(k.tenant_id(), Some("acme"));
        let g = StateKey::global(RL_IP, "10.0.0.1");
        assert_eq!(g.as_str(), "g:rl.ip:10.0.0.1");
        assert_eq!(g.tenant_id(), None);
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(StateKey::global_display(RL_IP, ip), g);
    }
}
