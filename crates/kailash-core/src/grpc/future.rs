use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};
use pin_project_lite::pin_project;

use super::{Code, percent_encode_message, retry_info_details};
use crate::problem::{Problem, ResponseBody};

pin_project! {
    /// The response future of [`GrpcStatus`](super::GrpcStatus).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        grpc: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, grpc: bool) -> Self {
        Self { inner, grpc }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        // A gRPC service answers 200 even for its own errors; anything else
        // is an HTTP refusal from a layer, which a gRPC client cannot read.
        if !*this.grpc || response.status() == StatusCode::OK {
            return Poll::Ready(Ok(response.map(ResponseBody::new)));
        }
        let (parts, _dropped) = response.into_parts();
        Poll::Ready(Ok(trailers_only(
            parts.status,
            &parts.headers,
            parts.extensions.get::<Problem>(),
        )))
    }
}

/// The trailers-only gRPC response for an HTTP refusal.
fn trailers_only<B>(
    status: StatusCode,
    refused: &HeaderMap,
    problem: Option<&Problem>,
) -> Response<ResponseBody<B>> {
    let code = Code::for_http(status);
    let message = match problem {
        Some(p) => p.detail().unwrap_or(p.title()).to_owned(),
        None => status.canonical_reason().unwrap_or("refused").to_owned(),
    };
    let mut response = Response::new(ResponseBody::empty());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(code.as_i32()));
    // Percent-encoding leaves only visible ASCII, always a valid value.
    if let Ok(value) = HeaderValue::from_str(&percent_encode_message(&message)) {
        headers.insert("grpc-message", value);
    }
    if let Some(delay) = problem.and_then(Problem::retry_after) {
        let details = retry_info_details(code, &message, delay);
        if let Ok(value) = HeaderValue::from_str(&data_encoding::BASE64_NOPAD.encode(&details)) {
            headers.insert("grpc-status-details-bin", value);
        }
    }
    for name in [WWW_AUTHENTICATE, RETRY_AFTER] {
        if let Some(value) = refused.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Request;
    use http_body_util::{BodyExt, Full};
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::grpc::GrpcStatusLayer;

    type Inner = ResponseBody<Full<bytes::Bytes>>;

    /// `problem` (or a gRPC answer when `None`) through the layer, for a
    /// request of `content_type`.
    async fn through(
        problem: Option<Problem>,
        content_type: &str,
    ) -> Response<ResponseBody<Inner>> {
        let svc = GrpcStatusLayer::new().layer(service_fn(move |_req: Request<()>| {
            let response: Response<Inner> = match &problem {
                Some(p) => p.to_response(),
                None => Response::new(ResponseBody::new(Full::new(bytes::Bytes::from_static(
                    b"\0\0\0\0\0",
                )))),
            };
            async move { Ok::<_, std::convert::Infallible>(response) }
        }));
        let req = Request::post("/svc/Method")
            .header(CONTENT_TYPE, content_type)
            .body(())
            .unwrap();
        svc.oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn refusals_of_grpc_requests_become_trailers_only_statuses() {
        let problem = Problem::unauthorized(Some("invalid_token"));
        let res = through(Some(problem), "application/grpc").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(res.headers()["grpc-status"], "16");
        assert_eq!(res.headers()["grpc-message"], "Unauthorized");
        assert_eq!(
            res.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        assert!(!res.headers().contains_key("grpc-status-details-bin"));
        assert!(http_body::Body::is_end_stream(res.body()));
    }

    #[tokio::test]
    async fn the_detail_is_the_message_and_a_delay_is_retry_info() {
        let problem = Problem::too_many_requests(Duration::from_millis(1500))
            .with_detail("tenant quota 100% used");
        let res = through(Some(problem), "application/grpc+proto").await;
        assert_eq!(res.headers()["grpc-status"], "8");
        assert_eq!(res.headers()["grpc-message"], "tenant quota 100%25 used");
        assert_eq!(res.headers()[RETRY_AFTER], "2");
        let details = data_encoding::BASE64_NOPAD
            .decode(res.headers()["grpc-status-details-bin"].as_bytes())
            .unwrap();
        let expected = retry_info_details(
            Code::ResourceExhausted,
            "tenant quota 100% used",
            Duration::from_millis(1500),
        );
        assert_eq!(details, expected);
    }

    #[tokio::test]
    async fn other_requests_and_grpc_answers_pass_untouched() {
        let res = through(Some(Problem::forbidden("no")), "application/json").await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(!res.headers().contains_key("grpc-status"));
        let res = through(None, "application/grpc").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(!res.headers().contains_key("grpc-status"));
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"\0\0\0\0\0");
    }

    #[tokio::test]
    async fn a_bare_http_error_gets_its_reason_as_message() {
        let svc = GrpcStatusLayer::new().layer(service_fn(|_req: Request<()>| async {
            let mut r = Response::new(Full::new(bytes::Bytes::new()));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, std::convert::Infallible>(r)
        }));
        let req = Request::post("/svc/M")
            .header(CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.headers()["grpc-status"], "14");
        assert_eq!(res.headers()["grpc-message"], "Service Unavailable");
    }
}
