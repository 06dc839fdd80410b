//! The `bearer_token` fuzz harness, shared word for word by the fuzz target
//! (`fuzz/fuzz_targets/bearer_token.rs`) and the stable corpus replay in
//! `tests/jwt_verify.rs`.
//!
//! One input is tried four ways, all through the real code:
//!
//! 1. as the whole `Authorization` header value, as the credential after
//!    `Bearer `, and as a `Cookie` header and the credential cookie, through
//!    a [`JwtAuthLayer`] (status must be 200 or 401);
//! 2. as a compact JWS, through [`Verifier::verify_now`];
//! 3. as the JWS payload of a token signed with the test key, so the claims
//!    parser and the time/issuer/audience checks see arbitrary JSON;
//! 4. as the JWS header of such a token, so the header checks see
//!    arbitrary JSON.
//!
//! Nothing may panic; every refusal must be a typed [`VerifyError`]; the
//! layer's audit event for a refusal stays small and never holds the
//! credential it refused.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use data_encoding::BASE64URL_NOPAD;
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::EncodingKey;
use kailash_auth::jwt::{Algorithm, Claims, KeySet, SigningKey, TokenType, Verifier, VerifyError};
use kailash_auth::layer::JwtAuthLayer;
use kailash_core::audit::MemoryAuditSink;
use kailash_core::clock::ManualClock;
use kailash_core::problem::ResponseBody;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt, service_fn};

/// The fixed clock every check runs at.
pub(crate) const NOW: i64 = 1_700_000_000;
/// The issuer the verifier expects.
pub(crate) const ISS: &str = "https://id.example";
/// The audience the verifier expects.
pub(crate) const AUD: &str = "api";
/// The `kid` of the HS256 test key (the set also holds public `rs`, `es`
/// and `ed` keys whose private halves nobody keeps).
pub(crate) const KID: &str = "fuzz";
/// The HS256 secret of the test key (a test value, not a secret).
const SECRET: [u8; 32] = [0x5a; 32];
/// The cookie the layer also reads the token from.
const COOKIE_NAME: &str = "kailash_at";
/// The largest audit event the layer may write for one refusal (JSON bytes).
const MAX_AUDIT_EVENT: usize = 1024;
/// Inputs at least this long must not appear in an audit event. (A shorter
/// one may be a fixed phrase the event holds anyway, like `auth.token`.)
const MIN_SECRET_LEN: usize = 64;

type Svc = BoxCloneSyncService<Request<()>, Response<ResponseBody<String>>, Infallible>;

struct Fixture {
    keys: Arc<KeySet>,
    verifier: Verifier,
    service: Svc,
    audit: Arc<MemoryAuditSink>,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let clock = Arc::new(ManualClock::new(
            jiff::Timestamp::from_second(NOW).expect("fixed time"),
        ));
        let key = SigningKey::hs256(KID, &SECRET).expect("test key");
        let keys = Arc::new(KeySet::new(key, clock.clone()));
        // Public keys of the other algorithms, so arbitrary signatures reach
        // RSA, ECDSA and EdDSA verification too (kids `rs`, `es`, `ed`).
        for (alg, kid) in [
            (Algorithm::RS256, "rs"),
            (Algorithm::ES256, "es"),
            (Algorithm::EdDSA, "ed"),
        ] {
            let other = SigningKey::generate(alg, kid).expect("key generation");
            keys.add_verifier(other.verifying_key())
                .expect("distinct kid");
        }
        let verifier = Verifier::builder(keys.clone(), ISS, AUD)
            .clock(clock)
            .build();
        let inner = service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        });
        // Capacity 1: only the newest event is looked at.
        let audit = Arc::new(MemoryAuditSink::with_capacity(1));
        let layer = JwtAuthLayer::new(verifier.clone())
            .cookie(COOKIE_NAME)
            .audit(audit.clone());
        let service = BoxCloneSyncService::new(layer.layer(inner));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        Fixture {
            keys,
            verifier,
            service,
            audit,
            runtime,
        }
    })
}

/// What happened to one input; for the replay test's expectations.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The input verified as a token on its own (path 2).
    pub(crate) token_ok: bool,
    /// The input, signed as a payload, verified (path 3).
    pub(crate) payload_ok: bool,
    /// The input, signed as a header, verified (path 4).
    pub(crate) header_ok: bool,
}

/// Runs one input through every path; panics only on a broken invariant.
pub(crate) fn run(bytes: &[u8]) -> Outcome {
    let f = fixture();
    let mut out = Outcome::default();

    // 1. The layer, with the input as the whole header value, as the
    //    credential after `Bearer ` and as a cookie header.
    if let Ok(value) = HeaderValue::from_bytes(bytes) {
        call(f, request("/me", AUTHORIZATION, value.clone()), bytes);
        call(f, request("/me", COOKIE, value), bytes);
    }
    let layer_status = HeaderValue::from_bytes(&[b"Bearer ", bytes].concat())
        .ok()
        .map(|v| call(f, request("/me", AUTHORIZATION, v), bytes));
    if let Ok(value) = HeaderValue::from_bytes(&[COOKIE_NAME.as_bytes(), b"=", bytes].concat()) {
        call(f, request("/me", COOKIE, value), bytes);
    }

    // 2. The verifier, with the input as the compact JWS.
    if let Ok(token) = std::str::from_utf8(bytes)
        && let Some(claims) = accepted(f.verifier.verify_now(token))
    {
        out.token_ok = true;
        // A token that verifies is a valid header value with no space, so
        // the layer must have let it through too.
        assert_eq!(
            layer_status,
            Some(StatusCode::OK),
            "verifier accepted what the layer refused"
        );
        round_trip(f, &claims);
    }

    // 3. The input as the payload of a correctly signed token.
    let header = br#"{"alg":"HS256","typ":"at+jwt","kid":"fuzz"}"#;
    if let Some(claims) = accepted(f.verifier.verify_now(&sign(header, bytes))) {
        out.payload_ok = true;
        round_trip(f, &claims);
    }

    // 4. The input as the header of a correctly signed token.
    let payload = Claims::new(ISS, "alice", AUD, NOW, NOW + 300)
        .to_json()
        .to_string();
    if accepted(f.verifier.verify_now(&sign(bytes, payload.as_bytes()))).is_some() {
        out.header_ok = true;
    }
    out
}

/// A request for `path` with one header.
fn request(path: &'static str, name: HeaderName, value: HeaderValue) -> Request<()> {
    let mut req = Request::new(());
    *req.uri_mut() = http::Uri::from_static(path);
    req.headers_mut().insert(name, value);
    req
}

/// The status the layer answers for `req`, which carries `credential`: 200
/// or 401, and a 401's audit event is small and does not hold it.
fn call(f: &Fixture, req: Request<()>, credential: &[u8]) -> StatusCode {
    let svc = f.service.clone();
    let status = match f.runtime.block_on(svc.oneshot(req)) {
        Ok(res) => res.status(),
        Err(never) => match never {},
    };
    assert!(
        status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
        "layer answered {status}"
    );
    if status == StatusCode::UNAUTHORIZED {
        let events = f.audit.events();
        let event = events.last().expect("a refusal is audited");
        let json = serde_json::to_string(event).expect("event serializes");
        assert!(
            json.len() <= MAX_AUDIT_EVENT,
            "audit event of {} bytes",
            json.len()
        );
        if credential.len() >= MIN_SECRET_LEN {
            // In any of the event's values; not the serialisation as a
            // whole, whose framing (keys, the test clock's time) a fuzzed
            // "credential" can spell on purpose.
            let text = String::from_utf8_lossy(credential);
            let value: serde_json::Value = serde_json::from_str(&json).expect("event parses");
            assert!(
                !holds(&value, text.as_ref()),
                "audit event holds the credential"
            );
        }
    }
    status
}

/// Whether any string in `value` (keys included) contains `text`.
fn holds(value: &serde_json::Value, text: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains(text),
        serde_json::Value::Array(a) => a.iter().any(|v| holds(v, text)),
        serde_json::Value::Object(m) => m.iter().any(|(k, v)| k.contains(text) || holds(v, text)),
        _ => false,
    }
}

/// The claims of an accepted token; a refusal must carry its typed reason.
fn accepted(result: Result<Claims, VerifyError>) -> Option<Claims> {
    match result {
        Ok(c) => Some(c),
        Err(e) => {
            // Every refusal maps to an RFC 6750 code and a fixed audit phrase.
            assert!(!e.rfc6750_code().is_empty() && !e.audit_reason().is_empty());
            None
        }
    }
}

/// `header.payload.signature`, signed with the test key.
fn sign(header: &[u8], payload: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(header),
        BASE64URL_NOPAD.encode(payload)
    );
    let key = EncodingKey::from_secret(&SECRET);
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
        .expect("HS256 signs anything");
    format!("{message}.{sig}")
}

/// Accepted claims survive re-issue: what the issuer writes, the verifier
/// reads back unchanged, and the principal can be built from it.
fn round_trip(f: &Fixture, claims: &Claims) {
    let _principal = claims.to_principal();
    if let Ok(token) = f.keys.issue(claims, TokenType::Access) {
        let again = f.verifier.verify_now(&token);
        assert_eq!(again.as_ref(), Ok(claims), "claims changed on re-issue");
    }
}
