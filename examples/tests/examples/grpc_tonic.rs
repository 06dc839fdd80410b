//! `grpc_tonic`: a tonic service behind the layers, called with tonic's
//! client; refusals arrive as gRPC statuses.

use std::time::Duration;

use http::uri::PathAndQuery;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tonic::Code;

use crate::Example;

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

/// `google.rpc.Status`, `google.protobuf.Any`, `google.rpc.RetryInfo` and
/// `google.protobuf.Duration`: what `grpc-status-details-bin` carries.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

type Channel = Client<HttpConnector, tonic::body::Body>;

/// `SayHello` through tonic's client (over hyper-util's HTTP/2 client).
async fn say_hello(
    client: &Channel,
    addr: std::net::SocketAddr,
    token: Option<&str>,
) -> Result<HelloReply, tonic::Status> {
    let origin = format!("http://{addr}").parse().unwrap();
    let mut grpc = tonic::client::Grpc::with_origin(client.clone(), origin);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let mut req = tonic::Request::new(HelloRequest {
        name: "world".into(),
    });
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let path = PathAndQuery::from_static("/kailash.examples.Greeter/SayHello");
    let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
    grpc.unary(req, path, codec)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn refusals_reach_a_tonic_client_as_grpc_statuses() {
    let ex = Example::start("grpc_tonic", &["127.0.0.1:0"], &[]);
    let (alice, bob) = (ex.token("alice"), ex.token("bob"));
    let client: Channel = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();

    let status = say_hello(&client, ex.addr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.metadata().get("www-authenticate").unwrap(), "Bearer");
    let status = say_hello(&client, ex.addr, Some("forged"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let status = say_hello(&client, ex.addr, Some(&bob)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("greeter:call"), "{status:?}");

    // acme may make 3 calls a day; the refusals above were not charged.
    for _ in 0..3 {
        let reply = say_hello(&client, ex.addr, Some(&alice)).await.unwrap();
        assert_eq!(reply.message, "hello world, from alice of acme");
    }
    let status = say_hello(&client, ex.addr, Some(&alice)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let details: RpcStatus = prost::Message::decode(status.details()).expect("google.rpc.Status");
    assert_eq!(details.code, Code::ResourceExhausted as i32);
    let retry = details
        .details
        .iter()
        .find(|a| a.type_url == "type.googleapis.com/google.rpc.RetryInfo")
        .expect("RetryInfo");
    let retry: RetryInfo = prost::Message::decode(retry.value.as_slice()).unwrap();
    let delay = retry.retry_delay.expect("retry_delay");
    // Until the next UTC midnight: more than nothing, at most a day.
    let delay = Duration::new(delay.seconds as u64, delay.nanos as u32);
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(86_400),
        "{delay:?}"
    );
}

#[tokio::test]
async fn an_unknown_method_is_unimplemented_once_allowed() {
    let ex = Example::start("grpc_tonic", &["127.0.0.1:0"], &[]);
    let client: Channel = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let origin = format!("http://{}", ex.addr).parse().unwrap();
    let mut grpc = tonic::client::Grpc::with_origin(client, origin);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(HelloRequest { name: "x".into() });
    let token = ex.token("alice");
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let path = PathAndQuery::from_static("/kailash.examples.Greeter/Nope");
    let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
    let status = grpc.unary(req, path, codec).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}
