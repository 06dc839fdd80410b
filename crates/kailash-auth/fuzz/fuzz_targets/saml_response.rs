//! Arbitrary bytes as a `SAMLResponse` (or the XML inside one) at the
//! Assertion Consumer Service: bounded, decoded, parsed by libxml2,
//! verified by libxmlsec1 and reduced by samael; without the trusted key's
//! signature every input is refused and nothing panics. Needs the `saml`
//! feature (and the system's libxmlsec1). The harness is shared with the
//! stable corpus replay in `tests/service_login/saml.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/fuzz_harness/saml_response.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    harness::run(bytes);
});
