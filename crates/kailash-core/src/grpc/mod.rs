//! gRPC statuses for the refusals of kailash-rs layers.
//!
//! Every guard layer (authentication, tenancy, access control, rate
//! limits) refuses with an HTTP status and an RFC 9457 problem body. A gRPC
//! client cannot read either: gRPC answers are always HTTP `200` and carry
//! their outcome in `grpc-status` / `grpc-message`. [`GrpcStatusLayer`],
//! placed outside those layers, turns every non-`200` answer to a gRPC
//! request (`content-type: application/grpc…`) into a *trailers-only* gRPC
//! response: HTTP `200`, `content-type: application/grpc`, an empty body
//! and, in its headers:
//!
//! - `grpc-status`: the [`Code`] for the HTTP status ([`Code::for_http`]:
//!   `401` → `UNAUTHENTICATED`, `403` → `PERMISSION_DENIED`, `429` →
//!   `RESOURCE_EXHAUSTED`, `503` → `UNAVAILABLE`, …);
//! - `grpc-message`: the problem's detail, else its title (percent-encoded
//!   as the gRPC spec asks);
//! - `grpc-status-details-bin`, when the problem says how long to wait: a
//!   `google.rpc.Status` carrying a `google.rpc.RetryInfo` with that
//!   delay, which `tonic-types` and every gRPC client library decode;
//! - `www-authenticate` and `retry-after`, kept as metadata.
//!
//! Requests of any other content type, and gRPC answers the service gave
//! itself (HTTP `200`), pass untouched, so one stack can serve a REST and
//! a gRPC API side by side. The layer needs nothing of tonic: it works on
//! any `http::Response` whose body is an [`http_body::Body`].
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use kailash_core::grpc::GrpcStatusLayer;
//! use kailash_core::problem::Problem;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Stands in for a rate limit that refuses every call.
//! let svc = ServiceBuilder::new()
//!     .layer(GrpcStatusLayer::new())
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(
//!             Problem::too_many_requests(Duration::from_secs(2))
//!                 .to_response::<http_body_util::Empty<bytes::Bytes>>(),
//!         )
//!     }));
//!
//! let grpc = Request::post("/shop.Orders/Get")
//!     .header("content-type", "application/grpc")
//!     .body(())?;
//! let res = svc.clone().oneshot(grpc).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["grpc-status"], "8"); // RESOURCE_EXHAUSTED
//! assert!(res.headers().contains_key("grpc-status-details-bin")); // RetryInfo: 2 s
//!
//! // The same refusal to a REST client stays a 429 problem.
//! let res = svc.oneshot(Request::get("/orders").body(())?).await?;
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod code;
mod details;
mod future;
mod layer;
mod service;

pub use code::Code;
pub use details::retry_info_details;
pub use future::ResponseFuture;
pub use layer::GrpcStatusLayer;
pub use service::GrpcStatus;

/// Whether `headers` mark a gRPC request: a `content-type` of
/// `application/grpc`, optionally followed by `+<codec>` or `-web…`.
pub fn is_grpc_request(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// `grpc-message` encoding (gRPC over HTTP/2 spec): bytes outside
/// printable ASCII, and `%`, as `%XX` of the UTF-8 encoding.
pub fn percent_encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encodes_what_the_spec_asks() {
        assert_eq!(
            percent_encode_message("quota 100% used"),
            "quota 100%25 used"
        );
        assert_eq!(percent_encode_message("caf\u{e9}\n"), "caf%C3%A9%0A");
        assert_eq!(percent_encode_message("plain: ok"), "plain: ok");
    }

    #[test]
    fn recognises_grpc_content_types_only() {
        let with = |ct: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            is_grpc_request(&h)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(!with("application/json"));
        assert!(!is_grpc_request(&http::HeaderMap::new()));
    }
}
