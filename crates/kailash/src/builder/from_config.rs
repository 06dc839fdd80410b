//! A builder from a loaded [`GatewayConfig`]: the mapping of each config
//! section onto the builder's setters, and the backends the config names.

use std::path::Path;
use std::sync::Arc;

use kailash_core::audit::{
    AuditQuery, AuditSink, JsonLinesAuditSink, JsonLinesOptions, MemoryAuditSink,
};
use kailash_core::clock::{Clock, SystemClock};
use kailash_core::context::{IpPrefixes, TrustedProxies};
use kailash_core::state::RateQuota;

use super::{GatewayBuilder, RateLimits, TenancySettings, TlsSettings};
use crate::GatewayError;
use crate::config::GatewayConfig;

/// The allow-lists of `[security]`.
fn ip_allow_layer(
    section: &crate::config::SecuritySection,
) -> kailash_core::ip_allow::IpAllowLayer {
    let mut layer = kailash_core::ip_allow::IpAllowLayer::new();
    if let Some(list) = &section.ip_allow {
        layer = layer.global(list.clone());
    }
    for (prefix, list) in &section.ip_allow_paths {
        layer = layer.route_group(prefix, list.clone());
    }
    layer
}

/// `[security.anomaly]`: the detector (started), and the audit sink the
/// gateway's services write to — the detector's tee in front of `audit`
/// when enabled. A geo file that cannot be read or parsed stops the start,
/// naming the file and the line.
fn anomaly_detector(
    config: &GatewayConfig,
    data_dir: &Path,
    state: &kailash_core::state::SharedState,
    audit: Arc<dyn AuditSink>,
) -> Result<
    (
        Arc<dyn AuditSink>,
        Option<kailash_monitoring::anomaly::AnomalyDetector>,
    ),
    GatewayError,
> {
    use kailash_monitoring::anomaly::{AnomalyDetector, CidrGeoFile};
    let section = &config.security.anomaly;
    if !section.enabled {
        return Ok((audit, None));
    }
    let settings = section
        .detector_config()
        .map_err(|(key, e)| GatewayError::Security(format!("{key}: {e}")))?;
    let mut detector = AnomalyDetector::builder(settings, state.clone()).audit(audit.clone());
    if let Some(file) = &section.geoip_file {
        let path = data_dir.join(file);
        let geo = CidrGeoFile::load(&path).map_err(|e| {
            GatewayError::Security(format!(
                "security.anomaly.geoip_file: {}: {e}",
                path.display()
            ))
        })?;
        detector = detector.geo(Arc::new(geo));
    }
    let detector = detector
        .build()
        .map_err(|e| GatewayError::Security(e.to_string()))?;
    detector.start();
    Ok((Arc::new(detector.audit_sink(audit)), Some(detector)))
}

impl GatewayBuilder {
    /// Applies a loaded configuration (everything except the state backend
    /// and audit sink, the access control, tenants, workflow runtime,
    /// authentication and billing, which
    /// [`GatewayBuilder::from_config_with_backends`] also sets up).
    pub fn from_config(config: &GatewayConfig) -> Result<Self, GatewayError> {
        Self::from_config_with_pool(
            config,
            kailash_core::outbound::ConnectionPool::new(config.outbound.pool()),
        )
    }

    /// [`from_config`](Self::from_config) with the outbound connection
    /// pool made beforehand (from `config.outbound`), so callers started
    /// before the gateway — trace export — share it.
    pub fn from_config_with_pool(
        config: &GatewayConfig,
        pool: kailash_core::outbound::ConnectionPool,
    ) -> Result<Self, GatewayError> {
        let quota =
            |r: &Option<crate::config::RateConfig>| -> Result<Option<RateQuota>, GatewayError> {
                r.as_ref()
                    .map(|r| {
                        r.quota()
                            .map_err(|e| GatewayError::RateLimit(e.to_string()))
                    })
                    .transpose()
            };
        let s = &config.server;
        let g = &config.gateway;
        let mut b = Self::new()
            .outbound_pool(pool)
            .title(&g.title)
            .version(&g.version)
            .listen(s.listen)
            .max_connections(s.max_connections)
            .max_connections_per_ip(s.max_connections_per_ip)
            .max_header_bytes(s.max_header_bytes)
            .max_headers(s.max_headers)
            .header_read_timeout(s.header_read_timeout.0)
            .idle_timeout(s.idle_timeout.0)
            .http2_keepalive(s.http2_keepalive_interval.0, s.http2_keepalive_timeout.0)
            .shutdown_grace(s.shutdown_grace.0)
            .trusted_proxies(TrustedProxies::new(s.trusted_proxies.iter().copied()))
            .incoming_request_id(s.incoming_request_id)
            .request_timeout(g.request_timeout.0)
            .max_body_bytes(g.max_body_bytes)
            .json_limits(g.json_limits)
            .compression(g.compression)
            .tracing(g.tracing)
            .metrics(g.metrics)
            .health(g.health)
            .docs(g.docs)
            .cors_origins(config.cors.origins.iter().cloned())
            .ip_allow(ip_allow_layer(&config.security))
            .https_policy(
                config
                    .security
                    .https_policy()
                    .map_err(|(key, e)| GatewayError::Security(format!("{key}: {e}")))?,
            )
            .security_headers(
                config
                    .security
                    .security_headers()
                    .map_err(|(key, e)| GatewayError::Security(format!("{key}: {e}")))?,
            )
            .dlp(
                config
                    .security
                    .dlp_layer()
                    .map_err(|(key, e)| GatewayError::Security(format!("{key}: {e}")))?,
            )
            .response_cache(config.cache.layer())
            .cors_allow_credentials(config.cors.allow_credentials)
            .cors_max_age(config.cors.max_age.0)
            .rate_limits(RateLimits {
                per_ip: quota(&config.rate_limit.per_ip)?,
                ip_prefixes: IpPrefixes::new(
                    config.rate_limit.ipv4_prefix,
                    config.rate_limit.ipv6_prefix,
                )
                .map_err(|e| GatewayError::RateLimit(e.to_string()))?,
                per_user: quota(&config.rate_limit.per_user)?,
                per_tenant: quota(&config.rate_limit.per_tenant)?,
                fail_mode: config.rate_limit.fail_mode,
            });
        let h = &config.health;
        b = b
            .health_policy(kailash_monitoring::health::HealthPolicy {
                interval: h.check_interval.0,
                failure_threshold: h.failure_threshold,
                recovery_threshold: h.recovery_threshold,
            })
            .health_check_timeout(h.timeout.0)
            .workflow_failure_threshold(h.workflow_failure_threshold)
            .max_active_sessions(h.max_active_sessions)
            .optional_check(
                "memory_usage",
                kailash_monitoring::health::system::MemoryCheck::new(h.memory_threshold),
            );
        for api in &h.external_apis {
            let check = crate::health_checks::ExternalApiCheck::new(&api.url, h.timeout.0)
                .map_err(|e| GatewayError::Health(format!("{}: {e}", api.name)))?
                .with_pool(&b.outbound);
            b = b.optional_check(&api.name, check);
        }
        b = b.apply_alerting(&config.alerting)?.apply_ops(config)?;
        if let Some(d) = &g.description {
            b = b.description(d);
        }
        if let Some(t) = &s.tls {
            b = b.tls(TlsSettings {
                cert: t.cert.clone(),
                key: t.key.clone(),
                tls13_only: t.tls13_only,
            });
        }
        Ok(b)
    }

    /// [`from_config`](Self::from_config) plus the configured state backend
    /// (memory, or Redis with `state.redis_url`) and a JSON-lines audit file
    /// (`audit.file`, relative paths under `data_dir`).
    pub async fn from_config_with_backends(
        config: &GatewayConfig,
        data_dir: &Path,
    ) -> Result<Self, GatewayError> {
        let pool = kailash_core::outbound::ConnectionPool::new(config.outbound.pool());
        Self::from_config_with_backends_and_pool(config, data_dir, pool).await
    }

    /// [`from_config_with_backends`](Self::from_config_with_backends) with
    /// the outbound connection pool made beforehand (see
    /// [`from_config_with_pool`](Self::from_config_with_pool)).
    pub async fn from_config_with_backends_and_pool(
        config: &GatewayConfig,
        data_dir: &Path,
        pool: kailash_core::outbound::ConnectionPool,
    ) -> Result<Self, GatewayError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        #[cfg(feature = "ldap")]
        crate::backends::check_directory(config.auth.as_ref()).await?;
        let state = crate::backends::state_from_config(&config.state, clock.clone()).await?;
        #[cfg(feature = "postgres")]
        let databases = crate::backends::databases(config).await?;
        #[allow(unused_mut, reason = "set by the postgres sink only")]
        let mut audit_erasure: Option<Arc<dyn kailash_core::audit::AuditErasure>> = None;
        let (audit, audit_query): (Arc<dyn AuditSink>, Arc<dyn AuditQuery>) = match config
            .audit
            .sink
        {
            crate::config::AuditSinkKind::File => {
                let audit_path = data_dir.join(&config.audit.file);
                // The newest written events also stay in memory for
                // queries; the writer adds them once their batch is written.
                let recent = Arc::new(MemoryAuditSink::with_capacity(config.audit.recent_events));
                let options = JsonLinesOptions {
                    recent: Some(recent.clone()),
                    ..config.audit.sink_options()
                };
                let audit =
                    JsonLinesAuditSink::open_with(&audit_path, options).map_err(|source| {
                        GatewayError::Audit {
                            path: audit_path.clone(),
                            source,
                        }
                    })?;
                (Arc::new(audit), recent)
            }
            #[cfg(feature = "postgres")]
            crate::config::AuditSinkKind::Postgres => {
                let primary = databases
                    .as_ref()
                    .map(|d| d.writer().database().clone())
                    .ok_or_else(|| {
                        GatewayError::Database(
                            "audit.sink = \"postgres\" needs [database.primary]".into(),
                        )
                    })?;
                let sink = crate::backends::postgres_audit(config, data_dir, primary).await?;
                let sink = Arc::new(sink);
                if sink.seals_personal_data() {
                    audit_erasure = Some(sink.clone());
                }
                (sink.clone(), sink)
            }
            #[cfg(not(feature = "postgres"))]
            crate::config::AuditSinkKind::Postgres => {
                return Err(GatewayError::Database(
                    "audit.sink = \"postgres\" but this build has no PostgreSQL support (enable the `postgres` feature)".into(),
                ));
            }
        };
        let (audit, anomaly) = anomaly_detector(config, data_dir, &state, audit)?;
        let mut builder = Self::from_config_with_pool(config, pool.clone())?
            .optional_check(
                "disk_usage",
                kailash_monitoring::health::system::DiskCheck::new(
                    data_dir,
                    config.health.disk_threshold,
                ),
            )
            .clock(clock.clone())
            .state(state.clone())
            .audit(audit.clone());
        #[cfg(feature = "postgres")]
        if let Some(dbs) = databases {
            builder = builder.optional_check(
                "database",
                crate::health_checks::DatabaseCheck::new(dbs.writer().database().clone()),
            );
            if dbs.replica_status().is_some() {
                builder = builder.optional_check(
                    "database_replica",
                    crate::health_checks::ReplicaCheck::new(dbs.clone()),
                );
            }
            builder.databases = Some(dbs);
        }
        if let Some(detector) = anomaly {
            builder = builder.anomaly_detection(detector, config.security.anomaly.requests);
        }
        builder.audit_query = Some(audit_query);
        builder.audit_erasure = audit_erasure;
        if let Some(spec) = &config.access {
            let access =
                crate::access_config::from_config(spec, Some(audit.clone()), clock.clone()).await?;
            builder = builder.access_control(access);
        }
        let registry: Option<Arc<dyn kailash_tenancy::registry::TenantRegistry>> = match config
            .tenancy
            .registry
        {
            crate::config::TenantRegistryKind::Static if config.tenants.is_empty() => None,
            crate::config::TenantRegistryKind::Static => Some(Arc::new(
                kailash_tenancy::registry::StaticTenantRegistry::new(
                    config.tenants.clone(),
                    state.clone(),
                )
                .map_err(|e| GatewayError::Tenancy(e.to_string()))?,
            )),
            #[cfg(feature = "postgres")]
            crate::config::TenantRegistryKind::Postgres => {
                let db = builder
                    .databases
                    .as_ref()
                    .map(|d| d.writer().database().clone())
                    .ok_or_else(|| {
                        GatewayError::Database(
                            "tenancy.registry = \"postgres\" needs [database.primary]".into(),
                        )
                    })?;
                let registry = kailash_postgres::tenants::PgTenantRegistry::open(
                    db,
                    config.tenants.clone(),
                    state.clone(),
                )
                .await
                .map_err(|e| GatewayError::Tenancy(e.to_string()))?;
                builder.tenant_admin = Some(registry.clone());
                Some(Arc::new(registry))
            }
            #[cfg(not(feature = "postgres"))]
            crate::config::TenantRegistryKind::Postgres => {
                return Err(GatewayError::Database(
                        "tenancy.registry = \"postgres\" but this build has no PostgreSQL support (enable the `postgres` feature)".into(),
                    ));
            }
        };
        if let Some(registry) = registry {
            builder = builder.tenancy(
                registry,
                TenancySettings {
                    header: config.tenancy.header,
                    subdomain_base: config.tenancy.subdomain_base.clone(),
                    custom_domains: config.tenancy.custom_domains,
                    allow_tenantless_principals: config.tenancy.allow_tenantless_principals,
                },
            );
        }
        if let Some(billing) = &config.billing {
            builder = builder.billing(
                Arc::new(webhook_delivery(billing, data_dir, clock.clone())?.with_pool(&pool)),
                crate::billing::BillingSettings {
                    interval: billing.interval.0,
                    settle: billing.settle.0,
                    timeout: billing.timeout.0,
                },
            );
        }
        if let (Some(runtime), Some(access)) = (&config.runtime, builder.access.clone()) {
            let (events, hub, observers) =
                crate::runtime_hooks::RunEventsToRealtime::spawn(runtime.session_isolation);
            let integrations = kailash_runtime::outbound::Integrations::build(&config.integrations)
                .map_err(|e| GatewayError::Runtime(e.to_string()))?
                .with_pool(&pool);
            let registry = kailash_runtime::NodeRegistry::builtin().with_outbound(&integrations);
            // `database_query`, when tenants have databases.
            let registry = match &config.database.tenants {
                None => registry,
                #[cfg(feature = "postgres")]
                Some(tenants) => {
                    registry.with_database(Arc::new(crate::backends::tenant_databases(tenants)?))
                }
                #[cfg(not(feature = "postgres"))]
                Some(_) => {
                    return Err(GatewayError::Database(
                        "[database.tenants] is set but this build has no PostgreSQL support (enable the `postgres` feature)".into(),
                    ));
                }
            };
            let workflows =
                kailash_runtime::WorkflowStore::new(access.clone(), state.clone(), registry);
            let built = kailash_runtime::runtime::AccessControlledRuntime::builder(
                runtime.clone(),
                access,
                state.clone(),
                workflows,
            )
            .audit(audit.clone())
            .events(events)
            .build()
            .await
            .map_err(|e| GatewayError::Runtime(e.to_string()))?;
            builder = builder.runtime(built);
            builder.runtime_events = Some(hub);
            builder.run_observers = Some(observers);
        }
        if let Some(section) = &config.auth {
            let service = crate::backends::auth_from_config(
                section,
                &config.users,
                data_dir,
                state.clone(),
                audit,
            )?;
            builder = builder.authentication(service);
            if !section.oidc.is_empty() {
                builder = builder.oidc(crate::oidc::providers_from_config(
                    &section.oidc,
                    data_dir,
                    &state,
                    &pool,
                )?);
            }
            if let Some(saml) = &section.saml {
                #[cfg(feature = "saml")]
                {
                    builder =
                        builder.saml(crate::saml::provider_from_config(saml, data_dir, &state)?);
                }
                #[cfg(not(feature = "saml"))]
                {
                    let _ = saml;
                    return Err(GatewayError::Auth(
                        "auth.saml is set but this build has no SAML support (enable the `saml` feature)"
                            .into(),
                    ));
                }
            }
            if let Some(fields) = &config.security.field_encryption {
                let keys = crate::backends::field_keys(fields, data_dir, state.clone()).await?;
                builder = builder.field_encryption(keys, fields.maintenance_interval.0);
            }
            if let Some(cookie) = &section.cookie {
                builder = builder.auth_cookie(cookie);
            }
            // The endpoints authenticate with the service set just above.
            if let Some(realtime) = &config.realtime {
                builder = builder.realtime(realtime.clone());
            }
        }
        Ok(builder)
    }
}

/// The signed webhook `[billing]` describes, its secret read from the
/// environment or a file (relative paths under `data_dir`).
fn webhook_delivery(
    billing: &crate::config::BillingConfig,
    data_dir: &Path,
    clock: Arc<dyn Clock>,
) -> Result<crate::billing::WebhookDelivery, GatewayError> {
    let fail = |m: String| GatewayError::Billing(m);
    let file = billing.secret_file.as_ref().map(|f| data_dir.join(f));
    // The config check made sure exactly one is set.
    let source =
        crate::config::alerting::AlertChannelConfig::secret(&billing.secret_env, &file, "secret")
            .map_err(fail)?
            .ok_or_else(|| fail("set billing.secret_env or billing.secret_file".into()))?;
    let secret = source
        .read()
        .map_err(|m| fail(format!("the signing secret: {m}")))?;
    crate::billing::WebhookDelivery::new(
        &billing.webhook_url,
        secret.as_bytes(),
        billing.timeout.0,
        clock,
    )
    .map_err(|m| fail(format!("billing.webhook_url: {m}")))
}
