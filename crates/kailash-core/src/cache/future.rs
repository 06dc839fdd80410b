use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use jiff::Timestamp;
use pin_project_lite::pin_project;

use super::body::{CacheBody, Recorder};
use super::key::Key;
use super::service::storable;
use super::store::CacheStore;

/// A miss that may fill the cache once the response is known.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) store: CacheStore,
    pub(crate) key: Key,
    pub(crate) shared: bool,
    /// The request's fields, for the values its response's `Vary` names.
    pub(crate) request: HeaderMap,
    pub(crate) requested_at: Timestamp,
}

/// A write whose success leaves the cache's entries of its target stale.
#[derive(Debug)]
pub(crate) struct Invalidate {
    pub(crate) store: CacheStore,
    pub(crate) host: Box<str>,
    pub(crate) target: Box<str>,
}

impl Invalidate {
    /// Drops the entries of the request's target and of the same-host
    /// paths its `Location` and `Content-Location` name (RFC 9111 §4.4).
    fn run(&self, headers: &HeaderMap) {
        self.store.invalidate(&self.target);
        for name in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
            if let Some(path) = headers.get(name).and_then(|v| v.to_str().ok())
                && path.starts_with('/')
                && !path.starts_with("//")
            {
                let mut target = String::with_capacity(self.host.len() + path.len());
                target.push_str(&self.host);
                target.push_str(path);
                self.store.invalidate(&target);
            }
        }
    }
}

pin_project! {
    /// The response future of [`ResponseCache`](super::ResponseCache): a
    /// ready answer from the cache, or the inner service's, recorded on
    /// its way out when it may be stored.
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Ready { response: Option<Response<CacheBody<B>>> },
        Forward {
            #[pin]
            future: F,
            pending: Option<Box<Pending>>,
            invalidate: Option<Box<Invalidate>>,
            x_cache: bool,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn ready(response: Response<CacheBody<B>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn forward(future: F, pending: Option<Box<Pending>>, x_cache: bool) -> Self {
        Self {
            kind: Kind::Forward {
                future,
                pending,
                invalidate: None,
                x_cache,
            },
        }
    }

    pub(crate) fn write(future: F, invalidate: Box<Invalidate>) -> Self {
        Self {
            kind: Kind::Forward {
                future,
                pending: None,
                invalidate: Some(invalidate),
                x_cache: false,
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = Bytes>,
{
    type Output = Result<Response<CacheBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled after completion: a contract breach by the caller;
                // stay pending rather than panic.
                None => Poll::Pending,
            },
            KindProj::Forward {
                future,
                pending,
                invalidate,
                x_cache,
            } => {
                let mut response = ready!(future.poll(cx))?;
                if let Some(invalidate) = invalidate.take()
                    && (response.status().is_success() || response.status().is_redirection())
                {
                    invalidate.run(response.headers());
                }
                if *x_cache {
                    response
                        .headers_mut()
                        .insert("x-cache", HeaderValue::from_static("miss"));
                }
                let recorder = pending.take().and_then(|p| recorder(*p, &response));
                Poll::Ready(Ok(
                    response.map(|body| CacheBody::from_inner(body, recorder))
                ))
            }
        }
    }
}

/// A recorder for `response` when it may be stored.
fn recorder<B: http_body::Body>(pending: Pending, response: &Response<B>) -> Option<Box<Recorder>> {
    let now = pending.store.now().max(pending.requested_at);
    let mut entry = storable(response, pending.shared, now)?;
    for (name, value) in &mut entry.vary {
        let mut values = pending.request.get_all(&*name).iter();
        *value = values.next().cloned();
        // A field sent more than once is not compared: not stored.
        if values.next().is_some() {
            return None;
        }
    }
    let limit = pending.store.limits().max_entry_bytes;
    // A body known to be over the cap is passed on untouched.
    if http_body::Body::size_hint(response.body())
        .exact()
        .is_some_and(|n| n > limit as u64)
    {
        return None;
    }
    Some(Box::new(Recorder::new(
        pending.store,
        pending.key,
        entry,
        limit,
    )))
}
