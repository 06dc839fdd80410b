//! SAML 2.0 sign-in (feature `saml`) against a real identity provider:
//! pysaml2, run by `.ci/saml/idp.py` (`KAILASH_TEST_SAML_IDP` names that
//! directory; the test is skipped without it, and fails under `CI=true`).
//! `KAILASH_TEST_SAML_PYTHON` is the Python with pysaml2 (default `python3`;
//! `.ci/saml/setup.sh` makes a venv). The IdP parses the AuthnRequest of `GET /auth/saml/login`, signs a
//! response for a demo user with its key, and the test posts it to
//! `POST /auth/saml/acs` — genuine, and crafted: unsigned, signed with
//! another key, wrapped, expired, for another audience, recipient, issuer
//! or request, replayed, oversized and garbled.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use kailash_auth::saml::routes::{openapi, router};
use kailash_auth::saml::{MAX_SAML_RESPONSE_BYTES, SamlServiceProvider};
use kailash_auth::spec::SamlSpec;
use kailash_core::AttributeValue;
use kailash_core::audit::AuditDecision;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

const ENTITY: &str = "https://sp.kailash.test/saml";
const ACS: &str = "https://api.kailash.test/auth/saml/acs";

/// The running IdP: killed when dropped.
struct Idp {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_idp() -> Option<Idp> {
    let Some(script_dir) = std::env::var_os("KAILASH_TEST_SAML_IDP") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but KAILASH_TEST_SAML_IDP is not set"
        );
        eprintln!("skipped: KAILASH_TEST_SAML_IDP is not set (.ci/saml/idp.py with pysaml2)");
        return None;
    };
    let dir = std::env::temp_dir().join(format!(
        "kailash-saml-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let python = std::env::var_os("KAILASH_TEST_SAML_PYTHON").unwrap_or_else(|| "python3".into());
    let mut child = Command::new(python)
        .arg(PathBuf::from(script_dir).join("idp.py"))
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs .ci/saml/idp.py");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the IdP did not start: {line:?}"));
    Some(Idp { child, port, dir })
}

/// A GET to the IdP (HTTP/1.0 on loopback), its JSON answer.
fn idp_get(port: u16, path_and_query: &str) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    assert!(v.get("SAMLResponse").is_some(), "the IdP answered {answer}");
    v
}

struct Sp {
    service: AuthService,
    audit: Arc<MemoryAuditSink>,
    state: SharedState,
    app: axum::Router,
    port: u16,
}

fn sp(idp: &Idp) -> Sp {
    let spec: SamlSpec = serde_json::from_value(json!({
        "entity_id": ENTITY,
        "acs_url": ACS,
        "idp_entity_id": format!("http://127.0.0.1:{}/idp", idp.port),
        "idp_sso_url": format!("http://127.0.0.1:{}/sso", idp.port),
        "idp_certificate_file": idp.dir.join("idp.pem"),
        "tenant": "acme",
        "group_roles": {
            "DataScience": ["data_scientist"],
            "Business": ["business_user"],
            "Admins": ["admin"],
        },
    }))
    .unwrap();
    let pem = std::fs::read_to_string(&spec.idp_certificate_file).unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    let audit = Arc::new(MemoryAuditSink::new());
    let config = AuthConfig {
        mfa_required_roles: ["admin".to_owned()].into_iter().collect(),
        ..AuthConfig::default()
    };
    let service = AuthService::new(
        config,
        Arc::new(StaticUserStore::new(vec![]).unwrap()),
        Arc::new(KeySet::new(
            SigningKey::generate(Algorithm::EdDSA, "k1").unwrap(),
            clock,
        )),
        state.clone(),
        audit.clone(),
    );
    let provider = Arc::new(SamlServiceProvider::new(spec, &pem, state.clone()).unwrap());
    Sp {
        app: router(service.clone(), provider),
        service,
        audit,
        state,
        port: idp.port,
    }
}

impl Sp {
    async fn call(&self, req: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
        let mut req = req;
        req.extensions_mut().insert(ctx());
        let res = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// `GET /auth/saml/login`: the IdP URL and the cookie pair.
    async fn login(&self) -> (String, String) {
        let (status, headers, _) = self
            .call(
                Request::get("/auth/saml/login")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::FOUND);
        let location = headers["location"].to_str().unwrap().to_owned();
        let set_cookie = headers["set-cookie"].to_str().unwrap();
        assert!(
            set_cookie.contains("HttpOnly")
                && set_cookie.contains("Secure")
                && set_cookie.contains("SameSite=None"),
            "{set_cookie}"
        );
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        (location, cookie)
    }

    /// A sign-in through the IdP with `knobs`: the SAMLResponse and the
    /// cookie of its request.
    async fn idp_answer(&self, knobs: &str) -> (String, String) {
        let (location, cookie) = self.login().await;
        let prefix = format!("http://127.0.0.1:{}", self.port);
        let path = location
            .strip_prefix(&prefix)
            .expect("to the IdP")
            .to_owned();
        let port = self.port;
        let knobs = knobs.to_owned();
        let answer = tokio::task::spawn_blocking(move || idp_get(port, &format!("{path}&{knobs}")))
            .await
            .unwrap();
        assert_eq!(answer["acs"], ACS);
        (answer["SAMLResponse"].as_str().unwrap().to_owned(), cookie)
    }

    async fn acs(&self, saml_response: &str, cookie: Option<&str>) -> (StatusCode, String, Value) {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", saml_response)
            .append_pair("RelayState", "")
            .finish();
        let mut req = Request::post("/auth/saml/acs")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let (status, headers, text) = self.call(req.body(Body::from(body)).unwrap()).await;
        let ct = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (
            status,
            ct,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// Posts and expects a refusal: 400 or 401 problem+json, audited, no
    /// token.
    async fn refused(&self, what: &str, saml_response: &str, cookie: Option<&str>) -> Value {
        let before = self.audit.events().len();
        let (status, ct, problem) = self.acs(saml_response, cookie).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
            "{what}: {status} {problem}"
        );
        assert_eq!(ct, "application/problem+json", "{what}");
        assert!(problem.get("access_token").is_none(), "{what}");
        let events = self.audit.events();
        assert!(events.len() > before, "{what}: not audited");
        let last = events.last().unwrap();
        assert_eq!(last.decision, AuditDecision::Failure, "{what}");
        problem
    }
}

fn xml_of(saml_response: &str) -> String {
    String::from_utf8(
        data_encoding::BASE64
            .decode(saml_response.as_bytes())
            .unwrap(),
    )
    .unwrap()
}

fn b64(xml: &str) -> String {
    data_encoding::BASE64.encode(xml.as_bytes())
}

/// The `<ns1:Assertion …>…</ns1:Assertion>` element of `xml` (pysaml2
/// writes `ns0:` for the protocol, `ns1:` for assertions, `ns2:` for
/// XML signatures).
fn assertion_span(xml: &str) -> (usize, usize) {
    let start = xml.find("<ns1:Assertion").expect("an assertion");
    let end = xml.find("</ns1:Assertion>").expect("its end") + "</ns1:Assertion>".len();
    (start, end)
}

/// An unsigned copy of the assertion in `xml`, made about `user`
/// (`Admins`) with another ID: what a wrapping attacker inserts.
fn evil_assertion(xml: &str, user: &str) -> String {
    let (s, e) = assertion_span(xml);
    let mut evil = xml[s..e].to_owned();
    if let (Some(a), Some(b)) = (evil.find("<ns2:Signature"), evil.find("</ns2:Signature>")) {
        evil.replace_range(a..b + "</ns2:Signature>".len(), "");
    }
    let id_at = evil.find(" ID=\"").unwrap() + 5;
    let id_end = id_at + evil[id_at..].find('"').unwrap();
    evil.replace_range(id_at..id_end, "_evil0000000000000000000000000001");
    evil.replace("DataScience", "Admins")
        .replace("dave@acme.example", &format!("{user}@acme.example"))
        .replace(">dave<", &format!(">{user}<"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_sign_in_against_a_real_idp_and_every_attack_refused() {
    let Some(idp) = start_idp() else { return };
    let sp = sp(&idp);

    // The metadata, which the IdP reads as its view of this SP.
    let (status, headers, metadata) = sp
        .call(
            Request::get("/auth/saml/metadata")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/samlmetadata+xml");
    assert!(
        metadata.contains(ENTITY) && metadata.contains(ACS),
        "{metadata}"
    );
    assert!(
        metadata.contains("WantAssertionsSigned=\"true\""),
        "{metadata}"
    );
    std::fs::write(idp.dir.join("sp.xml"), &metadata).unwrap();

    // A genuine sign-in: a session with the mapped roles and attributes.
    let (response, cookie) = sp.idp_answer("user=dave").await;
    let (status, _, pair) = sp.acs(&response, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let claims = sp
        .service
        .access_verifier()
        .verify(pair["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(claims.sub.starts_with("ext:saml:"), "{}", claims.sub);
    assert_eq!(claims.roles, ["data_scientist"]);
    assert_eq!(claims.tid.as_ref().map(|t| t.as_str()), Some("acme"));
    let attr = |k: &str| claims.attrs.get(k).cloned();
    assert_eq!(
        attr("department"),
        Some(AttributeValue::String("engineering".into()))
    );
    assert_eq!(
        attr("email"),
        Some(AttributeValue::String("dave@acme.example".into()))
    );
    assert_eq!(
        attr("first_name"),
        Some(AttributeValue::String("Dave".into()))
    );
    assert_eq!(
        attr("last_name"),
        Some(AttributeValue::String("Demo".into()))
    );
    // The session works: the refresh token rotates.
    sp.service
        .refresh(pair["refresh_token"].as_str().unwrap(), &ctx())
        .await
        .unwrap();
    let success = sp.audit.events();
    assert!(
        success.iter().any(|e| e.decision == AuditDecision::Success),
        "the sign-in is audited"
    );

    // Replayed: the same post again (its request is spent) …
    sp.refused("replay, same cookie", &response, Some(&cookie))
        .await;
    // … with a new sign-in's cookie (InResponseTo is another request) …
    let (_, fresh_cookie) = sp.idp_answer("user=dave").await;
    let p = sp
        .refused("replay, new cookie", &response, Some(&fresh_cookie))
        .await;
    assert!(
        p["detail"].as_str().unwrap().contains("another sign-in"),
        "{p}"
    );
    // … and with its request re-opened (as a second instance that never
    // saw it would hold it): the consumed assertion ID is refused.
    let (id, binding) = cookie
        .strip_prefix("__Host-kailash-saml=")
        .unwrap()
        .split_once('.')
        .unwrap();
    let hash = data_encoding::HEXLOWER
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, binding.as_bytes()).as_ref());
    sp.state
        .kv
        .set(
            &StateKey::global(Namespace::new("saml.flow"), id),
            bytes::Bytes::from(json!({ "b": hash }).to_string()),
            None,
        )
        .await
        .unwrap();
    let p = sp
        .refused("replayed assertion", &response, Some(&cookie))
        .await;
    assert!(
        p["detail"].as_str().unwrap().contains("already used"),
        "{p}"
    );

    // No cookie: the response cannot be tied to a request of this browser.
    let (response, _) = sp.idp_answer("user=dave").await;
    sp.refused("no cookie", &response, None).await;

    // Unsigned.
    let (response, cookie) = sp.idp_answer("user=dave&sign=none").await;
    let p = sp.refused("unsigned", &response, Some(&cookie)).await;
    assert!(p["detail"].as_str().unwrap().contains("not signed"), "{p}");
    // Signed with a key the SP does not trust.
    let (response, cookie) = sp.idp_answer("user=dave&key=other").await;
    sp.refused("another key", &response, Some(&cookie)).await;
    // Only the Response signed, while assertions must be signed.
    let (response, cookie) = sp.idp_answer("user=dave&sign=response").await;
    let p = sp
        .refused("assertion unsigned", &response, Some(&cookie))
        .await;
    assert!(p["detail"].as_str().unwrap().contains("not signed"), "{p}");
    // A genuine response edited after signing (a group added).
    let (response, cookie) = sp.idp_answer("user=dave").await;
    let edited = xml_of(&response).replace("DataScience", "Admins");
    sp.refused("edited", &b64(&edited), Some(&cookie)).await;

    // Only the assertion signed is enough (the usual IdP default) …
    let (response, cookie) = sp.idp_answer("user=dave&sign=assertion").await;
    let (status, _, body) = sp.acs(&response, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // … and then the unsigned Response around it is where a wrapping
    // attack goes. Signature wrapping: the signed assertion kept, an unsigned one about
    // alice (an admin) put first, where a naive reader looks.
    for (name, wrap) in [
        ("evil first", 0),
        ("evil replaces, signed moved into Extensions", 1),
    ] {
        let (response, cookie) = sp.idp_answer("user=dave&sign=assertion").await;
        let xml = xml_of(&response);
        let evil = evil_assertion(&xml, "alice");
        let (s, e) = assertion_span(&xml);
        let wrapped = if wrap == 0 {
            format!("{}{}{}", &xml[..s], evil, &xml[s..])
        } else {
            let signed = &xml[s..e];
            let status_at = xml.find("<ns0:Status").expect("a Status");
            let with_ext = format!(
                "{}<ns0:Extensions>{}</ns0:Extensions>{}",
                &xml[..status_at],
                signed,
                &xml[status_at..s]
            );
            format!("{with_ext}{evil}{}", &xml[e..])
        };
        let (status, _, body) = sp.acs(&b64(&wrapped), Some(&cookie)).await;
        eprintln!("wrapping, {name}: {status} {}", body["detail"]);
        if status == StatusCode::OK {
            // Only the signed assertion may have been read.
            let claims = sp
                .service
                .access_verifier()
                .verify(body["access_token"].as_str().unwrap())
                .await
                .unwrap();
            assert_eq!(
                claims.roles,
                ["data_scientist"],
                "{name}: the evil assertion was read"
            );
            assert_eq!(
                claims.attrs.get("email"),
                Some(&AttributeValue::String("dave@acme.example".into())),
                "{name}"
            );
        } else {
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
                "{name}: {status} {body}"
            );
        }
    }

    // Signed by the IdP, but wrong in what it says.
    for (what, knobs, detail) in [
        ("expired", "lifetime=-600", "expired"),
        (
            "wrong audience",
            "audience=https%3A%2F%2Fevil.example%2Fsp",
            "audience",
        ),
        (
            "wrong recipient",
            "destination=https%3A%2F%2Fevil.example%2Fauth%2Fsaml%2Facs",
            "recipient",
        ),
        (
            "wrong issuer",
            "issuer=http%3A%2F%2Fevil.example%2Fidp",
            "issuer",
        ),
        (
            "another request",
            "in_response_to=_0123456789abcdef",
            "another sign-in",
        ),
    ] {
        let (response, cookie) = sp.idp_answer(&format!("user=dave&{knobs}")).await;
        let p = sp.refused(what, &response, Some(&cookie)).await;
        assert!(
            p["detail"].as_str().unwrap_or("").contains(detail),
            "{what}: {p}"
        );
    }

    // Bounded and malformed input.
    let (_, cookie) = sp.login().await;
    let huge = "A".repeat(MAX_SAML_RESPONSE_BYTES + 4);
    let p = sp.refused("oversized", &huge, Some(&cookie)).await;
    assert!(p["detail"].as_str().unwrap().contains("too large"), "{p}");
    sp.refused("garbled base64", "%%%not base64%%%", Some(&cookie))
        .await;
    let (_, cookie) = sp.login().await;
    sp.refused("not XML", &b64("<<<not xml"), Some(&cookie))
        .await;

    // MFA: an admin needs a second factor the IdP asserts.
    let (response, cookie) = sp.idp_answer("user=alice").await;
    let (status, _, _) = sp.acs(&response, Some(&cookie)).await;
    assert!(status.is_client_error(), "admin without MFA: {status}");
    let (response, cookie) = sp.idp_answer("user=alice&mfa=1").await;
    let (status, _, pair) = sp.acs(&response, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
}

#[test]
fn the_openapi_document_has_the_three_routes() {
    let doc = serde_json::to_value(openapi()).unwrap();
    for path in ["/auth/saml/metadata", "/auth/saml/login", "/auth/saml/acs"] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
}
