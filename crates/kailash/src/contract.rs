//! The statuses the gateway's own layers add to every operation.
//!
//! Each crate documents what its routes answer. The gateway wraps every
//! route in layers of its own — connection admission, the request timeout,
//! the body limit, rate limits, authentication, tenancy — and each of them
//! can answer before the route runs. Which ones apply depends on the
//! gateway's configuration, so the gateway documents them here, from the
//! same settings that install the layers, on every operation they wrap.
//! An operation's own description of a status wins.

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

use kailash_core::{Problem, TenantId};

/// Which of the gateway's layers are installed. (Connection admission,
/// the request timeout and the body limit always are.)
#[derive(Debug, Clone, Default)]
pub(crate) struct Layers {
    /// Paths served outside the application stack besides the operational
    /// ones (the realtime endpoints authenticate themselves).
    pub(crate) outside: Vec<String>,
    /// Bearer authentication (the routes that declare a security requirement).
    pub(crate) authentication: bool,
    /// Tenant resolution and quotas (authenticated routes).
    pub(crate) tenancy: bool,
    /// Tenancy reads the `X-Tenant-ID` header.
    pub(crate) tenant_header: bool,
    /// The IP allow-lists (`[security]`).
    pub(crate) ip_allow: kailash_core::ip_allow::IpAllowLayer,
    /// The transport policy (`[security] require_ssl`).
    pub(crate) https: Option<kailash_core::transport::HttpsPolicyLayer>,
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            kailash_core::problem::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build(),
        )
        .build()
        .into()
}

/// Whether an operation requires a credential (a non-empty security
/// requirement).
fn secured(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|list| {
        list.iter().any(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_object().map(|m| !m.is_empty()))
                .unwrap_or(false)
        })
    })
}

fn add(op: &mut Operation, code: u16, description: &str) {
    op.responses
        .responses
        .entry(code.to_string())
        .or_insert_with(|| problem(description));
}

fn complete_operation(op: &mut Operation, layers: &Layers, application: bool) {
    // Connection admission, on every request the server accepts.
    add(
        op,
        503,
        "The server is at its connection limit, or a backend it needs is unavailable (Retry-After when known)",
    );
    add(
        op,
        429,
        "Too many connections from this address, or a rate limit or quota is exhausted (Retry-After)",
    );
    add(
        op,
        504,
        "The request did not finish within the request timeout",
    );
    if op.request_body.is_some() {
        add(op, 413, "The body is larger than the gateway's body limit");
    }
    if !application {
        return;
    }
    if secured(op) {
        if layers.authentication {
            add(
                op,
                401,
                "Missing, invalid or expired bearer token, or an ended session (WWW-Authenticate)",
            );
        }
        if layers.tenancy {
            add(
                op,
                400,
                "The request names no tenant, or a malformed one (X-Tenant-ID or host)",
            );
            add(op, 403, "Tenant mismatch, or an unknown or inactive tenant");
            if layers.tenant_header {
                tenant_header(op);
            }
        }
    }
}

/// The optional `X-Tenant-ID` header the tenancy layer reads.
fn tenant_header(op: &mut Operation) {
    let params = op.parameters.get_or_insert_with(Vec::new);
    let named = |p: &RefOr<utoipa::openapi::path::Parameter>| match p {
        RefOr::T(p) => p.name.eq_ignore_ascii_case("x-tenant-id"),
        RefOr::Ref(_) => false,
    };
    if params.iter().any(named) {
        return;
    }
    params.push(
        ParameterBuilder::new()
            .name("X-Tenant-ID")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "The tenant to act in (given once). It must be the caller's own tenant: another is 403, a malformed one 400.",
            ))
            .schema(Some(Ref::from_schema_name(TenantId::name())))
            .build()
            .into(),
    );
}

/// Merges `other` into `doc`, refusing two different schemas (or security
/// schemes) under one name: utoipa's merge would silently keep the first.
pub(crate) fn merge(doc: &mut OpenApi, other: OpenApi) -> Result<(), String> {
    if let (Some(mine), Some(theirs)) = (&doc.components, &other.components) {
        for (name, schema) in &theirs.schemas {
            if let Some(existing) = mine.schemas.get(name)
                && serde_json::to_value(existing).ok() != serde_json::to_value(schema).ok()
            {
                return Err(format!(
                    "two different OpenAPI schemas are named {name}; rename one"
                ));
            }
        }
        for (name, scheme) in &theirs.security_schemes {
            if let Some(existing) = mine.security_schemes.get(name)
                && existing != scheme
            {
                return Err(format!("two different security schemes are named {name}"));
            }
        }
    }
    for (path, item) in &other.paths.paths {
        if let Some(existing) = doc.paths.paths.get(path) {
            let clash = [
                (existing.get.is_some(), item.get.is_some()),
                (existing.put.is_some(), item.put.is_some()),
                (existing.post.is_some(), item.post.is_some()),
                (existing.delete.is_some(), item.delete.is_some()),
                (existing.patch.is_some(), item.patch.is_some()),
            ]
            .iter()
            .any(|(a, b)| *a && *b);
            if clash {
                return Err(format!(
                    "two documents describe the same operation on {path}"
                ));
            }
        }
    }
    doc.merge(other);
    Ok(())
}

/// The operational routes: not behind authentication, tenancy or rate limits.
const OPERATIONAL: [&str; 5] = [
    "/health/live",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/docs",
];

/// Adds the layers' statuses to every operation of `doc`, the `Problem`
/// schema and the `bearer` security scheme.
pub(crate) fn complete(doc: &mut OpenApi, layers: Layers) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let application =
            !OPERATIONAL.contains(&path.as_str()) && !layers.outside.iter().any(|p| p == path);
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            complete_operation(op, &layers, application);
            if layers.ip_allow.applies_to(path) {
                add(op, 403, "The client's network is outside an IP allow-list");
            }
            if layers.https.as_ref().is_some_and(|h| h.applies_to(path)) {
                add(
                    op,
                    400,
                    "The request did not arrive over HTTPS (`https-required`)",
                );
            }
        }
        if layers.https.as_ref().is_some_and(|h| h.applies_to(path)) {
            for op in [&mut item.get, &mut item.head].into_iter().flatten() {
                op.responses
                    .responses
                    .entry("308".to_owned())
                    .or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description("Plain HTTP: the same URL on https:// (Location)")
                                .build(),
                        )
                    });
            }
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(Problem::name().into_owned(), Problem::schema());
    if layers.tenant_header {
        components
            .schemas
            .insert(TenantId::name().into_owned(), TenantId::schema());
    }
    components
        .security_schemes
        .entry("bearer".to_owned())
        .or_insert_with(|| {
            RefOr::T(SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from POST /auth/login"))
                    .build(),
            ))
        });
}
