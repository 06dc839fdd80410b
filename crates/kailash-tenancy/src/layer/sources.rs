//! What a request says about its tenant, source by source, and the rule
//! that every source present must agree — so a header or host can confirm
//! the token's tenant but never replace it.

use http::Request;
use kailash_core::{Principal, TenantId};

use super::config::Config;
use super::header::header_tenant;
use super::host::{request_host, subdomain_tenant, under_base};
use super::refusal::Refusal;

/// Where a tenant id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Principal,
    Header,
    Subdomain,
    CustomDomain,
}

/// The ids the sources named; at most one per source.
#[derive(Debug, Default)]
pub(super) struct Claims {
    ids: [Option<(Source, TenantId)>; 4],
    /// An authenticated principal is present whose token names no tenant,
    /// and the layer does not let a header or host choose one for it.
    tenantless_principal: bool,
}

impl Claims {
    pub(super) fn add(&mut self, source: Source, id: TenantId) {
        let slot = match source {
            Source::Principal => 0,
            Source::Header => 1,
            Source::Subdomain => 2,
            Source::CustomDomain => 3,
        };
        self.ids[slot] = Some((source, id));
    }

    /// The one tenant every present source agrees on. A principal without
    /// a tenant cannot have one chosen by the other sources (unless the
    /// layer allows it): the token, not the request, says who it works for.
    pub(super) fn agreed(&self) -> Result<TenantId, Refusal> {
        let mut present = self.ids.iter().flatten();
        let Some((_, first)) = present.next() else {
            return Err(Refusal::NoTenant);
        };
        if self.tenantless_principal {
            return Err(Refusal::TenantlessPrincipal);
        }
        if present.any(|(_, id)| id != first) {
            return Err(Refusal::Mismatch);
        }
        Ok(first.clone())
    }

    /// The id the principal's token names, if any.
    pub(super) fn principal(&self) -> Option<&TenantId> {
        self.ids[0].as_ref().map(|(_, id)| id)
    }
}

/// The part of resolution that needs no I/O: the principal, the header and
/// the subdomain, plus the host a custom-domain lookup would use.
#[derive(Debug)]
pub(super) struct Local {
    pub(super) claims: Claims,
    pub(super) lookup_host: Option<String>,
}

/// The local part of resolution: reads the principal, the header and the
/// host as configured. An error when the header or host is malformed.
pub(super) fn named<B>(config: &Config, req: &Request<B>) -> Result<Local, Refusal> {
    let mut claims = Claims::default();
    match req.extensions().get::<Principal>().map(Principal::tenant) {
        Some(Some(tenant)) => claims.add(Source::Principal, tenant.clone()),
        Some(None) => claims.tenantless_principal = !config.allow_tenantless,
        None => {}
    }
    if config.header
        && let Some(id) = header_tenant(req.headers())?
    {
        claims.add(Source::Header, id);
    }
    let mut lookup_host = None;
    if config.needs_host()
        && let Some(host) = request_host(req)?
    {
        let mut platform = false;
        if let Some(base) = &config.base_domain {
            platform = under_base(&host, base);
            if let Some(id) = subdomain_tenant(&host, base)? {
                claims.add(Source::Subdomain, id);
            }
        }
        if config.custom_domains && !platform {
            lookup_host = Some(host);
        }
    }
    Ok(Local {
        claims,
        lookup_host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    #[test]
    fn all_sources_must_agree() {
        let mut claims = Claims::default();
        assert_eq!(claims.agreed(), Err(Refusal::NoTenant));
        claims.add(Source::Header, id("acme"));
        assert_eq!(claims.agreed(), Ok(id("acme")));
        claims.add(Source::Subdomain, id("acme"));
        assert_eq!(claims.agreed(), Ok(id("acme")));
        claims.add(Source::Principal, id("globex"));
        assert_eq!(claims.agreed(), Err(Refusal::Mismatch));
        assert_eq!(claims.principal(), Some(&id("globex")));
    }

    #[test]
    fn a_tenantless_principal_cannot_be_given_a_tenant() {
        let mut claims = Claims {
            tenantless_principal: true,
            ..Claims::default()
        };
        assert_eq!(claims.agreed(), Err(Refusal::NoTenant));
        claims.add(Source::Header, id("globex"));
        assert_eq!(claims.agreed(), Err(Refusal::TenantlessPrincipal));
    }
}
