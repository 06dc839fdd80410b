//! The layer against a plain service: what is stored, for whom, and how
//! it is answered.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use jiff::{SignedDuration, Timestamp};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::{Principal, TenantId};

type Headers = Vec<(&'static str, String)>;

/// A service answering `headers` with a body naming its run.
fn app(
    headers: Headers,
    runs: Arc<AtomicUsize>,
) -> impl Service<
    Request<String>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |req: Request<String>| {
        let run = runs.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::new(Full::new(Bytes::from(format!("run {run}"))));
        if req.method() == Method::POST {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
        for (k, v) in &headers {
            response
                .headers_mut()
                .append(*k, v.parse().expect("a header value"));
        }
        async move { Ok::<_, Infallible>(response) }
    })
}

struct Fixture {
    store: CacheStore,
    clock: Arc<ManualClock>,
    runs: Arc<AtomicUsize>,
}

impl Fixture {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(
            Timestamp::UNIX_EPOCH + SignedDuration::from_hours(24 * 365 * 50),
        ));
        Self {
            store: CacheStore::with_clock(
                CacheLimits {
                    max_bytes: 1 << 20,
                    max_entry_bytes: 64,
                    max_entries: 100,
                },
                clock.clone(),
            ),
            clock,
            runs: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// One request through the cache; the body read to its end.
    async fn call(&self, headers: &Headers, req: Request<String>) -> (Response<()>, String) {
        let svc = ResponseCacheLayer::new(self.store.clone())
            .x_cache_header(true)
            .layer(app(headers.clone(), self.runs.clone()));
        let response = svc.oneshot(req).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("a body").to_bytes();
        (
            Response::from_parts(parts, ()),
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }
}

fn get(path: &str, who: Option<&str>) -> Request<String> {
    request(Method::GET, path, who, &[])
}

fn request(
    method: Method,
    path: &str,
    who: Option<&str>,
    headers: &[(&'static str, &'static str)],
) -> Request<String> {
    let mut builder = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut req = builder.body(String::new()).expect("a request");
    if let Some(who) = who {
        req.extensions_mut().insert(
            Principal::builder(who)
                .session_id(format!("{who}-session"))
                .tenant(TenantId::new("acme").expect("a tenant"))
                .build(),
        );
    }
    req
}

fn x_cache<B>(r: &Response<B>) -> &str {
    r.headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
}

fn cc(value: &str) -> Headers {
    vec![("cache-control", value.to_owned())]
}

#[tokio::test]
async fn anonymous_and_authenticated_entries_never_meet() {
    let f = Fixture::new();
    let public = cc("public, max-age=60");
    let (r, anon) = f.call(&public, get("/p", None)).await;
    assert_eq!(x_cache(&r), "miss");
    let (r, again) = f.call(&public, get("/p", None)).await;
    assert_eq!((x_cache(&r), again.as_str()), ("hit", anon.as_str()));
    // An authenticated caller never gets the shared entry…
    let (r, bob) = f.call(&public, get("/p", Some("bob"))).await;
    assert_eq!(x_cache(&r), "miss");
    assert_ne!(bob, anon);
    // …and an anonymous one never gets Bob's.
    let (r, anon2) = f.call(&public, get("/p", None)).await;
    assert_eq!((x_cache(&r), anon2.as_str()), ("hit", anon.as_str()));
    // Credentials nobody verified: passed by.
    let forged = request(Method::GET, "/p", None, &[("authorization", "Bearer x")]);
    assert_eq!(x_cache(&f.call(&public, forged).await.0), "none");
    let cookie = request(Method::GET, "/p", None, &[("cookie", "session=x")]);
    assert_eq!(x_cache(&f.call(&public, cookie).await.0), "none");
}

#[tokio::test]
async fn shared_entries_need_public_and_prefer_s_maxage() {
    let f = Fixture::new();
    for headers in [cc("max-age=60"), cc("public, private, max-age=60")] {
        f.call(&headers, get("/q", None)).await;
        assert_eq!(x_cache(&f.call(&headers, get("/q", None)).await.0), "miss");
    }
    // s-maxage=1 beats max-age=60 for a shared entry.
    let headers = cc("public, max-age=60, s-maxage=1");
    f.call(&headers, get("/s", None)).await;
    assert_eq!(x_cache(&f.call(&headers, get("/s", None)).await.0), "hit");
    f.clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(x_cache(&f.call(&headers, get("/s", None)).await.0), "miss");
    // A private entry ignores s-maxage: fresh for max-age.
    let headers = cc("private, max-age=60, s-maxage=1");
    f.call(&headers, get("/s", Some("bob"))).await;
    f.clock.advance(std::time::Duration::from_secs(30));
    let (r, _) = f.call(&headers, get("/s", Some("bob"))).await;
    assert_eq!(x_cache(&r), "hit");
    assert_eq!(r.headers()[header::AGE], "30");
    // Dated when it was made, 30 s ago.
    let date = r.headers()[header::DATE].to_str().expect("ASCII");
    let made = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(date)
        .expect("an HTTP date");
    assert_eq!(made + SignedDuration::from_secs(30), f.clock.now());
}

#[tokio::test]
async fn expires_counts_from_the_response_date() {
    let f = Fixture::new();
    let http_date = |t: Timestamp| {
        jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&t)
            .expect("a date")
    };
    let date = http_date(f.clock.now());
    let expires = http_date(f.clock.now() + SignedDuration::from_secs(10));
    let headers = vec![("date", date.clone()), ("expires", expires)];
    f.call(&headers, get("/e", Some("bob"))).await;
    f.clock.advance(std::time::Duration::from_secs(9));
    assert_eq!(
        x_cache(&f.call(&headers, get("/e", Some("bob"))).await.0),
        "hit"
    );
    f.clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(
        x_cache(&f.call(&headers, get("/e", Some("bob"))).await.0),
        "miss"
    );
    // An invalid Expires is in the past: not stored.
    let headers = vec![("date", date), ("expires", "0".to_owned())];
    f.call(&headers, get("/x", Some("bob"))).await;
    assert_eq!(
        x_cache(&f.call(&headers, get("/x", Some("bob"))).await.0),
        "miss"
    );
}

#[tokio::test]
async fn conditional_requests_and_request_directives() {
    let f = Fixture::new();
    let headers = vec![
        ("cache-control", "max-age=60".to_owned()),
        ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT".to_owned()),
    ];
    f.call(&headers, get("/m", Some("bob"))).await;
    let ims = |date: &'static str| {
        request(
            Method::GET,
            "/m",
            Some("bob"),
            &[("if-modified-since", date)],
        )
    };
    let (r, body) = f.call(&headers, ims("Sun, 06 Nov 1994 08:49:37 GMT")).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    let (r, _) = f.call(&headers, ims("Sat, 05 Nov 1994 08:49:37 GMT")).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The request's max-age bounds the age served.
    f.clock.advance(std::time::Duration::from_secs(10));
    let old = request(
        Method::GET,
        "/m",
        Some("bob"),
        &[("cache-control", "max-age=5")],
    );
    assert_eq!(x_cache(&f.call(&headers, old).await.0), "miss");
    let young = request(
        Method::GET,
        "/m",
        Some("bob"),
        &[("cache-control", "max-age=5")],
    );
    assert_eq!(x_cache(&f.call(&headers, young).await.0), "hit");
    let pragma = request(Method::GET, "/m", Some("bob"), &[("pragma", "no-cache")]);
    assert_eq!(x_cache(&f.call(&headers, pragma).await.0), "miss");
    // A range request passes by.
    let range = request(Method::GET, "/m", Some("bob"), &[("range", "bytes=0-1")]);
    assert_eq!(x_cache(&f.call(&headers, range).await.0), "none");
}

#[tokio::test]
async fn statuses_streams_and_bounds() {
    let f = Fixture::new();
    // A HEAD miss is answered and stores nothing.
    let headers = cc("max-age=60");
    let (r, _) = f
        .call(&headers, request(Method::HEAD, "/h", Some("bob"), &[]))
        .await;
    assert_eq!(x_cache(&r), "miss");
    assert!(f.store.is_empty());
    // Server-sent events are never stored.
    let sse = vec![
        ("cache-control", "max-age=60".to_owned()),
        ("content-type", "Text/Event-Stream".to_owned()),
    ];
    f.call(&sse, get("/sse", Some("bob"))).await;
    assert!(f.store.is_empty());

    // A stream over the per-entry cap (64 bytes) goes out whole, unstored.
    let store = f.store.clone();
    let streaming = |chunks: usize| {
        ResponseCacheLayer::new(store.clone()).layer(service_fn(
            move |_req: Request<String>| async move {
                let mut response = Response::new(Chunks(chunks));
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    "max-age=60".parse().expect("a value"),
                );
                Ok::<_, Infallible>(response)
            },
        ))
    };
    let response = streaming(3)
        .oneshot(get("/stream", Some("bob")))
        .await
        .expect("infallible");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    assert_eq!(body.len(), 120, "passed through whole");
    assert!(f.store.is_empty(), "over the cap: not stored");
    let response = streaming(1)
        .oneshot(get("/stream1", Some("bob")))
        .await
        .expect("infallible");
    let _ = response.into_body().collect().await;
    assert_eq!(
        f.store.len(),
        1,
        "within the cap: stored once read to its end"
    );

    // A 500 is never stored; a 404 with freshness is.
    let store = f.store.clone();
    for (status, stored) in [(500, false), (404, true), (206, false)] {
        store.clear();
        let svc = ResponseCacheLayer::new(store.clone()).layer(service_fn(
            move |_req: Request<String>| async move {
                let mut response = Response::new(Full::new(Bytes::from_static(b"x")));
                *response.status_mut() = StatusCode::from_u16(status).expect("a status");
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    "max-age=60".parse().expect("a value"),
                );
                Ok::<_, Infallible>(response)
            },
        ));
        let response = svc
            .oneshot(get("/s", Some("bob")))
            .await
            .expect("infallible");
        let _ = response.into_body().collect().await;
        assert_eq!(!store.is_empty(), stored, "{status}");
    }
}

/// A body of `n` 40-byte chunks whose length is not known in advance.
struct Chunks(usize);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(None);
        }
        self.0 -= 1;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            &[b'x'; 40],
        )))))
    }
}

#[tokio::test]
async fn a_successful_write_drops_every_callers_entries_of_its_target() {
    let f = Fixture::new();
    let headers = cc("private, max-age=60");
    f.call(&headers, get("/w", Some("bob"))).await;
    f.call(&headers, get("/w", Some("dave"))).await;
    f.call(&headers, get("/other", Some("bob"))).await;
    assert_eq!(f.store.len(), 3);
    f.call(&headers, request(Method::POST, "/w", Some("bob"), &[]))
        .await;
    assert_eq!(f.store.len(), 1, "only /other is left");
    assert_eq!(
        x_cache(&f.call(&headers, get("/other", Some("bob"))).await.0),
        "hit"
    );
}

#[tokio::test]
async fn a_new_policy_generation_starts_afresh() {
    #[derive(Default)]
    struct Policy(std::sync::atomic::AtomicU64);
    impl Generation for Policy {
        fn generation(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }
    let f = Fixture::new();
    let policy = Arc::new(Policy::default());
    assert!(f.store.set_generation(policy.clone()));
    assert!(!f.store.set_generation(policy.clone()), "set once");
    let headers = cc("private, max-age=60");
    f.call(&headers, get("/g", Some("bob"))).await;
    assert_eq!(
        x_cache(&f.call(&headers, get("/g", Some("bob"))).await.0),
        "hit"
    );
    policy.0.fetch_add(1, Ordering::SeqCst);
    assert_eq!(
        x_cache(&f.call(&headers, get("/g", Some("bob"))).await.0),
        "miss"
    );
    // The deferred-check marker keeps a request out.
    let mut marked = get("/g", Some("bob"));
    marked.extensions_mut().insert(Uncacheable);
    assert_eq!(x_cache(&f.call(&headers, marked).await.0), "none");
}

#[test]
fn limits_are_validated() {
    assert!(CacheLimits::default().validate().is_ok());
    let bad = |max_bytes, max_entry_bytes, max_entries| {
        CacheLimits {
            max_bytes,
            max_entry_bytes,
            max_entries,
        }
        .validate()
    };
    assert_eq!(bad(0, 1, 1), Err(CacheLimitsError::ZeroBytes));
    assert_eq!(bad(1, 1, 0), Err(CacheLimitsError::ZeroEntries));
    assert_eq!(bad(10, 11, 1), Err(CacheLimitsError::EntryBytes(10)));
    assert_eq!(bad(10, 0, 1), Err(CacheLimitsError::EntryBytes(10)));
}
