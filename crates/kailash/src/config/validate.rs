//! Checks of values that parse but make no sense together or alone.

use std::borrow::Cow;

use super::{GatewayConfig, TenancySection};

impl GatewayConfig {
    fn validate_health(&self) -> Result<(), (Cow<'static, str>, String)> {
        let h = &self.health;
        if h.check_interval.0.is_zero() {
            return Err(("health.check_interval".into(), "must be positive".into()));
        }
        if h.timeout.0.is_zero() {
            return Err(("health.timeout".into(), "must be positive".into()));
        }
        if h.timeout.0 > h.check_interval.0 {
            return Err((
                "health.timeout".into(),
                "must not be longer than health.check_interval".into(),
            ));
        }
        for (key, n) in [
            ("health.failure_threshold", h.failure_threshold),
            ("health.recovery_threshold", h.recovery_threshold),
        ] {
            if n == 0 || n > 100 {
                return Err((key.into(), "must be between 1 and 100".into()));
            }
        }
        for (key, t) in [
            ("health.memory_threshold", h.memory_threshold),
            ("health.disk_threshold", h.disk_threshold),
            (
                "health.workflow_failure_threshold",
                h.workflow_failure_threshold,
            ),
        ] {
            if !(t > 0.0 && t <= 1.0) {
                return Err((
                    key.into(),
                    "must be a fraction above 0 and at most 1".into(),
                ));
            }
        }
        if h.max_active_sessions == 0 {
            return Err((
                "health.max_active_sessions".into(),
                "must be at least 1".into(),
            ));
        }
        if h.external_apis.len() > super::MAX_EXTERNAL_APIS {
            return Err((
                "health.external_apis".into(),
                format!("at most {} entries", super::MAX_EXTERNAL_APIS),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, api) in h.external_apis.iter().enumerate() {
            let valid = !api.name.is_empty()
                && api.name.len() <= 64
                && api
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err((
                    format!("health.external_apis[{i}].name").into(),
                    "must be 1 to 64 characters of a-z, 0-9 and _".into(),
                ));
            }
            if crate::health_checks::BUILTIN_CHECKS.contains(&api.name.as_str())
                || !names.insert(&api.name)
            {
                return Err((
                    format!("health.external_apis[{i}].name").into(),
                    format!("`{}` is already a check's name", api.name),
                ));
            }
            if api.url.len() > 2048 {
                return Err((
                    format!("health.external_apis[{i}].url").into(),
                    "longer than 2048 bytes".into(),
                ));
            }
            kailash_monitoring::outbound::parse(&api.url)
                .map(|_| ())
                .map_err(|e| (format!("health.external_apis[{i}].url").into(), e))?;
        }
        Ok(())
    }

    fn validate_billing(
        &self,
        b: &super::sections::BillingConfig,
    ) -> Result<(), (Cow<'static, str>, String)> {
        use std::time::Duration;
        if self.tenants.is_empty() {
            return Err((
                "billing".into(),
                "[billing] needs [[tenants]] (usage is metered per tenant)".into(),
            ));
        }
        crate::billing::check_url(&b.webhook_url).map_err(|e| ("billing.webhook_url".into(), e))?;
        match super::alerting::AlertChannelConfig::secret(&b.secret_env, &b.secret_file, "secret") {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err((
                    "billing".into(),
                    "set exactly one of `secret_env` and `secret_file`".into(),
                ));
            }
            Err(e) => return Err(("billing".into(), e)),
        }
        for (key, value, min, max) in [
            (
                "billing.interval",
                b.interval.0,
                Duration::from_secs(1),
                Duration::from_secs(3600),
            ),
            (
                "billing.settle",
                b.settle.0,
                Duration::ZERO,
                Duration::from_secs(86_399),
            ),
            (
                "billing.timeout",
                b.timeout.0,
                Duration::from_secs(1),
                Duration::from_secs(300),
            ),
        ] {
            if value < min || value > max {
                return Err((key.into(), format!("must be from {min:?} to {max:?}")));
            }
        }
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub(super) fn validate(&self) -> Result<(), (Cow<'static, str>, String)> {
        let s = &self.server;
        if s.max_connections == 0 {
            return Err(("server.max_connections".into(), "must be at least 1".into()));
        }
        if s.max_header_bytes < 8192 {
            return Err((
                "server.max_header_bytes".into(),
                "must be at least 8192".into(),
            ));
        }
        if s.max_headers == 0 {
            return Err(("server.max_headers".into(), "must be at least 1".into()));
        }
        if let Some(n) = s.worker_threads
            && !(1..=super::sections::MAX_WORKER_THREADS).contains(&n)
        {
            return Err((
                "server.worker_threads".into(),
                format!("must be from 1 to {}", super::sections::MAX_WORKER_THREADS),
            ));
        }
        if s.max_connections_per_ip == 0 {
            return Err((
                "server.max_connections_per_ip".into(),
                "must be at least 1".into(),
            ));
        }
        for (key, d) in [
            ("server.header_read_timeout", s.header_read_timeout),
            ("server.idle_timeout", s.idle_timeout),
            (
                "server.http2_keepalive_interval",
                s.http2_keepalive_interval,
            ),
            ("server.http2_keepalive_timeout", s.http2_keepalive_timeout),
        ] {
            if d.0.is_zero() {
                return Err((key.into(), "must be positive".into()));
            }
        }
        self.validate_health()?;
        self.alerting
            .validate()
            .map_err(|(key, message)| (Cow::Owned(key), message))?;
        self.telemetry
            .validate()
            .map_err(|(key, message)| (Cow::Owned(key), message))?;
        self.cache
            .validate()
            .map_err(|(key, message)| (Cow::Borrowed(key), message))?;
        self.outbound
            .validate()
            .map_err(|(key, message)| (Cow::Borrowed(key), message))?;
        if self.gateway.request_timeout.0.is_zero() {
            return Err(("gateway.request_timeout".into(), "must be positive".into()));
        }
        if let Some(name) = self.gateway.json_limits.zero_limit() {
            return Err((
                format!("gateway.json_limits.{name}").into(),
                "must be at least 1".into(),
            ));
        }
        if self.gateway.max_body_bytes == 0 {
            return Err(("gateway.max_body_bytes".into(), "must be at least 1".into()));
        }
        crate::cors::origins(&self.cors.origins, self.cors.allow_credentials)
            .map_err(|e| ("cors.origins".into(), e.to_string()))?;
        for (key, rate) in [
            ("rate_limit.per_ip", &self.rate_limit.per_ip),
            ("rate_limit.per_user", &self.rate_limit.per_user),
            ("rate_limit.per_tenant", &self.rate_limit.per_tenant),
        ] {
            if let Some(rate) = rate {
                rate.quota().map_err(|e| (key.into(), e.to_string()))?;
            }
        }
        if let Err(e) = kailash_core::context::IpPrefixes::new(
            self.rate_limit.ipv4_prefix,
            self.rate_limit.ipv6_prefix,
        ) {
            let key = match e {
                kailash_core::context::InvalidPrefix::Ipv4(_) => "rate_limit.ipv4_prefix",
                kailash_core::context::InvalidPrefix::Ipv6(_) => "rate_limit.ipv6_prefix",
            };
            return Err((key.into(), e.to_string()));
        }
        if self.state.redis_tls_ca.is_some()
            && !self.state.redis_url.as_deref().is_some_and(|url| {
                ["rediss://", "rediss+cluster://", "rediss+sentinel://"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme))
            })
        {
            return Err((
                "state.redis_tls_ca".into(),
                "needs a rediss://, rediss+cluster:// or rediss+sentinel:// state.redis_url (TLS to Redis)"
                    .into(),
            ));
        }
        if self.state.key_prefix.is_empty() {
            return Err(("state.key_prefix".into(), "must not be empty".into()));
        }
        if self.state.key_prefix.contains(['{', '}'])
            && self
                .state
                .redis_url
                .as_deref()
                .is_some_and(|url| url.contains("+cluster://"))
        {
            return Err((
                "state.key_prefix".into(),
                "must not contain { or } on Redis Cluster (each key's hash tag is in braces)"
                    .into(),
            ));
        }
        if self.state.max_rate_limit_keys == 0 {
            return Err((
                "state.max_rate_limit_keys".into(),
                "must be at least 1".into(),
            ));
        }
        if self.security.ip_allow_paths.len() > 64 {
            return Err((
                "security.ip_allow_paths".into(),
                "at most 64 path prefixes".into(),
            ));
        }
        for prefix in self.security.ip_allow_paths.keys() {
            if !prefix.starts_with('/') || prefix.len() > 256 || prefix.contains(['?', '#', '*']) {
                return Err((
                    format!("security.ip_allow_paths.{prefix}").into(),
                    "must be a path prefix starting with `/` (no query, fragment or wildcard; at most 256 bytes)".into(),
                ));
            }
        }
        self.security
            .https_policy()
            .map_err(|(key, message)| (key.into(), message))?;
        self.security
            .security_headers()
            .map_err(|(key, message)| (key.into(), message))?;
        self.security
            .dlp_layer()
            .map_err(|(key, message)| (key.into(), message))?;
        if let Some(fields) = &self.security.field_encryption {
            fields
                .validate()
                .map_err(|(key, message)| (key.into(), message))?;
            if self.auth.is_none() {
                return Err((
                    "security.field_encryption".into(),
                    "needs an [auth] section (it seals what authentication stores)".into(),
                ));
            }
        }
        self.security
            .anomaly
            .detector_config()
            .map_err(|(key, message)| (key.into(), message))?;
        if let Some(auth) = &self.auth {
            auth.validate()
                .map_err(|e| (format!("auth.{}", e.key).into(), e.message))?;
        } else if !self.users.is_empty() {
            return Err(("users".into(), "users need an [auth] section".into()));
        }
        if let Err(e) = kailash_auth::users::StaticUserStore::new(self.users.clone()) {
            return Err(("users".into(), e.to_string()));
        }
        if self.tenants.is_empty() && self.tenancy != TenancySection::default() {
            return Err(("tenancy".into(), "[tenancy] needs [[tenants]]".into()));
        }
        if let Some(b) = &self.billing {
            self.validate_billing(b)?;
        }
        if !self.tenants.is_empty() && self.auth.is_none() {
            return Err((
                "tenants".into(),
                "tenants need an [auth] section (the tenant comes from the token)".into(),
            ));
        }
        for spec in &self.tenants {
            if let Err(e) = kailash_tenancy::model::Tenant::try_from(spec.clone()) {
                return Err(("tenants".into(), e.to_string()));
            }
        }
        // With tenants, every user belongs to one, unless tenantless
        // operator accounts are wanted explicitly (they then act in the
        // tenant a header or host names).
        if !self.tenants.is_empty()
            && !self.tenancy.allow_tenantless_principals
            && let Some(user) = self.users.iter().find(|u| u.tenant.is_none())
        {
            return Err((
                "users".into(),
                format!(
                    "user `{}` has no tenant; with [[tenants]] every user needs one (or set tenancy.allow_tenantless_principals, which is dangerous)",
                    user.username
                ),
            ));
        }
        if !self.tenants.is_empty()
            && !self.tenancy.allow_tenantless_principals
            && let Some(ldap) = self.auth.as_ref().and_then(|a| a.ldap.as_ref())
        {
            if ldap.tenant.is_none() && ldap.tenant_attribute.is_none() {
                return Err((
                    "auth.ldap".into(),
                    "with [[tenants]] directory users need one: set tenant or tenant_attribute"
                        .into(),
                ));
            }
            if let Some(t) = &ldap.tenant
                && !self.tenants.iter().any(|spec| &spec.id == t)
            {
                return Err((
                    "auth.ldap.tenant".into(),
                    format!("tenant `{t}` is not one of [[tenants]]"),
                ));
            }
        }
        if !self.tenants.is_empty()
            && !self.tenancy.allow_tenantless_principals
            && let Some(saml) = self.auth.as_ref().and_then(|a| a.saml.as_ref())
        {
            if saml.tenant.is_none() && saml.tenant_attribute.is_none() {
                return Err((
                    "auth.saml".into(),
                    "with [[tenants]] SAML users need one: set tenant or tenant_attribute".into(),
                ));
            }
            if let Some(t) = &saml.tenant
                && !self.tenants.iter().any(|spec| &spec.id == t)
            {
                return Err((
                    "auth.saml.tenant".into(),
                    format!("tenant `{t}` is not one of [[tenants]]"),
                ));
            }
        }
        if !self.tenants.is_empty() && !self.tenancy.allow_tenantless_principals {
            for oidc in self.auth.iter().flat_map(|a| &a.oidc) {
                if oidc.tenant.is_none()
                    && oidc.tenant_claim.is_none()
                    && oidc.tenant_domains.is_empty()
                {
                    return Err((
                        "auth.oidc".into(),
                        format!(
                            "with [[tenants]] the users of provider `{}` need one: set tenant, tenant_claim or tenant_domains",
                            oidc.name
                        ),
                    ));
                }
                if let Some(t) = oidc
                    .tenant
                    .iter()
                    .chain(oidc.tenant_domains.values())
                    .find(|t| !self.tenants.iter().any(|spec| &spec.id == *t))
                {
                    return Err((
                        "auth.oidc.tenant".into(),
                        format!(
                            "provider `{}`: tenant `{t}` is not one of [[tenants]]",
                            oidc.name
                        ),
                    ));
                }
            }
        }
        let db = &self.database;
        for (name, endpoint) in [
            ("primary", &db.primary),
            ("replica", &db.replica),
            ("analytics", &db.analytics),
        ] {
            let Some(endpoint) = endpoint else { continue };
            let e = |k: &str, m: &str| Err((format!("database.{name}.{k}").into(), m.to_owned()));
            if name != "primary" && db.primary.is_none() {
                return e(
                    "url_env",
                    "needs [database.primary] (writes and fallback go there)",
                );
            }
            match (&endpoint.url_env, &endpoint.url_file) {
                (None, None) => return e("url_env", "set `url_env` or `url_file`"),
                (Some(_), Some(_)) => return e("url_env", "set `url_env` or `url_file`, not both"),
                _ => {}
            }
            if endpoint.pool_size == 0 || endpoint.pool_size > 1024 {
                return e("pool_size", "must be from 1 to 1024");
            }
            if endpoint.max_overflow > 1024 {
                return e("max_overflow", "must be at most 1024");
            }
            if endpoint.pool_recycle.is_some_and(|d| d.0.is_zero()) {
                return e("pool_recycle", "must be positive");
            }
            if endpoint.connect_timeout.0.is_zero() {
                return e("connect_timeout", "must be positive");
            }
            if endpoint.statement_timeout.0.is_zero() {
                return e("statement_timeout", "must be positive");
            }
        }
        if db.max_replica_lag.0.is_zero() {
            return Err(("database.max_replica_lag".into(), "must be positive".into()));
        }
        if let Some(t) = &self.database.tenants {
            let e = |k: &str, m: String| Err((format!("database.tenants.{k}").into(), m));
            if t.url_template_env.is_some() && t.url_template_file.is_some() {
                return e(
                    "url_template_env",
                    "set `url_template_env` or `url_template_file`, not both".into(),
                );
            }
            if t.url_template_env.is_none()
                && t.url_template_file.is_none()
                && t.urls_env.is_empty()
            {
                return e(
                    "url_template_env",
                    "set a URL template (`url_template_env` or `url_template_file`) or `urls_env`"
                        .into(),
                );
            }
            if let Some(id) = t
                .urls_env
                .keys()
                .find(|id| kailash_core::TenantId::new(id).is_err())
            {
                return e("urls_env", format!("`{id}` is not a tenant id"));
            }
            if t.pool_size == 0 || t.pool_size > 256 {
                return e("pool_size", "must be from 1 to 256".into());
            }
            if t.max_pools == 0 || t.max_pools > 10_000 {
                return e("max_pools", "must be from 1 to 10000".into());
            }
            if t.connect_timeout.0.is_zero() || t.statement_timeout.0.is_zero() {
                return e("connect_timeout", "timeouts must be positive".into());
            }
        }
        if self.tenancy.registry == super::TenantRegistryKind::Postgres
            && self.database.primary.is_none()
        {
            return Err((
                "tenancy.registry".into(),
                "`postgres` needs [database.primary]".into(),
            ));
        }
        if self.audit.sink == super::AuditSinkKind::Postgres && self.database.primary.is_none() {
            return Err((
                "audit.sink".into(),
                "`postgres` needs [database.primary]".into(),
            ));
        }
        if self.audit.sink == super::AuditSinkKind::File && self.audit.checkpoint_key_file.is_some()
        {
            return Err((
                "audit.checkpoint_key_file".into(),
                "signed checkpoints are kept by the `postgres` sink (the files chain through their headers)".into(),
            ));
        }
        let keyring = crate::config::alerting::AlertChannelConfig::secret(
            &self.audit.personal_data_keyring_env,
            &self.audit.personal_data_keyring_file,
            "personal_data_keyring",
        )
        .map_err(|m| ("audit.personal_data_keyring_env".into(), m))?;
        if keyring.is_some() && self.audit.sink != super::AuditSinkKind::Postgres {
            let key = if self.audit.personal_data_keyring_env.is_some() {
                "audit.personal_data_keyring_env"
            } else {
                "audit.personal_data_keyring_file"
            };
            return Err((
                key.into(),
                "sealed, erasable personal data is kept by the `postgres` sink (the file sink chains the fields as written)".into(),
            ));
        }
        if self.audit.checkpoint_every == 0 || self.audit.checkpoint_interval.0.is_zero() {
            return Err((
                "audit.checkpoint_every".into(),
                "checkpoint_every and checkpoint_interval must be positive".into(),
            ));
        }
        if self.audit.recent_events == 0 {
            return Err(("audit.recent_events".into(), "must be at least 1".into()));
        }
        let audit = &self.audit;
        let positive = [
            ("audit.queue_capacity", audit.queue_capacity as u64),
            ("audit.rotate_bytes", audit.rotate_bytes),
            ("audit.retention_days", u64::from(audit.retention_days)),
            (
                "audit.fsync_interval",
                audit.fsync_interval.0.as_millis() as u64,
            ),
            (
                "audit.rotate_interval",
                audit.rotate_interval.0.as_millis() as u64,
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(((*key).into(), "must be more than 0".into()));
        }
        if audit.queue_capacity > 1 << 20 {
            return Err((
                "audit.queue_capacity".into(),
                "must be at most 1048576".into(),
            ));
        }
        match (audit.max_total_bytes, audit.hard_total_bytes) {
            (None, Some(_)) => {
                return Err((
                    "audit.hard_total_bytes".into(),
                    "needs audit.max_total_bytes (the soft cap that warns first)".into(),
                ));
            }
            (Some(soft), Some(hard)) if hard < soft => {
                return Err((
                    "audit.hard_total_bytes".into(),
                    "must be at least audit.max_total_bytes".into(),
                ));
            }
            (Some(soft), _) if soft < audit.rotate_bytes.saturating_mul(2) => {
                return Err((
                    "audit.max_total_bytes".into(),
                    "must be at least twice audit.rotate_bytes (the active file and one closed file)".into(),
                ));
            }
            _ => {}
        }
        if let Some(access) = &self.access {
            let Some(auth) = &self.auth else {
                return Err((
                    "access".into(),
                    "access control needs an [auth] section (permissions belong to authenticated principals)".into(),
                ));
            };
            let defined = |role: &str| access.roles.iter().any(|r| r.name == role);
            for user in &self.users {
                if let Some(role) = user.roles.iter().find(|r| !defined(r)) {
                    return Err((
                        "users".into(),
                        format!(
                            "user `{}` has role `{role}`, which [[access.roles]] does not define",
                            user.username
                        ),
                    ));
                }
            }
            if let Some(ldap) = &auth.ldap {
                let mapped = ldap
                    .default_roles
                    .iter()
                    .chain(ldap.group_roles.values().flatten());
                if let Some(role) = mapped.into_iter().find(|r| !defined(r)) {
                    return Err((
                        "auth.ldap".into(),
                        format!("role `{role}` is not defined in [[access.roles]]"),
                    ));
                }
            }
            for oidc in &auth.oidc {
                let mapped = oidc
                    .default_roles
                    .iter()
                    .chain(oidc.group_roles.values().flatten());
                if let Some(role) = mapped.into_iter().find(|r| !defined(r)) {
                    return Err((
                        "auth.oidc".into(),
                        format!(
                            "provider `{}`: role `{role}` is not defined in [[access.roles]]",
                            oidc.name
                        ),
                    ));
                }
            }
            if let Some(saml) = &auth.saml {
                let mapped = saml
                    .default_roles
                    .iter()
                    .chain(saml.group_roles.values().flatten());
                if let Some(role) = mapped.into_iter().find(|r| !defined(r)) {
                    return Err((
                        "auth.saml".into(),
                        format!("role `{role}` is not defined in [[access.roles]]"),
                    ));
                }
            }
            if let Some(role) = auth.mfa_required_roles.iter().find(|r| !defined(r)) {
                return Err((
                    "auth.mfa_required_roles".into(),
                    format!("role `{role}` is not defined in [[access.roles]]"),
                ));
            }
        }
        if (self.rate_limit.per_user.is_some() || self.rate_limit.per_tenant.is_some())
            && self.auth.is_none()
        {
            return Err((
                "rate_limit.per_user".into(),
                "per-user and per-tenant limits need an [auth] section".into(),
            ));
        }
        if let Some(realtime) = &self.realtime {
            if self.auth.is_none() {
                return Err((
                    "realtime".into(),
                    "realtime endpoints need an [auth] section (every socket is authenticated)"
                        .into(),
                ));
            }
            realtime
                .validate()
                .map_err(|e| ("realtime".into(), e.to_string()))?;
        }
        if !self.integrations.is_empty() && self.runtime.is_none() {
            return Err((
                "integrations".into(),
                "integrations are for workflow nodes: they need a [runtime] section".into(),
            ));
        }
        if !self.integrations.is_empty() {
            // Names, URLs and limits (keys are read at start).
            kailash_runtime::outbound::Integrations::build_with(&self.integrations, |_| None, None)
                .map_err(|e| ("integrations".into(), e.to_string()))?;
        }
        if self.runtime.is_some() {
            for t in &self.tenants {
                for name in &t.allowed_integrations {
                    if !self.integrations.iter().any(|i| &i.name == name) {
                        return Err((
                            "tenants".into(),
                            format!(
                                "tenant `{}` allows integration `{name}`, which no [[integrations]] entry defines",
                                t.id
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(runtime) = &self.runtime {
            if self.auth.is_none() || self.access.is_none() || self.tenants.is_empty() {
                return Err((
                    "runtime".into(),
                    "the workflow runtime needs [auth], [access] and [[tenants]] (runs are checked, and belong to a user in a tenant)"
                        .into(),
                ));
            }
            runtime
                .validate()
                .map_err(|e| (format!("runtime.{}", e.field).into(), e.reason.clone()))?;
        }
        crate::ops_access::validate(self)?;
        if self.state.redis_url.is_some() && !cfg!(feature = "redis") {
            return Err((
                "state.redis_url".into(),
                "this build has no Redis support (enable the `redis` feature of kailash)".into(),
            ));
        }
        Ok(())
    }
}
