//! The `saml_response` fuzz harness, shared word for word by the fuzz
//! target (`fuzz/fuzz_targets/saml_response.rs`) and the stable corpus
//! replay in `tests/service_login/saml.rs`.
//!
//! The first byte picks what the rest is: `x` raw XML (base64-encoded here,
//! so libxml2, libxmlsec1 and samael's reduction see arbitrary documents),
//! anything else the `SAMLResponse` form value itself (size bound, base64,
//! UTF-8 first). The Service Provider trusts a fixture certificate whose
//! private key was thrown away, so no input can carry a valid signature:
//! every input must be refused, none may panic.

use std::sync::OnceLock;

use kailash_auth::saml::SamlServiceProvider;
use kailash_auth::spec::SamlSpec;
use kailash_core::clock::ManualClock;
use kailash_core::state::SharedState;

/// The AuthnRequest ID every response is checked against.
pub(crate) const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef01234567";

fn provider() -> &'static SamlServiceProvider {
    static SP: OnceLock<SamlServiceProvider> = OnceLock::new();
    SP.get_or_init(|| {
        let spec: SamlSpec = serde_json::from_value(serde_json::json!({
            "entity_id": "https://sp.kailash.test/saml",
            "acs_url": "https://api.kailash.test/auth/saml/acs",
            "idp_entity_id": "https://idp.kailash.test/idp",
            "idp_sso_url": "https://idp.kailash.test/sso",
            "idp_certificate_file": "idp-cert.pem",
            "default_roles": ["business_user"],
        }))
        .expect("the fixture spec");
        let pem = include_str!("../fixtures/saml/idp-cert.pem");
        let clock = std::sync::Arc::new(ManualClock::starting_now());
        SamlServiceProvider::new(spec, pem, SharedState::memory(clock)).expect("the fixture SP")
    })
}

/// Feeds `bytes`; `Some(false)` when refused (always, see above).
pub(crate) fn run(bytes: &[u8]) -> Option<bool> {
    let (&kind, rest) = bytes.split_first()?;
    let value = if kind == b'x' {
        data_encoding::BASE64.encode(rest)
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    let verified = provider().verify_response(&value, REQUEST_ID);
    assert!(
        verified.is_err(),
        "an input without the fixture key's signature was accepted"
    );
    Some(verified.is_ok())
}
