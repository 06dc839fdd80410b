use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use http::header::CONTENT_TYPE;
use http_body::Body;
use pin_project_lite::pin_project;

use super::{Problem, ResponseBody};

pin_project! {
    /// The response future of [`ProblemJson`](super::ProblemJson).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready!(self.project().inner.poll(cx))?;
        if !needs_problem_body(&response) {
            return Poll::Ready(Ok(response.map(ResponseBody::new)));
        }
        let (mut parts, _dropped) = response.into_parts();
        // Outside the request's span here: the trace id travels in the
        // response's extensions (set inside the span by the gateway).
        let trace = parts
            .extensions
            .get::<crate::trace_context::TraceId>()
            .map(|t| t.0.clone())
            .or_else(crate::trace_context::current_trace_id);
        let problem = Problem::from_status(parts.status);
        let (problem_parts, body) = problem.to_response_traced::<ResBody>(trace).into_parts();
        // The new body is neither the old length nor in the old encoding.
        parts.headers.remove(http::header::CONTENT_LENGTH);
        parts.headers.remove(http::header::CONTENT_ENCODING);
        for (name, value) in &problem_parts.headers {
            parts.headers.insert(name, value.clone());
        }
        // Like every rendered problem, readable by outer layers (gRPC).
        parts.extensions.insert(problem);
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

fn needs_problem_body<B: Body>(response: &Response<B>) -> bool {
    if response.status().as_u16() < 400 {
        return false;
    }
    match response.headers().get(CONTENT_TYPE) {
        None => true,
        Some(ct) => ct.as_bytes().starts_with(b"text/plain"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::ProblemJsonLayer;
    use http::{Request, StatusCode};
    use http_body_util::{BodyExt, Full};
    use tower::{Layer, ServiceExt, service_fn};

    async fn run(
        status: StatusCode,
        content_type: Option<&'static str>,
    ) -> (StatusCode, String, String) {
        let svc = ProblemJsonLayer::new().layer(service_fn(move |_req: Request<()>| async move {
            let mut r = Response::new(Full::new(bytes::Bytes::from_static(b"internal text")));
            *r.status_mut() = status;
            if let Some(ct) = content_type {
                r.headers_mut().insert(CONTENT_TYPE, ct.parse().unwrap());
            }
            Ok::<_, std::convert::Infallible>(r)
        }));
        let r = svc.oneshot(Request::new(())).await.unwrap();
        if r.headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v == "application/problem+json")
        {
            assert!(
                !r.headers().contains_key(http::header::CONTENT_ENCODING),
                "stale encoding kept"
            );
        }
        let ct = r
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn bare_errors_become_problem_json() {
        let (status, ct, body) = run(StatusCode::NOT_FOUND, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(ct, "application/problem+json");
        assert!(body.contains("\"status\":404"));
        let (_, ct, body) = run(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("text/plain; charset=utf-8"),
        )
        .await;
        assert_eq!(ct, "application/problem+json");
        assert!(
            !body.contains("internal text"),
            "plain text is not copied: {body}"
        );
    }

    #[tokio::test]
    async fn a_rewritten_error_carries_its_problem() {
        let svc = ProblemJsonLayer::new().layer(service_fn(|_req: Request<()>| async {
            let mut r = Response::new(Full::new(bytes::Bytes::new()));
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            Ok::<_, std::convert::Infallible>(r)
        }));
        let r = svc.oneshot(Request::new(())).await.unwrap();
        let problem = r
            .extensions()
            .get::<Problem>()
            .expect("problem in extensions");
        assert_eq!(problem.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn other_responses_pass_untouched() {
        let (_, ct, body) = run(StatusCode::OK, None).await;
        assert_eq!((ct.as_str(), body.as_str()), ("", "internal text"));
        let (_, ct, body) = run(StatusCode::BAD_REQUEST, Some("application/json")).await;
        assert_eq!(
            (ct.as_str(), body.as_str()),
            ("application/json", "internal text")
        );
    }
}
