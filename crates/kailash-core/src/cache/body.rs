use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::key::Key;
use super::store::{CacheStore, Entry};

/// Copies a body as it streams to the client, up to the per-entry cap,
/// and stores the entry when the body ends whole. Nothing is held back:
/// every frame goes out as soon as the inner body yields it.
#[derive(Debug)]
pub(crate) struct Recorder {
    store: CacheStore,
    key: Key,
    entry: Entry,
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
}

impl Recorder {
    pub(crate) fn new(store: CacheStore, key: Key, entry: Entry, limit: usize) -> Self {
        Self {
            store,
            key,
            entry,
            chunks: Vec::new(),
            len: 0,
            limit,
        }
    }

    /// Keeps `data`; `false` once the body is over the cap.
    fn push(&mut self, data: &Bytes) -> bool {
        self.len = self.len.saturating_add(data.len());
        if self.len > self.limit {
            return false;
        }
        if !data.is_empty() {
            self.chunks.push(data.clone());
        }
        true
    }

    fn finish(self: Box<Self>) {
        let Recorder {
            store,
            key,
            mut entry,
            chunks,
            len,
            ..
        } = *self;
        entry.body = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut joined = BytesMut::with_capacity(len);
                for chunk in chunks {
                    joined.extend_from_slice(&chunk);
                }
                joined.freeze()
            }
        };
        store.insert(key, entry);
    }
}

pin_project! {
    /// The response body of [`ResponseCache`](super::ResponseCache): a
    /// stored body, or the inner service's (passed through, copied on its
    /// way when the response may be stored).
    pub struct CacheBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Stored { data: Option<Bytes> },
        Inner {
            #[pin]
            body: B,
            recorder: Option<Box<Recorder>>,
        },
    }
}

impl<B> CacheBody<B> {
    pub(crate) fn stored(data: Bytes) -> Self {
        Self {
            kind: Kind::Stored {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B: Body> CacheBody<B> {
    pub(crate) fn from_inner(body: B, recorder: Option<Box<Recorder>>) -> Self {
        // A body that is already over (empty) may never be polled.
        let recorder = match recorder {
            Some(r) if body.is_end_stream() => {
                r.finish();
                None
            }
            other => other,
        };
        Self {
            kind: Kind::Inner { body, recorder },
        }
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Stored { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Inner { mut body, recorder } => {
                let polled = body.as_mut().poll_frame(cx);
                if recorder.is_some() {
                    match &polled {
                        Poll::Ready(Some(Ok(frame))) => {
                            let keep = match frame.data_ref() {
                                Some(data) => recorder.as_mut().is_some_and(|r| r.push(data)),
                                // Trailers are not stored: neither is the body.
                                None => false,
                            };
                            if !keep {
                                *recorder = None;
                            } else if body.is_end_stream()
                                && let Some(r) = recorder.take()
                            {
                                r.finish();
                            }
                        }
                        Poll::Ready(None) => {
                            if let Some(r) = recorder.take() {
                                r.finish();
                            }
                        }
                        Poll::Ready(Some(Err(_))) => *recorder = None,
                        Poll::Pending => {}
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Stored { data } => data.is_none(),
            Kind::Inner { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Stored { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Inner { body, .. } => body.size_hint(),
        }
    }
}

impl<B> std::fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBody").finish_non_exhaustive()
    }
}
