//! The response cache (issue 21, item 4) in the real gateway over HTTP:
//! inside each route's permission check, so authentication, the session,
//! the tenant and the access decision hold on every request, hit or miss.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get};
use kailash::access::AccessControl;
use kailash::access::layer::RequirePermissionLayer;
use kailash::cache::{CacheLimits, CacheStore, ResponseCacheLayer};
use kailash::config::GatewayConfig;
use kailash::{GatewayBuilder, Principal};

use crate::support::demo::*;
use crate::support::{Resp, Running, request, start_gateway};

const BOB: &str = "Bob-Demo-Passw0rd!";
const DAVE: &str = "Dave-Demo-Passw0rd!";
const CAROL: &str = "Carol-Demo-Passw0rd!";

/// Counts the handler's runs: a hit leaves it unchanged.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// An answer naming the run, the caller and the tenant, with `headers`.
fn answer(headers: &'static [(&'static str, &'static str)]) -> MethodRouter {
    get(move |p: Principal| async move {
        let run = RUNS.fetch_add(1, Ordering::SeqCst);
        let body = format!(
            "run {run} for {} in {}",
            p.subject(),
            p.tenant().map_or("-", |t| t.as_str())
        );
        let mut response = body.into_response();
        for (k, v) in headers {
            response
                .headers_mut()
                .append(*k, http::HeaderValue::from_static(v));
        }
        response
    })
}

/// The routes, each cached inside its permission check (the order the
/// module docs ask for: the cache first, the check around it).
fn routes(cache: &ResponseCacheLayer) -> Router {
    let guarded = |route: MethodRouter, permission: &str| -> MethodRouter {
        route
            .layer::<_, std::convert::Infallible>(cache.clone())
            .layer(RequirePermissionLayer::new(permission))
    };
    const PRIVATE: &[(&str, &str)] = &[
        ("cache-control", "private, max-age=60"),
        ("etag", "W/\"v1\""),
    ];
    Router::new()
        .route("/c/private", guarded(answer(PRIVATE), "workflow:execute"))
        .route("/c/report", guarded(answer(PRIVATE), "report:view"))
        .route(
            "/c/no-store",
            guarded(
                answer(&[("cache-control", "no-store, max-age=60")]),
                "workflow:execute",
            ),
        )
        .route(
            "/c/cookie",
            guarded(
                answer(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]),
                "workflow:execute",
            ),
        )
        .route(
            "/c/vary-star",
            guarded(
                answer(&[("cache-control", "max-age=60"), ("vary", "*")]),
                "workflow:execute",
            ),
        )
        .route(
            "/c/vary",
            guarded(
                answer(&[("cache-control", "max-age=60"), ("vary", "accept-language")]),
                "workflow:execute",
            ),
        )
        .route("/c/unmarked", guarded(answer(&[]), "workflow:execute"))
}

struct Cached {
    gw: Running,
    access: AccessControl,
    config: GatewayConfig,
    store: CacheStore,
}

/// The fixture's gateway with the cache (`x-cache` on) and the routes
/// above; `limits` bound the store.
async fn cached(backend: &[(&'static str, String)], limits: CacheLimits) -> Cached {
    let mut vars: Vec<(String, String)> = backend
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    vars.push(("KAILASH_CACHE__ENABLED".into(), "true".into()));
    let config = GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", vars)
        .expect("config");
    assert!(config.cache.enabled, "[cache] read from the environment");
    let store = CacheStore::new(limits);
    let layer = ResponseCacheLayer::new(store.clone()).x_cache_header(true);
    let builder = GatewayBuilder::from_config_with_backends(&config, &temp_dir())
        .await
        .expect("backends");
    assert!(
        builder.response_cache_layer().is_some(),
        "[cache] builds one"
    );
    let builder = builder.response_cache(Some(layer.clone()));
    let access = builder.access_handle().cloned().expect("[access]");
    let gateway = builder.routes(routes(&layer)).build().expect("gateway");
    Cached {
        gw: start_gateway(gateway).await,
        access,
        config,
        store,
    }
}

async fn call(gw: &Running, method: &str, path: &str, token: Option<&str>, extra: &str) -> Resp {
    let auth = token
        .map(|t| format!("\nAuthorization: Bearer {t}"))
        .unwrap_or_default();
    request(
        gw.addr,
        &format!("{method} {path} HTTP/1.1\nHost: x{auth}{extra}"),
        b"",
    )
    .await
}

async fn token_of(gw: &Running, user: &str, password: &str) -> String {
    tokens(&login(gw, user, password).await).0
}

fn x_cache(r: &Resp) -> &str {
    r.header("x-cache").unwrap_or("none")
}

#[tokio::test]
async fn hits_revalidation_head_and_the_unauthenticated_repeat() {
    for backend in backends() {
        let c = cached(&backend, CacheLimits::default()).await;
        let gw = &c.gw;
        let bob = token_of(gw, "bob", BOB).await;
        let first = call(gw, "GET", "/c/private", Some(&bob), "").await;
        assert_eq!(
            (first.status, x_cache(&first)),
            (200, "miss"),
            "{}",
            first.text()
        );
        let again = call(gw, "GET", "/c/private", Some(&bob), "").await;
        assert_eq!((again.status, x_cache(&again)), (200, "hit"));
        assert_eq!(again.text(), first.text(), "the stored answer");
        assert!(again.header("age").is_some(), "a hit carries Age");
        assert_eq!(again.header("etag"), Some("W/\"v1\""));

        // If-None-Match, weak comparison: 304 from the cache.
        let revalidated = call(
            gw,
            "GET",
            "/c/private",
            Some(&bob),
            "\nIf-None-Match: \"v1\"",
        )
        .await;
        assert_eq!(revalidated.status, 304);
        assert!(revalidated.body.is_empty());
        assert_eq!(revalidated.header("etag"), Some("W/\"v1\""));
        let other = call(
            gw,
            "GET",
            "/c/private",
            Some(&bob),
            "\nIf-None-Match: \"v2\"",
        )
        .await;
        assert_eq!((other.status, other.text()), (200, first.text()));

        // HEAD from the GET entry: the fields, no body.
        let head = call(gw, "HEAD", "/c/private", Some(&bob), "").await;
        assert_eq!((head.status, x_cache(&head)), (200, "hit"));
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("content-length"),
            Some(first.text().len().to_string().as_str())
        );

        // The Python original's bug: the same URL without a token gets 401,
        // never the stored 200.
        let anonymous = call(gw, "GET", "/c/private", None, "").await;
        anonymous.assert_problem(401);
        let forged = call(gw, "GET", "/c/private", Some("not-a-token"), "").await;
        forged.assert_problem(401);

        // The request's own no-cache goes to the handler (and refills).
        let fresh = call(
            gw,
            "GET",
            "/c/private",
            Some(&bob),
            "\nCache-Control: no-cache",
        )
        .await;
        assert_eq!(x_cache(&fresh), "miss");
        assert_ne!(fresh.text(), first.text());
        c.gw.stop().await;
    }
}

#[tokio::test]
async fn a_logout_stops_the_cache_at_once() {
    for backend in backends() {
        let c = cached(&backend, CacheLimits::default()).await;
        let gw = &c.gw;
        let bob = token_of(gw, "bob", BOB).await;
        assert_eq!(
            call(gw, "GET", "/c/private", Some(&bob), "").await.status,
            200
        );
        let hit = call(gw, "GET", "/c/private", Some(&bob), "").await;
        assert_eq!(x_cache(&hit), "hit");
        assert_eq!(
            call(gw, "POST", "/auth/logout", Some(&bob), "")
                .await
                .status,
            204
        );
        let after = call(gw, "GET", "/c/private", Some(&bob), "").await;
        after.assert_problem(401);
        assert_eq!(x_cache(&after), "none", "refused before the cache");
        c.gw.stop().await;
    }
}

#[tokio::test]
async fn a_role_revoked_by_a_policy_reload_stops_the_cache_at_once() {
    let c = cached(&[], CacheLimits::default()).await;
    let gw = &c.gw;
    let bob = token_of(gw, "bob", BOB).await;
    assert_eq!(
        call(gw, "GET", "/c/report", Some(&bob), "").await.status,
        200
    );
    let hit = call(gw, "GET", "/c/report", Some(&bob), "").await;
    assert_eq!((hit.status, x_cache(&hit)), (200, "hit"));
    let hit_private = call(gw, "GET", "/c/private", Some(&bob), "").await;
    assert_eq!(
        call(gw, "GET", "/c/private", Some(&bob), "").await.text(),
        hit_private.text()
    );

    // business_user loses report:view.
    let mut spec = c.config.access.clone().expect("[access]");
    for role in &mut spec.roles {
        if role.name == "business_user" {
            role.permissions.retain(|p| p.as_str() != "report:view");
        }
    }
    let before = c.access.generation();
    c.access.reload(&spec).await.expect("reload");
    assert_ne!(c.access.generation(), before);
    let refused = call(gw, "GET", "/c/report", Some(&bob), "").await;
    refused.assert_problem(403);
    assert_eq!(x_cache(&refused), "none", "refused before the cache");
    // What is still allowed is answered afresh under the new policy.
    let fresh = call(gw, "GET", "/c/private", Some(&bob), "").await;
    assert_eq!((fresh.status, x_cache(&fresh)), (200, "miss"));
    c.gw.stop().await;
}

#[tokio::test]
async fn entries_never_cross_tenants_or_callers() {
    let c = cached(&[], CacheLimits::default()).await;
    let gw = &c.gw;
    let bob = token_of(gw, "bob", BOB).await;
    let dave = token_of(gw, "dave", DAVE).await;
    let carol = token_of(gw, "carol", CAROL).await;
    let acme = call(gw, "GET", "/c/private", Some(&bob), "").await;
    assert!(acme.text().ends_with("for bob in acme"), "{}", acme.text());
    // Another tenant, the same URL: its own answer.
    let globex = call(gw, "GET", "/c/private", Some(&carol), "").await;
    assert_eq!(x_cache(&globex), "miss");
    assert!(
        globex.text().ends_with("for carol in globex"),
        "{}",
        globex.text()
    );
    // Another caller of the same tenant: its own answer too.
    let other = call(gw, "GET", "/c/private", Some(&dave), "").await;
    assert_eq!(x_cache(&other), "miss");
    assert!(
        other.text().ends_with("for dave in acme"),
        "{}",
        other.text()
    );
    // A second session of the same user: its own entries.
    let bob2 = token_of(gw, "bob", BOB).await;
    assert_eq!(
        x_cache(&call(gw, "GET", "/c/private", Some(&bob2), "").await),
        "miss"
    );
    // Each still hits its own.
    for (token, who) in [(&bob, "bob in acme"), (&carol, "carol in globex")] {
        let r = call(gw, "GET", "/c/private", Some(token), "").await;
        assert_eq!(x_cache(&r), "hit");
        assert!(r.text().ends_with(who));
    }
    c.gw.stop().await;
}

#[tokio::test]
async fn what_must_not_be_stored_is_not() {
    let c = cached(&[], CacheLimits::default()).await;
    let gw = &c.gw;
    let bob = token_of(gw, "bob", BOB).await;
    for path in ["/c/no-store", "/c/cookie", "/c/vary-star", "/c/unmarked"] {
        let a = call(gw, "GET", path, Some(&bob), "").await;
        let b = call(gw, "GET", path, Some(&bob), "").await;
        assert_eq!((a.status, b.status), (200, 200), "{path}");
        assert_eq!(x_cache(&b), "miss", "{path}");
        assert_ne!(a.text(), b.text(), "{path} ran twice");
    }
    // The request's own no-store: passed by.
    call(gw, "GET", "/c/private", Some(&bob), "").await;
    let r = call(
        gw,
        "GET",
        "/c/private",
        Some(&bob),
        "\nCache-Control: no-store",
    )
    .await;
    assert_eq!(x_cache(&r), "none");
    // Vary: stored per value of the named field.
    let en = call(gw, "GET", "/c/vary", Some(&bob), "\nAccept-Language: en").await;
    let en2 = call(gw, "GET", "/c/vary", Some(&bob), "\nAccept-Language: en").await;
    assert_eq!((x_cache(&en2), en2.text()), ("hit", en.text()));
    let fr = call(gw, "GET", "/c/vary", Some(&bob), "\nAccept-Language: fr").await;
    assert_eq!(x_cache(&fr), "miss");
    assert_ne!(fr.text(), en.text());
    c.gw.stop().await;
}

#[tokio::test]
async fn the_store_keeps_to_its_bounds() {
    let limits = CacheLimits {
        max_bytes: 1 << 20,
        max_entry_bytes: 4096,
        max_entries: 2,
    };
    let c = cached(&[], limits).await;
    let gw = &c.gw;
    let bob = token_of(gw, "bob", BOB).await;
    for q in ["a", "b", "c"] {
        let path = format!("/c/private?{q}");
        assert_eq!(
            x_cache(&call(gw, "GET", &path, Some(&bob), "").await),
            "miss"
        );
        assert!(c.store.len() <= 2);
    }
    // The least recently used (`a`) went; `c` is there.
    assert_eq!(
        x_cache(&call(gw, "GET", "/c/private?c", Some(&bob), "").await),
        "hit"
    );
    assert_eq!(
        x_cache(&call(gw, "GET", "/c/private?a", Some(&bob), "").await),
        "miss"
    );
    assert!(c.store.bytes() <= limits.max_bytes);
    c.gw.stop().await;
}
