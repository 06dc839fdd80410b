//! End-to-end tests of the realtime endpoint: a real WebSocket client
//! (tokio-tungstenite) against an axum server on 127.0.0.1:0, real JWT
//! verification and a real session store (kailash-auth), real access
//! decisions (kailash-access), the memory state backend — and Redis when
//! `KAILASH_TEST_REDIS_URL` is set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use kailash_access::spec::AccessSpec;
use kailash_access::{AccessControl, AccessPolicy};
use kailash_auth::jwt::{Claims, KeySet, SigningKey, TokenType, Verifier};
use kailash_auth::layer::JwtAuthLayer;
use kailash_auth::session::{SessionConfig, SessionStore};
use kailash_core::TenantId;
use kailash_core::clock::{Clock, ManualClock};
use kailash_core::state::{LogId, SharedState};
use kailash_realtime::channel::ChannelRule;
use kailash_realtime::close::CloseReason;
use kailash_realtime::event::{Classification, Event};
use kailash_realtime::{Hub, RealtimeConfig};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const ISS: &str = "https://id.example";
const AUD: &str = "api";
const COOKIE: &str = "kailash_at";
/// The longest any single wait in these tests may take before it counts as
/// a hang; real waits are far shorter.
const PATIENCE: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct App {
    addr: SocketAddr,
    hub: Hub,
    clock: Arc<ManualClock>,
    keys: Arc<KeySet>,
    sessions: SessionStore,
}

fn access_spec() -> AccessSpec {
    serde_json::from_value(json!({
        "roles": [
            { "name": "viewer", "permissions": ["report:view"] },
            { "name": "admin", "permissions": ["report:view", "audit:view"] }
        ]
    }))
    .unwrap()
}

fn base_config() -> RealtimeConfig {
    RealtimeConfig {
        channels: vec![
            ChannelRule::new("reports.*", Some("report:view")).unwrap(),
            ChannelRule::new("audit", Some("audit:view")).unwrap(),
            ChannelRule::new("news", None).unwrap(),
        ],
        ..RealtimeConfig::default()
    }
}

/// An instance on `state` (whose clock must be `clock`).
async fn instance(state: SharedState, clock: Arc<ManualClock>, config: RealtimeConfig) -> App {
    let keys = Arc::new(KeySet::new(
        SigningKey::hs256("k1", &[7; 32]).unwrap(),
        clock.clone(),
    ));
    instance_with_keys(state, clock, keys, config).await
}

async fn instance_with_keys(
    state: SharedState,
    clock: Arc<ManualClock>,
    keys: Arc<KeySet>,
    config: RealtimeConfig,
) -> App {
    instance_with(state, clock, keys, config, |hub| hub).await
}

/// [`instance_with_keys`] whose hub `extra` may add to.
async fn instance_with(
    state: SharedState,
    clock: Arc<ManualClock>,
    keys: Arc<KeySet>,
    config: RealtimeConfig,
    extra: impl FnOnce(kailash_realtime::HubBuilder) -> kailash_realtime::HubBuilder,
) -> App {
    let verifier = Verifier::builder(keys.clone(), ISS, AUD)
        .clock(clock.clone())
        .build();
    let sessions = SessionStore::new(
        state.clone(),
        SessionConfig {
            concurrent_limit: 100,
            ..SessionConfig::default()
        },
    );
    let auth = JwtAuthLayer::new(verifier)
        .cookie(COOKIE)
        .session_check(Arc::new(sessions.clone()));
    let access = AccessControl::new(AccessPolicy::load(&access_spec()).await.unwrap());
    let hub = extra(Hub::builder(state, auth, config).access(access))
        .build()
        .unwrap();
    let router: axum::Router = kailash_realtime::router(&hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    App {
        addr,
        hub,
        clock,
        keys,
        sessions,
    }
}

async fn app(config: RealtimeConfig) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    instance(SharedState::memory(clock.clone()), clock, config).await
}

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn globex() -> TenantId {
    TenantId::new("globex").unwrap()
}

/// Who a token is for.
#[derive(Clone)]
struct Who {
    user: &'static str,
    tenant: TenantId,
    role: &'static str,
    clearance: &'static str,
    lifetime: i64,
}

fn who(user: &'static str, tenant: TenantId) -> Who {
    Who {
        user,
        tenant,
        role: "viewer",
        clearance: "internal",
        lifetime: 300,
    }
}

impl App {
    /// A live session for `w` and an access token bound to it.
    async fn login(&self, w: &Who) -> (String, String) {
        let session = self
            .sessions
            .create(w.user, Some(&w.tenant), None)
            .await
            .unwrap()
            .session;
        (self.token(w, &session.id), session.id)
    }

    fn token(&self, w: &Who, sid: &str) -> String {
        let now = self.clock.now().as_second();
        let mut claims = Claims::new(ISS, w.user, AUD, now, now + w.lifetime);
        claims.tid = Some(w.tenant.clone());
        claims.roles = vec![w.role.to_owned()];
        claims.attrs.insert("clearance".into(), w.clearance.into());
        claims.sid = Some(sid.to_owned());
        self.keys.issue(&claims, TokenType::Access).unwrap()
    }

    fn request(&self, headers: &[(&'static str, String)]) -> http::Request<()> {
        let mut req = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        for (k, v) in headers {
            req.headers_mut()
                .append(*k, HeaderValue::from_str(v).unwrap());
        }
        req
    }

    async fn connect_with(
        &self,
        headers: &[(&'static str, String)],
    ) -> Result<(Ws, http::Response<Option<Vec<u8>>>), tungstenite::Error> {
        tokio_tungstenite::connect_async(self.request(headers)).await
    }

    /// A welcomed connection of `w`; returns it, its welcome and its session.
    async fn connect(&self, w: &Who) -> (Ws, Value, String) {
        let (token, sid) = self.login(w).await;
        let (mut ws, _) = self
            .connect_with(&[("authorization", format!("Bearer {token}"))])
            .await
            .unwrap();
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (ws, welcome, sid)
    }
}

/// The next text frame as JSON (pings are skipped).
async fn next_json(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a readable frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame; its code and reason.
async fn closed(ws: &mut Ws) -> (u16, String) {
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a close in time");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error before the close frame: {e}"),
        }
    }
}

async fn send_json(ws: &mut Ws, value: Value) {
    use futures_util::SinkExt;
    ws.send(Message::text(value.to_string())).await.unwrap();
}

fn event(tenant: TenantId, name: &str) -> Event {
    Event::new(tenant, "news", name).unwrap()
}

/// Sends a public marker event to `tenant`'s connections; the next event a
/// connection sees after something it must not see is this one.
async fn marker(hub: &Hub, tenant: TenantId) -> String {
    hub.send_to_tenant(&event(tenant, "marker")).await.unwrap();
    "marker".to_owned()
}

mod credentials {
    use super::*;

    #[tokio::test]
    async fn bearer_header_gets_a_welcome_of_the_right_shape() {
        let app = app(base_config()).await;
        let (_ws, welcome, _) = app.connect(&who("alice", acme())).await;
        let id = welcome["connection_id"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(welcome["user_id"], "alice");
        assert_eq!(welcome["tenant_id"], "acme");
        assert_eq!(welcome.as_object().unwrap().len(), 4);
        assert_eq!(app.hub.stats().open, 1);
    }

    #[tokio::test]
    async fn subprotocol_pair_selects_kailash_v1_and_never_echoes_the_token() {
        let app = app(base_config()).await;
        let (token, _) = app.login(&who("alice", acme())).await;
        let offered = format!("kailash.v1, kailash.bearer.{token}");
        let (mut ws, response) = app
            .connect_with(&[("sec-websocket-protocol", offered)])
            .await
            .unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], "kailash.v1");
        assert_eq!(next_json(&mut ws).await["user_id"], "alice");
    }

    #[tokio::test]
    async fn the_session_cookie_is_a_credential() {
        let app = app(base_config()).await;
        let (token, _) = app.login(&who("alice", acme())).await;
        let (mut ws, _) = app
            .connect_with(&[("cookie", format!("{COOKIE}={token}"))])
            .await
            .unwrap();
        assert_eq!(next_json(&mut ws).await["type"], "welcome");
    }

    #[tokio::test]
    async fn every_credential_failure_closes_with_4001() {
        let app = app(base_config()).await;
        let (token, sid) = app.login(&who("alice", acme())).await;
        let cases: Vec<(&str, Vec<(&'static str, String)>)> = vec![
            ("missing", vec![]),
            (
                "garbage",
                vec![("authorization", "Bearer not.a.token".into())],
            ),
            ("basic scheme", vec![("authorization", "Basic YTpi".into())]),
            (
                "header and subprotocol",
                vec![
                    ("authorization", format!("Bearer {token}")),
                    (
                        "sec-websocket-protocol",
                        format!("kailash.v1, kailash.bearer.{token}"),
                    ),
                ],
            ),
            (
                "header and cookie",
                vec![
                    ("authorization", format!("Bearer {token}")),
                    ("cookie", format!("{COOKIE}={token}")),
                ],
            ),
        ];
        for (name, headers) in cases {
            let (mut ws, _) = app.connect_with(&headers).await.unwrap();
            assert_eq!(
                closed(&mut ws).await,
                (4001, "Invalid token".into()),
                "{name}"
            );
        }
        // A token in the URL is no credential.
        let mut req = format!("ws://{}/ws?access_token={token}", app.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().remove("authorization");
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(closed(&mut ws).await, (4001, "Invalid token".into()));
        // An expired token.
        let mut old = who("alice", acme());
        old.lifetime = -120;
        let expired = app.token(&old, &sid);
        let (mut ws, _) = app
            .connect_with(&[("authorization", format!("Bearer {expired}"))])
            .await
            .unwrap();
        assert_eq!(closed(&mut ws).await, (4001, "Invalid token".into()));
        // A revoked session: the token still verifies.
        app.sessions
            .revoke(Some(&acme()), "alice", &sid)
            .await
            .unwrap();
        let (mut ws, _) = app
            .connect_with(&[("authorization", format!("Bearer {token}"))])
            .await
            .unwrap();
        assert_eq!(closed(&mut ws).await, (4001, "Invalid session".into()));
        let stats = app.hub.stats();
        assert_eq!(stats.closes(CloseReason::InvalidToken), 7);
        assert_eq!(stats.closes(CloseReason::InvalidSession), 1);
        assert_eq!(stats.open, 0);
    }

    #[tokio::test]
    async fn a_principal_without_a_tenant_is_closed_with_4003() {
        let app = app(base_config()).await;
        let session = app
            .sessions
            .create("loner", None, None)
            .await
            .unwrap()
            .session;
        let now = app.clock.now().as_second();
        let mut claims = Claims::new(ISS, "loner", AUD, now, now + 300);
        claims.sid = Some(session.id);
        let token = app.keys.issue(&claims, TokenType::Access).unwrap();
        let (mut ws, _) = app
            .connect_with(&[("authorization", format!("Bearer {token}"))])
            .await
            .unwrap();
        assert_eq!(closed(&mut ws).await, (4003, "Tenant required".into()));
    }

    #[tokio::test]
    async fn close_all_says_going_away() {
        let app = app(base_config()).await;
        let (mut a, ..) = app.connect(&who("alice", acme())).await;
        let (mut c, ..) = app.connect(&who("carol", globex())).await;
        app.hub.close_all();
        assert_eq!(closed(&mut a).await, (1001, "Going away".into()));
        assert_eq!(closed(&mut c).await.0, 1001);
        assert_eq!(app.hub.stats().closes(CloseReason::GoingAway), 2);
    }

    #[tokio::test]
    async fn a_foreign_origin_is_refused_before_the_upgrade() {
        let config = RealtimeConfig {
            origins: Some(vec!["https://app.example".into()]),
            ..base_config()
        };
        let app = app(config).await;
        let (token, _) = app.login(&who("alice", acme())).await;
        let bearer = ("authorization", format!("Bearer {token}"));
        match app
            .connect_with(&[bearer.clone(), ("origin", "https://evil.example".into())])
            .await
        {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403);
                assert_eq!(
                    response.headers()["content-type"],
                    "application/problem+json"
                );
            }
            other => panic!("expected 403, got {other:?}"),
        }
        let (mut ws, _) = app
            .connect_with(&[bearer, ("origin", "https://app.example".into())])
            .await
            .unwrap();
        assert_eq!(next_json(&mut ws).await["type"], "welcome");
    }
}

mod caps {
    use super::*;

    #[tokio::test]
    async fn per_user_and_per_tenant_caps_close_with_4029() {
        let config = RealtimeConfig {
            max_connections_per_user: 2,
            max_connections_per_tenant: 3,
            ..base_config()
        };
        let app = app(config).await;
        let alice = who("alice", acme());
        let _a1 = app.connect(&alice).await;
        let _a2 = app.connect(&alice).await;
        let (token, _) = app.login(&alice).await;
        let (mut third, _) = app
            .connect_with(&[("authorization", format!("Bearer {token}"))])
            .await
            .unwrap();
        assert_eq!(
            closed(&mut third).await,
            (4029, "Too many connections".into())
        );
        let _b1 = app.connect(&who("bob", acme())).await;
        let (token, _) = app.login(&who("dave", acme())).await;
        let (mut fourth, _) = app
            .connect_with(&[("authorization", format!("Bearer {token}"))])
            .await
            .unwrap();
        assert_eq!(closed(&mut fourth).await.0, 4029);
        // Another tenant has its own cap.
        let _c = app.connect(&who("carol", globex())).await;
        assert_eq!(app.hub.stats().closes(CloseReason::TooManyConnections), 2);
        assert_eq!(app.hub.stats().open, 4);
    }
}

mod filters {
    use super::*;

    #[tokio::test]
    async fn events_never_cross_tenants() {
        let app = app(base_config()).await;
        let (mut alice, ..) = app.connect(&who("alice", acme())).await;
        let (mut carol, ..) = app.connect(&who("carol", globex())).await;
        app.hub
            .send_to_tenant(&event(acme(), "acme.only"))
            .await
            .unwrap();
        let got = next_json(&mut alice).await;
        assert_eq!(
            (got["event"].as_str(), got["tenant_id"].as_str()),
            (Some("acme.only"), Some("acme"))
        );
        marker(&app.hub, globex()).await;
        assert_eq!(next_json(&mut carol).await["event"], "marker");
    }

    #[tokio::test]
    async fn required_permission_is_decided_by_kailash_access() {
        let app = app(base_config()).await;
        let mut admin = who("root", acme());
        admin.role = "admin";
        let (mut root, ..) = app.connect(&admin).await;
        let (mut alice, ..) = app.connect(&who("alice", acme())).await;
        let audit = event(acme(), "audit.entry")
            .required_permission("audit:view")
            .unwrap();
        app.hub.send_to_tenant(&audit).await.unwrap();
        assert_eq!(next_json(&mut root).await["event"], "audit.entry");
        marker(&app.hub, acme()).await;
        assert_eq!(next_json(&mut alice).await["event"], "marker");
        assert_eq!(next_json(&mut root).await["event"], "marker");
        assert_eq!(app.hub.stats().filtered, 1);
    }

    #[tokio::test]
    async fn classification_is_checked_against_clearance() {
        let app = app(base_config()).await;
        let mut spy = who("spy", acme());
        spy.clearance = "secret";
        let (mut spy_ws, ..) = app.connect(&spy).await;
        let (mut alice, ..) = app.connect(&who("alice", acme())).await; // internal
        let mut nobody = who("nobody", acme());
        nobody.clearance = "cosmic"; // unknown: grants nothing above public
        let (mut nobody_ws, ..) = app.connect(&nobody).await;
        for (name, class) in [
            ("secret", Classification::Secret),
            ("internal", Classification::Internal),
        ] {
            let e = event(acme(), name).classification(class);
            app.hub.send_to_tenant(&e).await.unwrap();
        }
        marker(&app.hub, acme()).await;
        assert_eq!(next_json(&mut spy_ws).await["event"], "secret");
        assert_eq!(next_json(&mut spy_ws).await["event"], "internal");
        assert_eq!(next_json(&mut alice).await["event"], "internal");
        assert_eq!(next_json(&mut alice).await["event"], "marker");
        assert_eq!(next_json(&mut nobody_ws).await["event"], "marker");
    }

    #[tokio::test]
    async fn users_and_connections_can_be_addressed() {
        let app = app(base_config()).await;
        let (mut a1, w1, _) = app.connect(&who("alice", acme())).await;
        let (mut bob, ..) = app.connect(&who("bob", acme())).await;
        app.hub
            .send_to_user("alice", &event(acme(), "for.alice"))
            .await
            .unwrap();
        assert_eq!(next_json(&mut a1).await["event"], "for.alice");
        let id = w1["connection_id"].as_str().unwrap();
        app.hub
            .send_to_connection(id, &event(acme(), "for.a1"))
            .await
            .unwrap();
        assert_eq!(next_json(&mut a1).await["event"], "for.a1");
        // The same connection id addressed in another tenant reaches nobody.
        app.hub
            .send_to_connection(id, &event(globex(), "wrong.tenant"))
            .await
            .unwrap();
        marker(&app.hub, acme()).await;
        assert_eq!(next_json(&mut bob).await["event"], "marker");
        assert_eq!(next_json(&mut a1).await["event"], "marker");
    }
}

mod channels {
    use super::*;

    #[tokio::test]
    async fn subscriptions_are_checked_per_channel_pattern() {
        let app = app(base_config()).await;
        let (mut alice, ..) = app.connect(&who("alice", acme())).await;
        let (mut bob, ..) = app.connect(&who("bob", acme())).await;
        send_json(
            &mut alice,
            json!({"type":"subscribe","channel":"reports.daily"}),
        )
        .await;
        assert_eq!(
            next_json(&mut alice).await,
            json!({"type":"subscribed","channel":"reports.daily"})
        );
        for channel in ["audit", "secrets", "reports"] {
            send_json(&mut alice, json!({"type":"subscribe","channel":channel})).await;
            let err = next_json(&mut alice).await;
            assert_eq!(
                (err["type"].as_str(), err["code"].as_str()),
                (Some("error"), Some("forbidden")),
                "{channel}"
            );
        }
        let report = Event::new(acme(), "reports.daily", "report.ready").unwrap();
        app.hub.publish_to_channel(&report).await.unwrap();
        assert_eq!(next_json(&mut alice).await["channel"], "reports.daily");
        send_json(
            &mut alice,
            json!({"type":"unsubscribe","channel":"reports.daily"}),
        )
        .await;
        assert_eq!(next_json(&mut alice).await["type"], "unsubscribed");
        app.hub.publish_to_channel(&report).await.unwrap();
        marker(&app.hub, acme()).await;
        assert_eq!(next_json(&mut alice).await["event"], "marker");
        assert_eq!(next_json(&mut bob).await["event"], "marker");
    }

    #[tokio::test]
    async fn the_same_channel_or_user_name_in_another_tenant_gets_nothing() {
        let app = app(base_config()).await;
        let (mut alice_globex, ..) = app.connect(&who("alice", globex())).await;
        send_json(
            &mut alice_globex,
            json!({"type":"subscribe","channel":"news"}),
        )
        .await;
        assert_eq!(next_json(&mut alice_globex).await["type"], "subscribed");
        let (mut alice_acme, ..) = app.connect(&who("alice", acme())).await;
        send_json(
            &mut alice_acme,
            json!({"type":"subscribe","channel":"news"}),
        )
        .await;
        assert_eq!(next_json(&mut alice_acme).await["type"], "subscribed");
        app.hub
            .publish_to_channel(&event(acme(), "acme.news"))
            .await
            .unwrap();
        app.hub
            .send_to_user("alice", &event(acme(), "acme.alice"))
            .await
            .unwrap();
        assert_eq!(next_json(&mut alice_acme).await["event"], "acme.news");
        assert_eq!(next_json(&mut alice_acme).await["event"], "acme.alice");
        marker(&app.hub, globex()).await;
        assert_eq!(next_json(&mut alice_globex).await["event"], "marker");
    }

    #[tokio::test]
    async fn subscriptions_are_capped() {
        let config = RealtimeConfig {
            max_subscriptions: 1,
            ..base_config()
        };
        let app = app(config).await;
        let (mut alice, ..) = app.connect(&who("alice", acme())).await;
        send_json(&mut alice, json!({"type":"subscribe","channel":"news"})).await;
        assert_eq!(next_json(&mut alice).await["type"], "subscribed");
        send_json(
            &mut alice,
            json!({"type":"subscribe","channel":"reports.x"}),
        )
        .await;
        assert_eq!(
            next_json(&mut alice).await["code"],
            "too_many_subscriptions"
        );
    }
}

mod frames {
    use super::*;
    use futures_util::SinkExt;

    #[tokio::test]
    async fn bad_frames_get_error_frames_and_change_nothing() {
        let app = app(base_config()).await;
        let (mut ws, ..) = app.connect(&who("alice", acme())).await;
        let cases = [
            ("not json".to_owned(), "malformed_frame"),
            (
                r#"{"type":"subscribe","channel":"news","x":1}"#.to_owned(),
                "malformed_frame",
            ),
            (
                r#"{"type":"publish","channel":"news"}"#.to_owned(),
                "unknown_type",
            ),
            (
                r#"{"type":"subscribe","channel":"a b"}"#.to_owned(),
                "invalid_channel",
            ),
            (
                r#"{"type":"resume","since":"x"}"#.to_owned(),
                "invalid_since",
            ),
            (
                format!(r#"{{"type":"refresh","token":"{}"}}"#, "a".repeat(9000)),
                "frame_too_large",
            ),
        ];
        for (frame, code) in cases {
            ws.send(Message::text(frame)).await.unwrap();
            let err = next_json(&mut ws).await;
            assert_eq!(err["type"], "error");
            assert_eq!(err["code"], code);
            assert!(err["detail"].is_string());
        }
        ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
        assert_eq!(next_json(&mut ws).await["code"], "binary_not_supported");
        // Still served.
        marker(&app.hub, acme()).await;
        assert_eq!(next_json(&mut ws).await["event"], "marker");
    }

    #[tokio::test]
    async fn an_oversized_message_closes_with_1009() {
        let app = app(base_config()).await;
        let (mut ws, ..) = app.connect(&who("alice", acme())).await;
        ws.send(Message::text("x".repeat(20_000))).await.unwrap();
        assert_eq!(closed(&mut ws).await, (1009, "Message too big".into()));
        assert_eq!(app.hub.stats().closes(CloseReason::MessageTooBig), 1);
    }
}

mod lifecycle {
    use super::*;

    #[tokio::test]
    async fn refresh_accepts_the_same_user_only() {
        let app = app(base_config()).await;
        let alice = who("alice", acme());
        let (mut ws, _, sid) = app.connect(&alice).await;
        let fresh = app.token(&alice, &sid);
        send_json(&mut ws, json!({"type":"refresh","token":fresh})).await;
        let ok = next_json(&mut ws).await;
        assert_eq!(ok["type"], "refreshed");
        assert!(ok["expires_at"].is_i64());
        let (bobs, _) = app.login(&who("bob", acme())).await;
        send_json(&mut ws, json!({"type":"refresh","token":bobs})).await;
        assert_eq!(next_json(&mut ws).await["code"], "wrong_user");
        let (alice_elsewhere, _) = app.login(&who("alice", globex())).await;
        send_json(&mut ws, json!({"type":"refresh","token":alice_elsewhere})).await;
        assert_eq!(next_json(&mut ws).await["code"], "wrong_user");
        send_json(&mut ws, json!({"type":"refresh","token":"x.y.z"})).await;
        assert_eq!(next_json(&mut ws).await["code"], "invalid_token");
        // Unchanged: still alice of acme.
        app.hub
            .send_to_user("alice", &event(acme(), "still.alice"))
            .await
            .unwrap();
        assert_eq!(next_json(&mut ws).await["event"], "still.alice");
    }

    #[tokio::test]
    async fn token_expiry_closes_unless_refreshed() {
        let app = app(base_config()).await;
        let mut short = who("alice", acme());
        short.lifetime = 60;
        let (mut expiring, _, _) = app.connect(&short).await;
        let (mut refreshed, _, sid) = app.connect(&short).await;
        let mut long = short.clone();
        long.lifetime = 600;
        send_json(
            &mut refreshed,
            json!({"type":"refresh","token":app.token(&long, &sid)}),
        )
        .await;
        assert_eq!(next_json(&mut refreshed).await["type"], "refreshed");
        app.clock.advance(Duration::from_secs(120));
        assert_eq!(closed(&mut expiring).await, (4001, "Token expired".into()));
        marker(&app.hub, acme()).await;
        assert_eq!(next_json(&mut refreshed).await["event"], "marker");
        assert_eq!(app.hub.stats().closes(CloseReason::TokenExpired), 1);
    }

    #[tokio::test]
    async fn a_revocation_closes_the_sessions_sockets_within_a_second() {
        let app = app(base_config()).await;
        let alice = who("alice", acme());
        let (mut ws, _, sid) = app.connect(&alice).await;
        let (mut other, ..) = app.connect(&alice).await;
        let started = Instant::now();
        app.hub.revoke_session(&sid).await.unwrap();
        assert_eq!(closed(&mut ws).await, (4001, "Invalid session".into()));
        assert!(started.elapsed() < Duration::from_secs(1));
        // The user's other session is untouched.
        marker(&app.hub, acme()).await;
        assert_eq!(next_json(&mut other).await["event"], "marker");
        app.hub.revoke_user(&acme(), "alice").await.unwrap();
        assert_eq!(closed(&mut other).await.0, 4001);
    }

    #[tokio::test]
    async fn the_sweep_closes_a_revoked_session_without_any_message() {
        let app = app(base_config()).await;
        let (mut ws, _, sid) = app.connect(&who("alice", acme())).await;
        // Revoked in the store only: no bus message at all.
        app.sessions
            .revoke(Some(&acme()), "alice", &sid)
            .await
            .unwrap();
        let started = Instant::now();
        assert_eq!(closed(&mut ws).await, (4001, "Invalid session".into()));
        // One sweep interval, plus scheduling slack.
        assert!(started.elapsed() < Duration::from_millis(2500));
    }

    #[tokio::test]
    async fn an_open_socket_does_not_keep_its_session_from_idling_out() {
        // Pings and the token's lifetime are out of the way: only the
        // session's own idle timeout (1 h by default) can end it.
        let config = RealtimeConfig {
            heartbeat: kailash_core::spec::ConfigDuration(Duration::from_secs(7_200)),
            idle_timeout: kailash_core::spec::ConfigDuration(Duration::from_secs(10_800)),
            ..base_config()
        };
        let app = app(config).await;
        let alice = Who {
            lifetime: 86_400,
            ..who("alice", acme())
        };
        let (mut ws, _, sid) = app.connect(&alice).await;
        let opened = app
            .sessions
            .get(Some(&acme()), &sid)
            .await
            .unwrap()
            .unwrap();
        // Half an hour later the sweep re-checks the session (renewal due
        // for a request), but an open socket is not activity.
        app.clock.advance(Duration::from_secs(1_800));
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let seen = app
            .sessions
            .get(Some(&acme()), &sid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            seen.last_seen, opened.last_seen,
            "the sweep renewed the session"
        );
        // Past the idle timeout the sweep closes it.
        app.clock.advance(Duration::from_secs(1_860));
        assert_eq!(closed(&mut ws).await, (4001, "Invalid session".into()));
        assert!(
            app.sessions
                .get(Some(&acme()), &sid)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn heartbeats_keep_a_reading_client_and_idle_ones_close() {
        let config = RealtimeConfig {
            heartbeat: kailash_core::spec::ConfigDuration(Duration::from_secs(1)),
            idle_timeout: kailash_core::spec::ConfigDuration(Duration::from_secs(2)),
            ..base_config()
        };
        let app = app(config).await;
        let (mut reader, ..) = app.connect(&who("alice", acme())).await;
        let (mut idle, ..) = app.connect(&who("bob", acme())).await;
        // The reader answers pings (tungstenite does, while reading).
        use futures_util::StreamExt;
        let deadline = Instant::now() + Duration::from_millis(3500);
        let mut pings = 0;
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline.into(), reader.next()).await
        {
            if matches!(msg, Message::Ping(_)) {
                pings += 1;
            }
        }
        // One sweep per second queues them, so at least one arrived; the
        // reader outlived the idle timeout because its pongs count.
        assert!(pings >= 1, "{pings} pings");
        // Bob read nothing, so answered no ping: closed as idle.
        assert_eq!(closed(&mut idle).await, (4000, "Idle timeout".into()));
        marker(&app.hub, acme()).await;
        assert_eq!(next_json(&mut reader).await["event"], "marker");
    }

    #[tokio::test]
    async fn a_slow_consumer_is_closed_with_4008_and_counted() {
        let config = RealtimeConfig {
            send_queue: 2,
            ..base_config()
        };
        let app = app(config).await;
        let (mut slow, ..) = app.connect(&who("alice", acme())).await;
        let big = json!({"blob": "x".repeat(60_000)});
        // Never read: the socket buffers fill, then the queue.
        for _ in 0..400 {
            app.hub
                .send_to_tenant(&event(acme(), "big").data(big.clone()))
                .await
                .unwrap();
            if app.hub.stats().closes(CloseReason::SlowConsumer) > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let stats = app.hub.stats();
        assert_eq!(stats.closes(CloseReason::SlowConsumer), 1);
        assert!(stats.dropped >= 1);
        // The socket ends (with 4008 if the close frame still fit).
        use futures_util::StreamExt;
        loop {
            match tokio::time::timeout(PATIENCE, slow.next())
                .await
                .expect("ends")
            {
                Some(Ok(Message::Close(Some(frame)))) => {
                    assert_eq!(u16::from(frame.code), 4008);
                    break;
                }
                Some(Ok(_)) => continue,
                _ => break,
            }
        }
        // Unregistered once the close handshake ends (bounded by 1 s).
        let deadline = Instant::now() + PATIENCE;
        while app.hub.stats().open != 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(app.hub.stats().open, 0);
    }
}

mod history {
    use super::*;

    #[tokio::test]
    async fn resume_replays_then_says_whether_it_recovered() {
        let config = RealtimeConfig {
            history_size: 3,
            ..base_config()
        };
        let app = app(config).await;
        let mut ids = Vec::new();
        for n in 0..4 {
            ids.push(
                app.hub
                    .send_to_tenant(&event(acme(), &format!("e{n}")))
                    .await
                    .unwrap(),
            );
        }
        let (mut ws, ..) = app.connect(&who("alice", acme())).await;
        send_json(&mut ws, json!({"type":"resume","since":ids[1].to_string()})).await;
        assert_eq!(next_json(&mut ws).await["event"], "e2");
        let e3 = next_json(&mut ws).await;
        assert_eq!(
            (e3["event"].as_str(), e3["id"].as_str()),
            (Some("e3"), Some(ids[3].to_string().as_str()))
        );
        assert_eq!(
            next_json(&mut ws).await,
            json!({"type":"resumed","recovered":true})
        );
        // e0 was trimmed: what is left comes, and the client is told.
        send_json(
            &mut ws,
            json!({"type":"resume","since":LogId::ZERO.to_string()}),
        )
        .await;
        for name in ["e1", "e2", "e3"] {
            assert_eq!(next_json(&mut ws).await["event"], name);
        }
        assert_eq!(
            next_json(&mut ws).await,
            json!({"type":"resumed","recovered":false})
        );
    }

    #[tokio::test]
    async fn resume_runs_the_filters_and_never_leaks_another_tenant() {
        let app = app(base_config()).await;
        let acme_id = app
            .hub
            .send_to_tenant(&event(acme(), "acme.private"))
            .await
            .unwrap();
        app.hub
            .send_to_tenant(&event(acme(), "secret").classification(Classification::Secret))
            .await
            .unwrap();
        app.hub
            .send_to_tenant(&event(acme(), "public"))
            .await
            .unwrap();
        let (mut carol, ..) = app.connect(&who("carol", globex())).await;
        send_json(&mut carol, json!({"type":"resume","since":"0-0"})).await;
        assert_eq!(
            next_json(&mut carol).await,
            json!({"type":"resumed","recovered":true})
        );
        send_json(
            &mut carol,
            json!({"type":"resume","since":acme_id.to_string()}),
        )
        .await;
        let answer = next_json(&mut carol).await;
        assert_eq!(answer["type"], "resumed", "{answer}");
        let (mut alice, ..) = app.connect(&who("alice", acme())).await;
        send_json(
            &mut alice,
            json!({"type":"resume","since":acme_id.to_string()}),
        )
        .await;
        assert_eq!(next_json(&mut alice).await["event"], "public");
        assert_eq!(next_json(&mut alice).await["type"], "resumed");
    }
}

mod fanout {
    use super::*;

    /// Two instances on one state: an event published on one reaches the
    /// right sockets on the other, and only them; a revocation on one
    /// closes the socket on the other.
    async fn two_instances(a: App, b: App) {
        let (mut on_b, ..) = b.connect(&who("alice", acme())).await;
        let (mut other_tenant_b, ..) = b.connect(&who("carol", globex())).await;
        let mut admin = who("root", acme());
        admin.role = "admin";
        let (mut root_b, _, root_sid) = b.connect(&admin).await;
        a.hub
            .send_to_tenant(&event(acme(), "from.a"))
            .await
            .unwrap();
        assert_eq!(next_json(&mut on_b).await["event"], "from.a");
        assert_eq!(next_json(&mut root_b).await["event"], "from.a");
        let audit = event(acme(), "audit.a")
            .required_permission("audit:view")
            .unwrap();
        a.hub.send_to_tenant(&audit).await.unwrap();
        assert_eq!(next_json(&mut root_b).await["event"], "audit.a");
        marker(&a.hub, acme()).await;
        assert_eq!(next_json(&mut on_b).await["event"], "marker");
        marker(&a.hub, globex()).await;
        assert_eq!(next_json(&mut other_tenant_b).await["event"], "marker");
        let started = Instant::now();
        a.hub.revoke_session(&root_sid).await.unwrap();
        assert_eq!(closed(&mut root_b).await, (4001, "Invalid session".into()));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    /// The Redis URL, or `None` after printing "skipped" (failing instead
    /// under `CI=true`: a skipped case must not pass CI).
    fn redis_url() -> Option<String> {
        let url = std::env::var("KAILASH_TEST_REDIS_URL").ok();
        if url.is_none() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and KAILASH_TEST_REDIS_URL is not set: failing instead of skipping"
            );
            eprintln!("skipped: KAILASH_TEST_REDIS_URL is not set");
        }
        url
    }

    /// A Redis-backed state under a key prefix of its own (never the
    /// whole shared database).
    async fn redis_state(url: &str, prefix: &str, clock: Arc<ManualClock>) -> SharedState {
        let options = kailash_redis::RedisOptions::default()
            .with_key_prefix(prefix)
            .with_require_connection(true);
        kailash_redis::RedisState::connect(url, clock, options)
            .await
            .expect("Redis at KAILASH_TEST_REDIS_URL is usable")
            .into_shared()
    }

    fn unique_prefix() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("kailash-test:realtime:{}-{nanos}:", std::process::id())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_on_redis() {
        let Some(url) = redis_url() else { return };
        let clock = Arc::new(ManualClock::starting_now());
        let prefix = unique_prefix();
        let a = instance(
            redis_state(&url, &prefix, clock.clone()).await,
            clock.clone(),
            base_config(),
        )
        .await;
        let b_state = redis_state(&url, &prefix, clock.clone()).await;
        let b = instance_with_keys(b_state, clock, a.keys.clone(), base_config()).await;
        two_instances(a, b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resume_and_expiry_on_redis() {
        let Some(url) = redis_url() else { return };
        let clock = Arc::new(ManualClock::starting_now());
        let config = RealtimeConfig {
            history_size: 2,
            ..base_config()
        };
        let app = instance(
            redis_state(&url, &unique_prefix(), clock.clone()).await,
            clock,
            config,
        )
        .await;
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(
                app.hub
                    .send_to_tenant(&event(acme(), &format!("e{n}")))
                    .await
                    .unwrap(),
            );
        }
        let mut short = who("alice", acme());
        short.lifetime = 60;
        let (mut ws, ..) = app.connect(&short).await;
        send_json(&mut ws, json!({"type":"resume","since":ids[0].to_string()})).await;
        assert_eq!(next_json(&mut ws).await["event"], "e1");
        assert_eq!(next_json(&mut ws).await["event"], "e2");
        assert_eq!(
            next_json(&mut ws).await,
            json!({"type":"resumed","recovered":true})
        );
        send_json(&mut ws, json!({"type":"resume","since":"0-0"})).await;
        assert_eq!(next_json(&mut ws).await["event"], "e1");
        assert_eq!(next_json(&mut ws).await["event"], "e2");
        assert_eq!(
            next_json(&mut ws).await,
            json!({"type":"resumed","recovered":false})
        );
        app.clock.advance(Duration::from_secs(120));
        assert_eq!(closed(&mut ws).await, (4001, "Token expired".into()));
    }

    #[tokio::test]
    async fn two_instances_on_memory() {
        let clock = Arc::new(ManualClock::starting_now());
        let state = SharedState::memory(clock.clone());
        let a = instance(state.clone(), clock.clone(), base_config()).await;
        let b = instance_with_keys(state, clock, a.keys.clone(), base_config()).await;
        two_instances(a, b).await;
    }
}

mod sse {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;

    /// One server-sent message.
    #[derive(Debug, Default)]
    struct Message {
        id: Option<String>,
        event: Option<String>,
        data: String,
        comment: bool,
    }

    struct Client {
        body: hyper::body::Incoming,
        buf: String,
    }

    impl Client {
        async fn next(&mut self) -> Message {
            loop {
                if let Some(end) = self.buf.find("\n\n") {
                    let raw: String = self.buf.drain(..end + 2).collect();
                    let mut m = Message::default();
                    for line in raw.lines() {
                        if line.starts_with(':') {
                            m.comment = true;
                        } else if let Some((k, v)) = line.split_once(':') {
                            let v = v.strip_prefix(' ').unwrap_or(v).to_owned();
                            match k {
                                "id" => m.id = Some(v),
                                "event" => m.event = Some(v),
                                "data" => m.data.push_str(&v),
                                _ => {}
                            }
                        }
                    }
                    return m;
                }
                let frame = tokio::time::timeout(PATIENCE, self.body.frame())
                    .await
                    .expect("a message in time")
                    .expect("the stream is open")
                    .unwrap();
                if let Ok(data) = frame.into_data() {
                    self.buf.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
        }

        /// The next message that is not a keep-alive comment, as JSON.
        async fn next_json(&mut self) -> (Option<String>, Option<String>, Value) {
            loop {
                let m = self.next().await;
                if m.comment && m.data.is_empty() {
                    continue;
                }
                return (m.id, m.event, serde_json::from_str(&m.data).unwrap());
            }
        }
    }

    async fn get(
        app: &App,
        headers: &[(&'static str, String)],
    ) -> (http::StatusCode, http::HeaderMap, Client) {
        let tcp = TcpStream::connect(app.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::get("/events")
            .header("host", app.addr.to_string())
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        for (k, v) in headers {
            req.headers_mut()
                .append(*k, HeaderValue::from_str(v).unwrap());
        }
        let res = sender.send_request(req).await.unwrap();
        let (parts, body) = res.into_parts();
        (
            parts.status,
            parts.headers,
            Client {
                body,
                buf: String::new(),
            },
        )
    }

    #[tokio::test]
    async fn sse_streams_filtered_events_with_ids_and_resumes() {
        let app = app(base_config()).await;
        let (token, _) = app.login(&who("alice", acme())).await;
        let bearer = ("authorization", format!("Bearer {token}"));
        let (status, headers, mut stream) = get(&app, std::slice::from_ref(&bearer)).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "text/event-stream");
        let first = app.hub.send_to_tenant(&event(acme(), "one")).await.unwrap();
        let (id, _, frame) = stream.next_json().await;
        assert_eq!(id, Some(first.to_string()));
        assert_eq!(
            (frame["type"].as_str(), frame["event"].as_str()),
            (Some("event"), Some("one"))
        );
        app.hub
            .send_to_tenant(&event(acme(), "secret").classification(Classification::Secret))
            .await
            .unwrap();
        app.hub
            .send_to_tenant(&event(globex(), "other"))
            .await
            .unwrap();
        marker(&app.hub, acme()).await;
        assert_eq!(stream.next_json().await.2["event"], "marker");
        drop(stream);
        // Resume after `one`: the secret event stays filtered.
        let (_, _, mut again) = get(&app, &[bearer, ("last-event-id", first.to_string())]).await;
        assert_eq!(again.next_json().await.2["event"], "marker");
        assert_eq!(
            again.next_json().await.2,
            json!({"type":"resumed","recovered":true})
        );
    }

    #[tokio::test]
    async fn sse_refuses_bad_requests_before_streaming() {
        let app = app(base_config()).await;
        let (token, sid) = app.login(&who("alice", acme())).await;
        let (status, headers, _) = get(&app, &[]).await;
        assert_eq!(status, 401);
        assert_eq!(headers["content-type"], "application/problem+json");
        let (status, ..) = get(&app, &[("authorization", "Bearer x.y.z".into())]).await;
        assert_eq!(status, 401);
        let bearer = ("authorization", format!("Bearer {token}"));
        // An id over 64 bytes is refused; a shorter one this server never
        // sent streams, saying nothing could be recovered.
        let (status, ..) = get(&app, &[bearer.clone(), ("last-event-id", "9".repeat(65))]).await;
        assert_eq!(status, 400);
        let (status, _, mut stream) =
            get(&app, &[bearer.clone(), ("last-event-id", "soon".into())]).await;
        assert_eq!(status, 200);
        assert_eq!(
            stream.next_json().await.2,
            json!({"type":"resumed","recovered":false})
        );
        drop(stream);
        app.sessions
            .revoke(Some(&acme()), "alice", &sid)
            .await
            .unwrap();
        let (status, ..) = get(&app, &[bearer]).await;
        assert_eq!(status, 401);
        assert_eq!(app.hub.stats().open, 0);
    }

    #[tokio::test]
    async fn sse_ends_with_a_close_message_on_revocation() {
        let app = app(base_config()).await;
        let (token, sid) = app.login(&who("alice", acme())).await;
        let (_, _, mut stream) = get(&app, &[("authorization", format!("Bearer {token}"))]).await;
        app.hub
            .send_to_tenant(&event(acme(), "hello"))
            .await
            .unwrap();
        assert_eq!(stream.next_json().await.2["event"], "hello");
        app.hub.revoke_session(&sid).await.unwrap();
        let (_, kind, close) = stream.next_json().await;
        assert_eq!(kind.as_deref(), Some("close"));
        assert_eq!(
            close,
            json!({"type":"close","code":4001,"reason":"Invalid session"})
        );
    }
}

mod publish_route {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;

    /// `POST /api/events` behind the real JwtAuthLayer, on its own port.
    async fn serve(app: &App) -> SocketAddr {
        let spec: AccessSpec = serde_json::from_value(json!({
            "roles": [
                { "name": "viewer", "permissions": ["report:view"] },
                { "name": "admin", "permissions": ["report:view", "audit:view", "system:configure"] }
            ]
        }))
        .unwrap();
        let access = AccessControl::new(AccessPolicy::load(&spec).await.unwrap());
        let verifier = Verifier::builder(app.keys.clone(), ISS, AUD)
            .clock(app.clock.clone())
            .build();
        let auth = JwtAuthLayer::new(verifier).session_check(Arc::new(app.sessions.clone()));
        let router = kailash_realtime::http::router(app.hub.clone(), access).layer(auth);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    async fn post(addr: SocketAddr, token: &str, body: Value) -> (u16, Value) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("/api/events")
            .header("host", addr.to_string())
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body.to_string())))
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn publishes_into_the_callers_tenant_only() {
        let app = app(base_config()).await;
        let addr = serve(&app).await;
        let (mut alice, ..) = app.connect(&who("alice", acme())).await;
        let (mut carol, ..) = app.connect(&who("carol", globex())).await;
        let mut admin = who("root", acme());
        admin.role = "admin";
        let (root, _) = app.login(&admin).await;
        let body = json!({"channel":"news","event":"posted","data":{"n":1},
                          "metadata":{"classification":"internal"}});
        let (status, answer) = post(addr, &root, body.clone()).await;
        assert_eq!(status, 202, "{answer}");
        let got = next_json(&mut alice).await;
        assert_eq!(got["id"], answer["id"]);
        assert_eq!(
            (got["event"].as_str(), got["tenant_id"].as_str()),
            (Some("posted"), Some("acme"))
        );
        // A tenant in the body is not a field: refused by the schema
        // (422, pointing at it), nothing published.
        let mut foreign = body.clone();
        foreign["tenant_id"] = json!("globex");
        let (status, problem) = post(addr, &root, foreign).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/tenant_id", "{problem}");
        let (viewer, _) = app.login(&who("bob", acme())).await;
        assert_eq!(post(addr, &viewer, body).await.0, 403);
        let bad = json!({"channel":"a b","event":"x"});
        let (status, problem) = post(addr, &root, bad).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/channel", "{problem}");
        // An event type of 128 characters of 2 bytes each is within the
        // schema (it counts characters), so it is published.
        let wide = json!({"channel":"news","event":"é".repeat(128),"audience":{"user":"nobody"}});
        let (status, answer) = post(addr, &root, wide).await;
        assert_eq!(status, 202, "{answer}");
        let long = json!({"channel":"news","event":"é".repeat(129)});
        assert_eq!(post(addr, &root, long).await.0, 422);
        let bad_permission =
            json!({"channel":"news","event":"x","metadata":{"required_permission":"Data:read"}});
        assert_eq!(post(addr, &root, bad_permission).await.0, 422);
        let big = json!({"channel":"news","event":"x","data":"x".repeat(70_000)});
        assert_eq!(post(addr, &root, big).await.0, 413);
        marker(&app.hub, globex()).await;
        assert_eq!(next_json(&mut carol).await["event"], "marker");
        marker(&app.hub, acme()).await;
        assert_eq!(next_json(&mut alice).await["event"], "marker");
    }
}

/// The published schemas are the ones enforced: the document compiles for
/// the validator, every operation is routed, and the answers match it.
#[cfg(feature = "openapi")]
mod contract {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;

    async fn raw_get(
        addr: SocketAddr,
        path: &str,
        headers: &[(&'static str, &str)],
    ) -> (u16, http::HeaderMap) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn.with_upgrades());
        let mut req = http::Request::get(path)
            .header("host", addr.to_string())
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        for (k, v) in headers {
            req.headers_mut()
                .append(*k, HeaderValue::from_str(v).unwrap());
        }
        let res = sender.send_request(req).await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        if status != 101 {
            let _ = res.into_body().collect().await;
        }
        (status, headers)
    }

    fn documented(doc: &Value, path: &str, status: u16) -> bool {
        doc["paths"][path]["get"]["responses"][status.to_string()].is_object()
    }

    #[test]
    fn the_document_compiles_for_the_validator() {
        let doc = kailash_realtime::http::openapi();
        kailash_core::schema::check_document(&doc).unwrap();
        let doc = serde_json::to_value(&doc).unwrap();
        for (path, method) in [("/ws", "get"), ("/events", "get"), ("/api/events", "post")] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
        let body = &doc["components"]["schemas"]["PublishRequest"];
        assert_eq!(body["additionalProperties"], false, "{body}");
    }

    #[tokio::test]
    async fn every_documented_operation_is_routed_and_answers_as_documented() {
        let app = app(base_config()).await;
        let doc = serde_json::to_value(kailash_realtime::http::openapi()).unwrap();
        // A plain GET of /ws (no upgrade headers): 400, documented.
        let (status, headers) = raw_get(app.addr, "/ws", &[]).await;
        assert_eq!(status, 400);
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(documented(&doc, "/ws", status));
        // A key that is not the base64 of 16 bytes is outside the schema.
        let upgrade = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
        ];
        let mut bad_key = upgrade.to_vec();
        bad_key.push(("sec-websocket-key", "not-a-key"));
        assert_eq!(raw_get(app.addr, "/ws", &bad_key).await.0, 400);
        // The schema's upgrade: 101 (then 4001 for want of a token).
        let mut good = upgrade.to_vec();
        good.push(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="));
        let (status, _) = raw_get(app.addr, "/ws", &good).await;
        assert_eq!(status, 101);
        assert!(documented(&doc, "/ws", status));
        // /events without credentials: 401; a Last-Event-ID over 64
        // bytes: 400 before anything else (a shorter one this server never
        // sent is answered `recovered: false` in the stream).
        let (status, _) = raw_get(app.addr, "/events", &[]).await;
        assert_eq!(status, 401);
        assert!(documented(&doc, "/events", status));
        let (token, _) = app.login(&who("alice", acme())).await;
        let bearer = format!("Bearer {token}");
        for id in ["1".repeat(65).as_str(), &format!("1-{}", "0".repeat(63))] {
            let headers = [("authorization", bearer.as_str()), ("last-event-id", id)];
            let (status, _) = raw_get(app.addr, "/events", &headers).await;
            assert_eq!(status, 400, "{id}");
            assert!(documented(&doc, "/events", status));
        }
    }
}

#[path = "fuzz_harness/client_frame.rs"]
mod client_frame_harness;

/// Replays the `client_frame` fuzz corpus (`fuzz/corpus/client_frame/`) on
/// stable through the fuzz target's own harness: no input panics, every
/// `seed_*` is accepted and every `bad_*` refused.
mod fuzz_corpus {
    use super::client_frame_harness as harness;

    #[test]
    fn replay_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/client_frame");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let ok = std::panic::catch_unwind(|| harness::run(&bytes))
                .unwrap_or_else(|_| panic!("panicked on {}", path.display()));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("seed_") {
                assert!(ok, "seed {name} should be accepted");
            } else if name.starts_with("bad_") {
                assert!(!ok, "{name} should be refused");
            }
            files += 1;
        }
        assert!(files >= 12, "corpus has {files} files");
    }
}

mod usage {
    use super::*;
    use kailash_core::state::StateError;
    use kailash_core::usage::{UsageMetric, UsageSink};
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seconds(Mutex<HashMap<String, u64>>);

    #[async_trait::async_trait]
    impl UsageSink for Seconds {
        async fn record(
            &self,
            tenant: &TenantId,
            metric: UsageMetric,
            amount: u64,
        ) -> Result<(), StateError> {
            assert_eq!(metric, UsageMetric::RealtimeConnectionSeconds);
            *self
                .0
                .lock()
                .unwrap()
                .entry(tenant.to_string())
                .or_default() += amount;
            Ok(())
        }
    }

    impl Seconds {
        fn of(&self, tenant: &str) -> u64 {
            self.0.lock().unwrap().get(tenant).copied().unwrap_or(0)
        }
    }

    /// Open sockets are metered per tenant in whole seconds, while open and
    /// after they close, each second once.
    #[tokio::test]
    async fn open_socket_time_is_metered_per_tenant() {
        let clock = Arc::new(ManualClock::starting_now());
        let state = SharedState::memory(clock.clone());
        let keys = Arc::new(KeySet::new(
            SigningKey::hs256("k1", &[7; 32]).unwrap(),
            clock.clone(),
        ));
        let seconds = Arc::new(Seconds::default());
        let sink = seconds.clone();
        let app = instance_with(state, clock, keys, base_config(), move |hub| {
            hub.usage(sink).usage_every(Duration::from_millis(500))
        })
        .await;
        let started = Instant::now();
        let (_alice, ..) = app.connect(&who("alice", acme())).await;
        let (_bob, ..) = app.connect(&who("bob", acme())).await;
        let (mut carol, ..) = app.connect(&who("carol", globex())).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        carol.close(None).await.unwrap();
        drop(carol);
        tokio::time::sleep(Duration::from_millis(2600)).await;
        let elapsed = started.elapsed().as_secs();
        let (acme_s, globex_s) = (seconds.of("acme"), seconds.of("globex"));
        // Two acme sockets for about 4 s (up to one sweep not yet
        // recorded); one globex socket for about 1.5 s, all recorded after
        // it closed.
        assert!(
            (4..=2 * elapsed).contains(&acme_s),
            "acme {acme_s} s in {elapsed} s"
        );
        assert!((1..=2).contains(&globex_s), "globex {globex_s} s");
    }

    /// A stopping instance records the socket time of its last interval
    /// (`close_all`, then `flush_usage`) instead of losing it.
    #[tokio::test]
    async fn shutdown_meters_the_last_interval() {
        let clock = Arc::new(ManualClock::starting_now());
        let state = SharedState::memory(clock.clone());
        let keys = Arc::new(KeySet::new(
            SigningKey::hs256("k1", &[7; 32]).unwrap(),
            clock.clone(),
        ));
        let seconds = Arc::new(Seconds::default());
        let sink = seconds.clone();
        // An interval the test never reaches.
        let app = instance_with(state, clock, keys, base_config(), move |hub| {
            hub.usage(sink).usage_every(Duration::from_secs(3600))
        })
        .await;
        let (_alice, ..) = app.connect(&who("alice", acme())).await;
        let (_carol, ..) = app.connect(&who("carol", globex())).await;
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!((seconds.of("acme"), seconds.of("globex")), (0, 0));
        app.hub.close_all();
        app.hub.flush_usage().await;
        let (acme_s, globex_s) = (seconds.of("acme"), seconds.of("globex"));
        assert!((2..=3).contains(&acme_s), "acme {acme_s} s");
        assert!((2..=3).contains(&globex_s), "globex {globex_s} s");
        // Once: a second flush has nothing left.
        app.hub.flush_usage().await;
        assert_eq!(
            (seconds.of("acme"), seconds.of("globex")),
            (acme_s, globex_s)
        );
    }
}
