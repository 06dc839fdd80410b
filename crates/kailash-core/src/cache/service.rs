use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use jiff::Timestamp;

use crate::{Principal, TenantId};

use super::Uncacheable;
use super::body::CacheBody;
use super::config::Config;
use super::directives::{CacheControl, Vary, delta_seconds, http_date, if_none_match};
use super::future::{Invalidate, Pending, ResponseFuture};
use super::key::Key;
use super::store::{CacheStore, Entry};

/// The service of [`ResponseCacheLayer`](super::ResponseCacheLayer).
#[derive(Debug, Clone)]
pub struct ResponseCache<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> ResponseCache<S> {
    crate::inner_service_accessors!();
}

/// Statuses stored (RFC 9110 §15.1's heuristically cacheable set without
/// 206: ranges are not served from the cache), and only with explicit
/// freshness.
const STORABLE: [u16; 10] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414];

/// Connection-level fields never stored (RFC 9111 §3.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "x-cache",
];

pub(crate) fn count(outcome: &'static str) {
    metrics::counter!("kailash_cache_requests_total", "outcome" => outcome).increment(1);
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for ResponseCache<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = Response<CacheBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        if !is_safe(req.method()) {
            count("bypass");
            let (host, target) = target(&req);
            let invalidate = Box::new(Invalidate {
                store: config.store.clone(),
                host: host.into(),
                target: target.into_boxed_str(),
            });
            return ResponseFuture::write(self.inner.call(req), invalidate);
        }
        let Some((key, request_cc)) = lookup_key(&config.store, &req) else {
            count("bypass");
            return ResponseFuture::forward(self.inner.call(req), None, false);
        };
        let head = req.method() == Method::HEAD;
        let now = config.store.now();
        if !request_cc.no_cache
            && let Some(entry) = config.store.get(&key, now)
            && vary_matches(&entry, req.headers())
            && acceptable_age(&request_cc, entry.age(now))
        {
            return ResponseFuture::ready(answer(&entry, req.headers(), now, head, config.x_cache));
        }
        count("miss");
        // Only a GET fills the cache: a HEAD answer has no body to store.
        let pending = (!head).then(|| {
            Box::new(Pending {
                store: config.store.clone(),
                shared: key.principal.is_none(),
                key,
                request: req.headers().clone(),
                requested_at: now,
            })
        });
        ResponseFuture::forward(self.inner.call(req), pending, config.x_cache)
    }
}

/// The key of a request the cache may answer, and its `Cache-Control`;
/// `None` when the request passes by the cache untouched.
fn lookup_key<B>(store: &CacheStore, req: &Request<B>) -> Option<(Key, CacheControl)> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let headers = req.headers();
    if req.extensions().get::<Uncacheable>().is_some() || headers.contains_key(header::RANGE) {
        return None;
    }
    let principal = req.extensions().get::<Principal>().cloned();
    // Credentials that no layer before the cache turned into a principal:
    // the cache is in the wrong place, or the route is public. Neither
    // may share an answer.
    if principal.is_none()
        && (headers.contains_key(header::AUTHORIZATION) || headers.contains_key(header::COOKIE))
    {
        return None;
    }
    let cc = CacheControl::parse(headers);
    if cc.no_store {
        return None;
    }
    let tenant = req
        .extensions()
        .get::<TenantId>()
        .cloned()
        .or_else(|| principal.as_ref().and_then(|p| p.tenant().cloned()));
    let (_, target) = target(req);
    Some((
        Key {
            target: target.into_boxed_str(),
            tenant,
            principal,
            generation: store.generation(),
        },
        cc,
    ))
}

/// Methods that change nothing (RFC 9110 §9.2.1): everything else may
/// leave stored answers stale.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The request's host, and its host, path and query as one string (the
/// target part of the key).
fn target<B>(req: &Request<B>) -> (&str, String) {
    let uri = req.uri();
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("");
    let path = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let mut target = String::with_capacity(host.len() + path.len());
    target.push_str(host);
    target.push_str(path);
    (host, target)
}

/// Whether the request asks for nothing younger than the entry.
fn acceptable_age(cc: &CacheControl, age: u64) -> bool {
    match cc.max_age {
        None => true,
        Some(Some(max)) => age <= max,
        Some(None) => false,
    }
}

fn vary_matches(entry: &Entry, request: &HeaderMap) -> bool {
    entry.vary.iter().all(|(name, stored)| {
        let mut values = request.get_all(name).iter();
        match (stored, values.next()) {
            (None, None) => true,
            (Some(stored), Some(value)) => value == stored && values.next().is_none(),
            _ => false,
        }
    })
}

/// The answer from `entry`: `304` to a matching conditional request, the
/// stored response otherwise (its header fields only, to a `HEAD`).
fn answer<B>(
    entry: &Entry,
    request: &HeaderMap,
    now: Timestamp,
    head: bool,
    x_cache: bool,
) -> Response<CacheBody<B>> {
    let age = HeaderValue::from(entry.age(now));
    let mut response = if entry.status == StatusCode::OK && not_modified(entry, request) {
        count("revalidated");
        let mut response = Response::new(CacheBody::stored(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        // The fields a 304 carries (RFC 9110 §15.4.5).
        for name in [
            header::CACHE_CONTROL,
            header::CONTENT_LOCATION,
            header::DATE,
            header::ETAG,
            header::EXPIRES,
            header::VARY,
        ] {
            for value in entry.headers.get_all(&name) {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
        response
    } else {
        count("hit");
        let body = if head {
            Bytes::new()
        } else {
            entry.body.clone()
        };
        let mut response = Response::new(CacheBody::stored(body));
        *response.status_mut() = entry.status;
        *response.headers_mut() = entry.headers.clone();
        if entry.status != StatusCode::NO_CONTENT {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        }
        response
    };
    response.headers_mut().insert(header::AGE, age);
    if x_cache {
        response
            .headers_mut()
            .insert("x-cache", HeaderValue::from_static("hit"));
    }
    response
}

/// Whether the request's preconditions say the client's copy is current:
/// `If-None-Match` by weak comparison, else `If-Modified-Since` against
/// `Last-Modified` (RFC 9110 §13.2.2).
fn not_modified(entry: &Entry, request: &HeaderMap) -> bool {
    if request.contains_key(header::IF_NONE_MATCH) {
        return entry
            .etag
            .as_ref()
            .and_then(|etag| etag.to_str().ok())
            .and_then(|etag| if_none_match(request, etag))
            .unwrap_or(false);
    }
    match (
        entry.last_modified,
        request.get(header::IF_MODIFIED_SINCE).and_then(http_date),
    ) {
        (Some(modified), Some(since)) => modified <= since,
        _ => false,
    }
}

/// What makes a response storable (RFC 9111 §3, narrowed: explicit
/// freshness only, never `no-cache` since the origin is not asked to
/// revalidate). `shared`: the request had no principal, so the entry would
/// be served to other anonymous callers.
pub(crate) fn storable<B>(response: &Response<B>, shared: bool, now: Timestamp) -> Option<Entry> {
    if !STORABLE.contains(&response.status().as_u16()) {
        return None;
    }
    let headers = response.headers();
    if headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .get(..17)
                .is_some_and(|p| p.eq_ignore_ascii_case("text/event-stream"))
        })
    {
        return None;
    }
    let cc = CacheControl::parse(headers);
    if cc.no_store || cc.no_cache {
        return None;
    }
    if shared && (cc.private || !cc.public) {
        return None;
    }
    let Vary::Fields(vary) = Vary::parse(headers) else {
        return None;
    };
    let explicit = if shared {
        cc.s_maxage.or(cc.max_age)
    } else {
        cc.max_age
    };
    let lifetime = match explicit {
        Some(Some(seconds)) => seconds,
        Some(None) => return None,
        None => {
            // Expires relative to the response's own Date (RFC 9111 §4.2.1);
            // an invalid Expires means already expired.
            let expires = http_date(headers.get(header::EXPIRES)?)?;
            let date = headers.get(header::DATE).and_then(http_date).unwrap_or(now);
            u64::try_from(expires.as_second().saturating_sub(date.as_second())).ok()?
        }
    };
    if lifetime == 0 {
        return None;
    }
    let mut stored = HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            stored.append(name.clone(), value.clone());
        }
    }
    // A hit says when the answer was made (with its `Age`), not when it
    // was served: the server would otherwise date it now.
    if !stored.contains_key(header::DATE)
        && let Ok(date) =
            jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&now)
        && let Ok(value) = HeaderValue::from_str(&date)
    {
        stored.insert(header::DATE, value);
    }
    Some(Entry {
        status: response.status(),
        etag: headers.get(header::ETAG).cloned(),
        last_modified: headers.get(header::LAST_MODIFIED).and_then(http_date),
        initial_age: headers
            .get(header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(delta_seconds)
            .unwrap_or(0),
        headers: stored,
        body: Bytes::new(),
        vary: vary.into_iter().map(|name| (name, None)).collect(),
        stored_at: now,
        lifetime,
    })
}
