use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};

use crate::admission::{CheckOwner, PendingAdmission, Refusal, RequestView};
use crate::context::RequestContext;
use crate::guard::{Deferred, GuardFuture, GuardRefusal};
use crate::principal::Principal;
use crate::problem::{Problem, ResponseBody};
use crate::state::{Check, Namespace, Outcome, RateDecision, RateQuota, StateError, StateKey};

use super::config::{Config, FailMode};

const NS_IP: Namespace = Namespace::new("rl.ip");
const NS_USER: Namespace = Namespace::new("rl.user");
const NS_TENANT: Namespace = Namespace::new("rl.tenant");

/// The service of [`RateLimitLayer`](super::RateLimitLayer).
#[derive(Clone)]
pub struct RateLimit<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
    /// Who answers for each bucket (ip, user, tenant) in a deferred admission.
    pub(super) owners: Arc<[Arc<dyn CheckOwner>; 3]>,
}

/// Answers for one bucket's check in a deferred admission, exactly as the
/// layer answers when it charges the bucket itself.
struct BucketOwner {
    name: &'static str,
    fail_mode: FailMode,
}

impl CheckOwner for BucketOwner {
    fn refuse(&self, _: &Check, outcome: &Outcome, _: RequestView<'_>) -> Option<Refusal> {
        let verdict = match outcome {
            Outcome::Rate(d) => refuse_decision(self.name, d),
            Outcome::Failed(e) => on_backend_error(self.fail_mode, e),
            _ => return None,
        };
        match verdict {
            Verdict::Pass => None,
            Verdict::Refuse(problem) => Some(Refusal::new(problem)),
        }
    }
}

/// The owners of the three buckets of a layer's configuration.
pub(super) fn owners(config: &Config) -> Arc<[Arc<dyn CheckOwner>; 3]> {
    let owner = |name| -> Arc<dyn CheckOwner> {
        Arc::new(BucketOwner {
            name,
            fail_mode: config.fail_mode,
        })
    };
    Arc::new([owner("ip"), owner("user"), owner("tenant")])
}

impl<S> RateLimit<S> {
    crate::inner_service_accessors!();
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

enum Verdict {
    Pass,
    Refuse(Problem),
}

/// One bucket a request is charged to.
struct Bucket {
    key: StateKey,
    quota: RateQuota,
    name: &'static str,
}

/// The (at most three) buckets of one request, without a heap allocation.
type Buckets = [Option<Bucket>; 3];

fn verdict(config: &Config, bucket: &Bucket, result: Result<RateDecision, StateError>) -> Verdict {
    match result {
        Ok(d) => refuse_decision(bucket.name, &d),
        Err(e) => on_backend_error(config.fail_mode, &e),
    }
}

fn refuse_decision(name: &'static str, d: &RateDecision) -> Verdict {
    if d.allowed {
        return Verdict::Pass;
    }
    metrics::counter!("kailash_tenancy_refusals_total", "kind" => "rate_limit", "scope" => name)
        .increment(1);
    Verdict::Refuse(
        Problem::too_many_requests(d.retry_after)
            .with_detail(format!("the {name} rate limit is exhausted"))
            .with_extension("limit", name),
    )
}

fn on_backend_error(mode: FailMode, error: &StateError) -> Verdict {
    match mode {
        FailMode::Open => {
            tracing::warn!(%error, "rate limit state unavailable; failing open");
            Verdict::Pass
        }
        FailMode::Closed => {
            tracing::warn!(%error, "rate limit state unavailable; failing closed");
            Verdict::Refuse(Problem::service_unavailable(
                "rate limiting is temporarily unavailable",
            ))
        }
    }
}

fn buckets<B>(config: &Config, req: &Request<B>) -> Buckets {
    let mut out: Buckets = [None, None, None];
    if let Some(quota) = config.per_ip {
        let ip = req
            .extensions()
            .get::<RequestContext>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), RequestContext::client_ip);
        out[0] = Some(Bucket {
            key: StateKey::global_display(NS_IP, config.ip_prefixes.group(ip)),
            quota,
            name: "ip",
        });
    }
    if let Some(principal) = req.extensions().get::<Principal>() {
        if let Some(quota) = config.per_user {
            let key = match principal.tenant() {
                Some(t) => StateKey::tenant(t, NS_USER, principal.subject()),
                None => StateKey::global(NS_USER, principal.subject()),
            };
            out[1] = Some(Bucket {
                key,
                quota,
                name: "user",
            });
        }
        if let (Some(quota), Some(tenant)) = (config.per_tenant, principal.tenant()) {
            out[2] = Some(Bucket {
                key: StateKey::tenant(tenant, NS_TENANT, ""),
                quota,
                name: "tenant",
            });
        }
    }
    out
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for RateLimit<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let mut buckets = buckets(&self.config, &req);
        if self.config.deferred {
            // The AdmitLayer inside charges them with the other deferred
            // checks; a full plan leaves the rest to be charged here.
            for (slot, owner) in buckets.iter_mut().zip(self.owners.iter()) {
                let Some(bucket) = slot.take() else { continue };
                let check = Check::Rate {
                    key: bucket.key,
                    quota: bucket.quota,
                    cost: 1,
                };
                if let Err(crate::state::PlanFull(Check::Rate { key, .. })) =
                    PendingAdmission::add(req.extensions_mut(), check, owner)
                {
                    *slot = Some(Bucket { key, ..bucket });
                }
            }
        }
        // Fast path: a backend that decides in process (memory) answers
        // synchronously, so nothing is boxed and the inner service is called
        // directly.
        let mut pending = 0;
        for (i, slot) in buckets.iter_mut().enumerate() {
            let Some(bucket) = slot else { continue };
            match self.config.limiter.check_now(&bucket.key, &bucket.quota, 1) {
                Some(result) => {
                    if let Verdict::Refuse(problem) = verdict(&self.config, bucket, result) {
                        return ResponseFuture::refused(problem.to_response());
                    }
                    *slot = None;
                }
                None => {
                    pending = i + 1;
                    break;
                }
            }
        }
        if pending == 0 {
            return ResponseFuture::pass(self.inner.call(req));
        }

        // Slow path: a remote backend; ask it for every bucket not yet charged.
        let config = self.config.clone();
        // The clone is the not-yet-ready one; keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut: Deferred<ResBody, S::Error> = Box::pin(async move {
            for bucket in buckets.iter().flatten() {
                let result = config.limiter.check(&bucket.key, &bucket.quota, 1).await;
                if let Verdict::Refuse(problem) = verdict(&config, bucket, result) {
                    return Ok(GuardRefusal::response(&problem));
                }
            }
            inner.call(req).await.map(|r| r.map(ResponseBody::new))
        });
        ResponseFuture::deferred(fut)
    }
}

/// The response future of [`RateLimit`].
pub type ResponseFuture<F, B, E> = GuardFuture<F, B, E>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use http::StatusCode;
    use http_body_util::Empty;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::TenantId;
    use crate::clock::ManualClock;
    use crate::rate_limit::{Limit, RateLimitLayer};
    use crate::state::{RateDecision, RateLimiter, SharedState};

    fn ok_service() -> impl tower::Service<
        Request<()>,
        Response = Response<Empty<bytes::Bytes>>,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        service_fn(|_req: Request<()>| async { Ok(Response::new(Empty::new())) })
    }

    fn request(ip: &str, principal: Option<Principal>) -> Request<()> {
        let mut req = Request::new(());
        let ctx = RequestContext::new(
            crate::context::RequestIdGenerator::new().next_id(),
            ip.parse().unwrap(),
            jiff::Timestamp::now(),
        );
        req.extensions_mut().insert(ctx);
        if let Some(p) = principal {
            req.extensions_mut().insert(p);
        }
        req
    }

    #[tokio::test]
    async fn each_ip_has_its_own_bucket() {
        let clock = Arc::new(ManualClock::starting_now());
        let state = SharedState::memory(clock.clone());
        let layer = RateLimitLayer::new(
            state.rate.clone(),
            Limit::PerIp(RateQuota::per_minute(1).unwrap()),
        );
        let svc = layer.layer(ok_service());
        assert_eq!(
            svc.clone()
                .oneshot(request("192.0.2.1", None))
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let refused = svc
            .clone()
            .oneshot(request("192.0.2.1", None))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "60");
        assert_eq!(
            svc.clone()
                .oneshot(request("192.0.2.2", None))
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            svc.oneshot(request("192.0.2.1", None))
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn user_and_tenant_buckets_follow_the_principal() {
        let state = SharedState::memory(Arc::new(ManualClock::starting_now()));
        let layer = RateLimitLayer::new(
            state.rate.clone(),
            Limit::PerUser(RateQuota::per_minute(2).unwrap()),
        )
        .per_tenant(RateQuota::per_minute(3).unwrap());
        let svc = layer.layer(ok_service());
        let acme = TenantId::new("acme").unwrap();
        let alice = Principal::builder("alice").tenant(acme.clone()).build();
        let bob = Principal::builder("bob").tenant(acme).build();
        let mut statuses = Vec::new();
        for p in [&alice, &alice, &alice, &bob, &bob] {
            statuses.push(
                svc.clone()
                    .oneshot(request("192.0.2.1", Some(p.clone())))
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        // alice's third hits her user limit; bob's second hits the tenant's 3.
        assert_eq!(statuses, [200, 200, 429, 200, 429]);
        // Anonymous requests are not charged to any user or tenant.
        assert_eq!(
            svc.oneshot(request("192.0.2.1", None))
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }

    async fn status<S>(svc: &S, ip: &str) -> u16
    where
        S: tower::Service<Request<()>, Response = Response<ResponseBody<Empty<bytes::Bytes>>>>
            + Clone,
        S::Error: std::fmt::Debug,
    {
        svc.clone()
            .oneshot(request(ip, None))
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn ipv6_clients_share_a_bucket_per_prefix() {
        let state = SharedState::memory(Arc::new(ManualClock::starting_now()));
        let quota = RateQuota::per_minute(1).unwrap();
        let default =
            RateLimitLayer::new(state.rate.clone(), Limit::PerIp(quota)).layer(ok_service());
        assert_eq!(status(&default, "2001:db8:1:2::1").await, 200);
        // Another address of the same /64: the same client.
        assert_eq!(status(&default, "2001:db8:1:2:ffff::9").await, 429);
        assert_eq!(status(&default, "2001:db8:1:3::1").await, 200);

        let coarse = RateLimitLayer::new(state.rate.clone(), Limit::PerIp(quota))
            .ip_prefixes(crate::context::IpPrefixes::new(24, 48).unwrap())
            .layer(ok_service());
        assert_eq!(status(&coarse, "198.51.100.1").await, 200);
        assert_eq!(status(&coarse, "198.51.100.2").await, 429);
        assert_eq!(status(&coarse, "2001:db8:5:1::1").await, 200);
        assert_eq!(status(&coarse, "2001:db8:5:2::1").await, 429);
    }

    #[tokio::test]
    async fn deferred_buckets_answer_like_the_layer_and_stay_unboxed_in_memory() {
        use crate::admission::AdmitLayer;
        use tower::Service;
        let state = SharedState::memory(Arc::new(ManualClock::starting_now()));
        let quota = RateQuota::per_minute(1).unwrap();
        let standalone =
            RateLimitLayer::new(state.rate.clone(), Limit::PerUser(quota)).layer(ok_service());
        let ok = service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Empty::<bytes::Bytes>::new()))
        });
        let mut deferred = RateLimitLayer::new(state.rate.clone(), Limit::PerUser(quota))
            .per_tenant(RateQuota::per_minute(5).unwrap())
            .deferred()
            .layer(AdmitLayer::new(state.clone()).layer(ok));
        let acme = TenantId::new("acme").unwrap();
        let alice = Principal::builder("alice").tenant(acme.clone()).build();
        let bob = Principal::builder("bob").tenant(acme).build();

        let first = deferred.call(request("192.0.2.1", Some(alice.clone())));
        assert!(first.is_pass(), "the memory backend admits in process");
        assert_eq!(first.await.unwrap().status(), StatusCode::OK);
        let refused = deferred
            .call(request("192.0.2.1", Some(alice.clone())))
            .await
            .unwrap();
        // The same answer as the layer charging the bucket itself.
        standalone
            .clone()
            .oneshot(request("192.0.2.1", Some(bob.clone())))
            .await
            .unwrap();
        let alone = standalone
            .oneshot(request("192.0.2.1", Some(bob)))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.headers()["retry-after"],
            alone.headers()["retry-after"]
        );
        assert!(GuardRefusal::is_marked(&refused));
        use http_body_util::BodyExt;
        let (a, b) = (
            refused.into_body().collect().await.unwrap().to_bytes(),
            alone.into_body().collect().await.unwrap().to_bytes(),
        );
        assert_eq!(a, b);
    }

    #[tokio::test]
    async fn deferred_buckets_follow_the_fail_mode_on_a_backend_without_admit() {
        use crate::admission::AdmitLayer;
        let clock = Arc::new(ManualClock::starting_now());
        let memory = Arc::new(crate::state::MemoryState::new(clock.clone()));
        // No `Admit` of its own: the plan runs step by step, on a limiter that is down.
        let mut state = SharedState::from_backend(memory, clock, "test");
        state.rate = Arc::new(Down);
        let quota = RateQuota::per_minute(1).unwrap();
        let alice = Principal::builder("alice").build();
        for (mode, expected) in [
            (FailMode::Open, StatusCode::OK),
            (FailMode::Closed, StatusCode::SERVICE_UNAVAILABLE),
        ] {
            let svc = RateLimitLayer::new(state.rate.clone(), Limit::PerUser(quota))
                .fail_mode(mode)
                .deferred()
                .layer(AdmitLayer::new(state.clone()).layer(ok_service()));
            let status = svc
                .oneshot(request("192.0.2.1", Some(alice.clone())))
                .await
                .unwrap()
                .status();
            assert_eq!(status, expected, "{mode:?}");
        }
    }

    #[derive(Debug)]
    struct Down;
    #[async_trait]
    impl RateLimiter for Down {
        async fn check(
            &self,
            _: &StateKey,
            _: &RateQuota,
            _: u32,
        ) -> Result<RateDecision, StateError> {
            Err(StateError::Unavailable("connection refused".into()))
        }
    }

    #[tokio::test]
    async fn backend_failure_follows_the_fail_mode() {
        let quota = RateQuota::per_minute(1).unwrap();
        let open = RateLimitLayer::new(Arc::new(Down), Limit::PerIp(quota)).layer(ok_service());
        assert_eq!(
            open.oneshot(request("192.0.2.1", None))
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let closed = RateLimitLayer::new(Arc::new(Down), Limit::PerIp(quota))
            .fail_mode(FailMode::Closed)
            .layer(ok_service());
        assert_eq!(
            closed
                .oneshot(request("192.0.2.1", None))
                .await
                .unwrap()
                .status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
