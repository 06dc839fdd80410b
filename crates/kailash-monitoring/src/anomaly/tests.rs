use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kailash_core::audit::{AuditDecision, AuditEvent, MemoryAuditSink};
use kailash_core::clock::ManualClock;
use kailash_core::state::SharedState;

use super::*;
use crate::signal::{SignalSource, SignalValue, Signals};

const GEO: &str = "\
192.0.2.0/24     NL 52.37 4.90
198.51.100.0/24  NL 52.09 5.12
203.0.113.0/24   JP 35.68 139.69
2001:db8::/32    DE
2001:db9::/32    FR
";

struct Fixture {
    clock: Arc<ManualClock>,
    detector: AnomalyDetector,
    trail: Arc<MemoryAuditSink>,
}

fn fixture(config: AnomalyConfig) -> Fixture {
    let start: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let state = SharedState::memory(clock.clone());
    let trail = Arc::new(MemoryAuditSink::new());
    let detector = AnomalyDetector::builder(config, state)
        .geo(Arc::new(CidrGeoFile::parse(GEO).unwrap()))
        .audit(trail.clone())
        .build()
        .unwrap();
    Fixture {
        clock,
        detector,
        trail,
    }
}

impl Fixture {
    fn obs(&self, input: Input, actor: &str, ip: &str) -> Observation {
        Observation {
            input,
            actor: Some(actor.to_owned()),
            tenant: None,
            client_ip: Some(ip.parse().unwrap()),
            time: self.clock.now(),
        }
    }

    async fn judge(&self, input: Input, actor: &str, ip: &str) -> Vec<Anomaly> {
        self.detector
            .judge(self.obs(input, actor, ip))
            .await
            .unwrap()
    }

    fn signal(&self, name: &str) -> f64 {
        let mut out = Signals::default();
        self.detector.signals().collect(&mut out);
        match out.get(name) {
            Some(SignalValue::Number(n)) => n,
            other => panic!("{name}: {other:?}"),
        }
    }
}

use kailash_core::clock::Clock as _;

#[tokio::test]
async fn a_burst_is_measured_against_the_baseline_and_signalled_once_per_window() {
    let f = fixture(AnomalyConfig {
        min_count: 3,
        threshold_sigma: 2.0,
        alpha: 0.5,
        ..AnomalyConfig::default()
    });
    // 2 and 4 failures per window in turn become the norm (the first
    // windows, against a baseline of nothing, are bursts).
    for round in 0..20 {
        for i in 0..(if round % 2 == 0 { 2 } else { 4 }) {
            f.judge(Input::LoginFailures, &format!("u{i}"), "192.0.2.1")
                .await;
        }
        f.clock.advance(Duration::from_secs(60));
    }
    let learning = f.trail.events().len();
    // The baseline learnt 3.3 ± 0.9: 5 is not above it (3.3 + 2σ)…
    let mut found = Vec::new();
    for i in 0..5 {
        found.extend(
            f.judge(Input::LoginFailures, &format!("v{i}"), "192.0.2.1")
                .await,
        );
    }
    assert!(found.is_empty(), "{found:?}");
    // … 6 is, signalled once for the IP (users differ: no user burst).
    for i in 5..20 {
        found.extend(
            f.judge(Input::LoginFailures, &format!("v{i}"), "192.0.2.1")
                .await,
        );
    }
    assert_eq!(found.len(), 1, "{found:?}");
    let a = &found[0];
    assert_eq!(a.kind, AnomalyKind::Burst);
    assert_eq!(a.input, Input::LoginFailures);
    assert_eq!(a.reason, "burst: login_failures per ip 6 > baseline 5.2");
    let events = f.trail.events()[learning..].to_vec();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, AUDIT_ACTION);
    assert_eq!(events[0].severity, AuditSeverity::Warning);
    assert_eq!(events[0].resource.as_deref(), Some("burst:login_failures"));
    assert_eq!(events[0].client_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(f.signal("security_anomalies"), 1.0);
    assert_eq!(f.signal("security_anomalies_burst"), 1.0);
    assert_eq!(f.signal("security_anomalies_new_country"), 0.0);
    // Two windows later the signal has resolved.
    f.clock.advance(Duration::from_secs(120));
    assert_eq!(f.signal("security_anomalies"), 0.0);
}

#[tokio::test]
async fn a_first_burst_is_measured_against_min_count_and_per_user_in_its_tenant() {
    let f = fixture(AnomalyConfig {
        min_count: 5,
        ..AnomalyConfig::default()
    });
    let acme = TenantId::new("acme").unwrap();
    let mut found = Vec::new();
    for i in 0..6 {
        let mut o = f.obs(Input::AccessDenials, "alice", &format!("192.0.2.{i}"));
        o.tenant = Some(acme.clone());
        found.extend(f.detector.judge(o).await.unwrap());
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].reason,
        "burst: access_denials per user 6 > baseline 5.0"
    );
    assert_eq!(found[0].tenant.as_ref(), Some(&acme));
    // Another tenant's alice is another user.
    let mut o = f.obs(Input::AccessDenials, "alice", "192.0.2.1");
    o.tenant = Some(TenantId::new("globex").unwrap());
    assert!(f.detector.judge(o).await.unwrap().is_empty());
}

#[tokio::test]
async fn quiet_windows_decay_the_baseline() {
    let f2 = fixture(AnomalyConfig {
        min_count: 2,
        alpha: 0.5,
        threshold_sigma: 3.0,
        ..AnomalyConfig::default()
    });
    // Learning a level of 10 per window (the first windows are bursts).
    for _ in 0..8 {
        for _ in 0..10 {
            f2.judge(Input::LoginFailures, "bob", "192.0.2.1").await;
        }
        f2.clock.advance(Duration::from_secs(60));
    }
    // After 8 windows of 10 the norm is 10 ± 0.6: 10 is no burst.
    let mut found = Vec::new();
    for _ in 0..10 {
        found.extend(f2.judge(Input::LoginFailures, "bob", "192.0.2.1").await);
    }
    assert!(found.is_empty(), "{found:?}");
    // After a long quiet the norm is back to min_count: 3 is a burst.
    f2.clock.advance(Duration::from_secs(60 * 30));
    for _ in 0..3 {
        found.extend(f2.judge(Input::LoginFailures, "bob", "192.0.2.1").await);
    }
    assert_eq!(found.len(), 2, "{found:?}");
}

#[tokio::test]
async fn new_networks_and_countries_after_the_first_login() {
    let f = fixture(AnomalyConfig::default());
    // The first login only learns.
    assert!(
        f.judge(Input::Logins, "alice", "192.0.2.10")
            .await
            .is_empty()
    );
    assert!(
        f.judge(Input::Logins, "alice", "192.0.2.99")
            .await
            .is_empty()
    );
    f.clock.advance(Duration::from_secs(3 * 3600));
    // Another /24 in the same country.
    let found = f.judge(Input::Logins, "alice", "198.51.100.7").await;
    assert_eq!(
        found.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [AnomalyKind::NewNetwork]
    );
    assert_eq!(
        found[0].reason,
        "new_network: first login from this /24 network"
    );
    f.clock.advance(Duration::from_secs(24 * 3600));
    // Another country, a day later: not travel.
    let found = f.judge(Input::Logins, "alice", "203.0.113.5").await;
    assert_eq!(
        found.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [AnomalyKind::NewNetwork, AnomalyKind::NewCountry]
    );
    assert_eq!(found[1].reason, "new_country: first login from JP");
    // IPv6 by /48; an unknown country only a new network.
    f.clock.advance(Duration::from_secs(24 * 3600));
    let found = f.judge(Input::Logins, "alice", "2001:db8:1:2::1").await;
    assert_eq!(found.len(), 2, "{found:?}");
    f.clock.advance(Duration::from_secs(24 * 3600));
    assert!(
        f.judge(Input::Logins, "alice", "2001:db8:1:3::1")
            .await
            .is_empty()
    );
    f.clock.advance(Duration::from_secs(24 * 3600));
    let found = f.judge(Input::Logins, "alice", "2001:dba::1").await;
    assert_eq!(
        found[0].reason,
        "new_network: first login from this /48 network"
    );
    assert_eq!(found.len(), 1);
}

#[tokio::test]
async fn impossible_travel_by_coordinates_and_by_country() {
    let f = fixture(AnomalyConfig::default());
    f.judge(Input::Logins, "alice", "192.0.2.1").await;
    f.judge(Input::Logins, "alice", "203.0.113.1").await; // learns JP too
    f.clock.advance(Duration::from_secs(24 * 3600));
    assert!(
        f.judge(Input::Logins, "alice", "192.0.2.1")
            .await
            .is_empty()
    );
    // Amsterdam to Tokyo in an hour.
    f.clock.advance(Duration::from_secs(3600));
    let found = f.judge(Input::Logins, "alice", "203.0.113.1").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, AnomalyKind::ImpossibleTravel);
    assert!(
        found[0]
            .reason
            .starts_with("impossible_travel: NL to JP, 9")
            && found[0].reason.ends_with("km in 3600 s (> 1000 km/h)"),
        "{}",
        found[0].reason
    );
    // Amsterdam to Utrecht (35 km) at once: within the tolerance.
    f.clock.advance(Duration::from_secs(24 * 3600));
    f.judge(Input::Logins, "alice", "192.0.2.1").await;
    f.clock.advance(Duration::from_secs(60));
    let found = f.judge(Input::Logins, "alice", "198.51.100.1").await;
    assert!(
        found
            .iter()
            .all(|a| a.kind != AnomalyKind::ImpossibleTravel)
    );
    // Countries without coordinates: DE then FR within the hour.
    let g = fixture(AnomalyConfig::default());
    g.judge(Input::Logins, "bob", "2001:db8::1").await;
    g.judge(Input::Logins, "bob", "2001:db9::1").await;
    g.clock.advance(Duration::from_secs(2 * 3600));
    assert!(
        g.judge(Input::Logins, "bob", "2001:db8::1")
            .await
            .is_empty()
    );
    g.clock.advance(Duration::from_secs(59 * 60));
    let found = g.judge(Input::Logins, "bob", "2001:db9::1").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].reason,
        "impossible_travel: DE to FR in 3540 s (< 3600 s)"
    );
    assert_eq!(g.signal("security_anomalies_impossible_travel"), 1.0);
}

#[tokio::test]
async fn the_tee_queues_what_the_detector_judges_and_nothing_loops() {
    let f = fixture(AnomalyConfig {
        min_count: 1,
        ..AnomalyConfig::default()
    });
    let tee = f.detector.audit_sink(f.trail.clone());
    f.detector.start();
    assert!(!f.detector.start());
    let mut failure = AuditEvent::new("auth.login", AuditDecision::Failure)
        .actor("x")
        .at(f.clock.now());
    failure.client_ip = Some("192.0.2.1".parse().unwrap());
    for _ in 0..2 {
        tee.record(failure.clone()).await.unwrap();
    }
    tee.record(AuditEvent::new("access.check", AuditDecision::Allow))
        .await
        .unwrap();
    // Per IP and per user, once each, after the two failures.
    for _ in 0..500 {
        if f.trail.events().len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let events = f.trail.events();
    let anomalies: Vec<_> = events.iter().filter(|e| e.action == AUDIT_ACTION).collect();
    assert_eq!(anomalies.len(), 2, "{events:?}");
    assert_eq!(events.len(), 5);
    // An anomaly event written through the tee is not judged.
    assert_eq!(Observation::from_audit(anomalies[0]), None);
}

#[test]
fn bad_settings_name_the_field() {
    for (config, key) in [
        (
            AnomalyConfig {
                alpha: 0.0,
                ..AnomalyConfig::default()
            },
            "alpha",
        ),
        (
            AnomalyConfig {
                alpha: f64::NAN,
                ..AnomalyConfig::default()
            },
            "alpha",
        ),
        (
            AnomalyConfig {
                window: Duration::ZERO,
                ..AnomalyConfig::default()
            },
            "window",
        ),
        (
            AnomalyConfig {
                threshold_sigma: -1.0,
                ..AnomalyConfig::default()
            },
            "threshold_sigma",
        ),
        (
            AnomalyConfig {
                min_count: 0,
                ..AnomalyConfig::default()
            },
            "min_count",
        ),
        (
            AnomalyConfig {
                max_travel_kmh: 0.0,
                ..AnomalyConfig::default()
            },
            "max_travel_kmh",
        ),
        (
            AnomalyConfig {
                max_known_networks: 0,
                ..AnomalyConfig::default()
            },
            "max_known_networks",
        ),
    ] {
        assert_eq!(config.validate().unwrap_err().0, key);
    }
    assert!(AnomalyConfig::default().validate().is_ok());
    assert_eq!(
        AnomalyConfig {
            alpha: 1.0,
            ..AnomalyConfig::default()
        }
        .horizon(),
        2
    );
    assert_eq!(AnomalyConfig::default().horizon(), 13);
}

#[test]
fn starting_outside_a_runtime_refuses_instead_of_panicking() {
    let f = fixture(AnomalyConfig::default());
    assert!(!f.detector.start());
    // Inside one it starts, once.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(f.detector.start());
        assert!(!f.detector.start());
    });
}

#[tokio::test]
async fn the_request_layer_counts_per_address_and_per_principal() {
    use tower::{Layer as _, ServiceExt as _};
    let f = fixture(AnomalyConfig {
        min_requests: 2,
        ..AnomalyConfig::default()
    });
    f.detector.start();
    let service =
        f.detector
            .request_layer()
            .layer(tower::service_fn(|_req: http::Request<()>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(()))
            }));
    let acme = TenantId::new("acme").unwrap();
    for _ in 0..3 {
        let mut req = http::Request::new(());
        let id = kailash_core::context::RequestId::parse(&http::HeaderValue::from_static("r-1"))
            .unwrap();
        req.extensions_mut()
            .insert(kailash_core::context::RequestContext::new(
                id,
                "192.0.2.9".parse().unwrap(),
                f.clock.now(),
            ));
        req.extensions_mut().insert(
            kailash_core::Principal::builder("bob")
                .tenant(acme.clone())
                .build(),
        );
        service.clone().oneshot(req).await.unwrap();
    }
    for _ in 0..500 {
        if f.trail.events().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut reasons: Vec<_> = f
        .trail
        .events()
        .iter()
        .map(|e| (e.reason.clone().unwrap().into_owned(), e.tenant.clone()))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (
                "burst: requests per ip 3 > baseline 2.0".to_owned(),
                Some(acme.clone())
            ),
            (
                "burst: requests per user 3 > baseline 2.0".to_owned(),
                Some(acme)
            ),
        ]
    );
}

#[tokio::test]
async fn a_login_from_an_unknown_place_keeps_the_last_located_one() {
    let f = fixture(AnomalyConfig::default());
    f.judge(Input::Logins, "alice", "192.0.2.1").await;
    f.judge(Input::Logins, "alice", "203.0.113.1").await;
    f.clock.advance(Duration::from_secs(24 * 3600));
    f.judge(Input::Logins, "alice", "192.0.2.1").await;
    // Unknown to the resolver: a new network, no travel judged …
    let found = f.judge(Input::Logins, "alice", "10.9.9.9").await;
    assert_eq!(
        found.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [AnomalyKind::NewNetwork]
    );
    // … and Tokyo is still compared with Amsterdam, minutes ago.
    f.clock.advance(Duration::from_secs(600));
    let found = f.judge(Input::Logins, "alice", "203.0.113.1").await;
    assert_eq!(
        found.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [AnomalyKind::ImpossibleTravel]
    );
}
