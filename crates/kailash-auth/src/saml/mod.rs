//! Sign-in with a SAML 2.0 identity provider (feature `saml`): this
//! service is the Service Provider, with the HTTP-Redirect binding out and
//! the HTTP-POST binding back.
//!
//! 1. [`SamlServiceProvider::start`] (`GET /auth/saml/login`) draws an
//!    AuthnRequest ID and a browser binding (256 bits each), keeps the
//!    binding's SHA-256 in the shared state under the ID for `login_ttl`
//!    (so any instance can finish the sign-in), and sends the browser to
//!    the IdP's single sign-on URL with the deflated AuthnRequest and a
//!    `__Host-kailash-saml` cookie (`HttpOnly`, `Secure`, `SameSite=None`:
//!    the IdP posts back cross-site) holding `ID.binding`.
//! 2. [`SamlServiceProvider::finish`] (`POST /auth/saml/acs`) refuses a
//!    `SAMLResponse` over [`MAX_SAML_RESPONSE_BYTES`] before decoding it,
//!    takes the cookie's request record — once: a replayed post finds
//!    nothing —, checks the binding in constant time, then has samael
//!    (libxmlsec1) verify the XML signatures against the configured IdP
//!    certificate(s) only (SHA-2 RSA/ECDSA algorithms) and **reduce the
//!    document to the signed elements**: the assertion that is read comes
//!    from that reduced document, so an unsigned assertion moved or
//!    inserted beside a signed one (XML signature wrapping) is never seen.
//!    samael then checks the Issuer, the Destination, the
//!    SubjectConfirmation (bearer, Recipient = the ACS URL, NotOnOrAfter,
//!    InResponseTo = the cookie's request ID), the Conditions' NotBefore /
//!    NotOnOrAfter and Audience; this module also requires an
//!    AudienceRestriction naming this entity, an Assertion signed itself
//!    (`want_assertions_signed`), and records the assertion ID in the
//!    shared state until it expires, so a replayed assertion is refused on
//!    every instance.
//! 3. The attributes become an [`ExternalIdentity`] (username, roles from
//!    groups, attributes for ABAC, tenant, and whether an
//!    `AuthnContextClassRef` asserted a second factor), and
//!    [`AuthService::sign_in_external`](crate::service::AuthService::sign_in_external)
//!    opens the session, as for a password login.
//!
//! The XML signature code is libxmlsec1's, through samael — never
//! home-made; that is why this module needs the system's libxmlsec1,
//! libxml2 and OpenSSL and sits behind a non-default feature.
//!
//! ```
//! use kailash_auth::saml::MAX_SAML_RESPONSE_BYTES;
//!
//! // A SAMLResponse field longer than this is refused before decoding.
//! assert_eq!(MAX_SAML_RESPONSE_BYTES, 256 * 1024);
//! ```

mod attributes;
#[cfg(feature = "axum")]
pub mod routes;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER};
use kailash_core::state::{Namespace, SharedState, StateKey};
use samael::crypto::{AllowedSignatureAlgorithm, Crypto, CryptoProvider, ReduceMode};
use samael::metadata::{
    EntityDescriptor, HTTP_POST_BINDING, HTTP_REDIRECT_BINDING, IdpSsoDescriptor, KeyDescriptor,
};
use samael::schema::Assertion;
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use samael::traits::ToXml;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub use attributes::identity_from_assertion;

use crate::saml_spec::{InvalidSamlSpec, SamlSpec};
use crate::service::{AuthError, ExternalIdentity};

/// The cookie that binds a sign-in to the browser that started it.
pub const FLOW_COOKIE: &str = "__Host-kailash-saml";

/// The longest `SAMLResponse` form field read (before base64 decoding).
pub const MAX_SAML_RESPONSE_BYTES: usize = 256 * 1024;

/// Where started sign-ins wait for the IdP's answer.
const NS_FLOW: Namespace = Namespace::new("saml.flow");
/// Assertion IDs already consumed, until they expire.
const NS_SEEN: Namespace = Namespace::new("saml.seen");

/// The signature algorithms accepted: SHA-2 RSA and ECDSA (no SHA-1).
const ALGORITHMS: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// Why a SAML sign-in step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamlError {
    /// The request is malformed: no or an oversized `SAMLResponse`, bad
    /// base64, not XML (400).
    #[error("{0}")]
    BadRequest(&'static str),
    /// The answer is refused: an unsigned, forged, wrapped, expired,
    /// replayed or misdirected assertion, an unknown request (401).
    #[error("{0}")]
    Refused(&'static str),
    /// The sign-in was refused or failed after the IdP vouched for the
    /// user, or a backend failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<kailash_core::state::StateError> for SamlError {
    fn from(e: kailash_core::state::StateError) -> Self {
        Self::Auth(e.into())
    }
}

/// Where to send the browser, and the cookie to set.
#[derive(Clone)]
pub struct LoginStart {
    /// The IdP's SSO URL with the `SAMLRequest` (and `RelayState`).
    pub location: String,
    /// The `Set-Cookie` value binding the sign-in to this browser.
    pub set_cookie: String,
}

impl std::fmt::Debug for LoginStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cookie carries the binding: not for logs.
        f.debug_struct("LoginStart").finish_non_exhaustive()
    }
}

/// A started sign-in waiting for the IdP's answer.
#[derive(Serialize, Deserialize)]
struct Flow {
    /// SHA-256 (hex) of the browser binding.
    b: String,
}

fn random_token() -> Result<String, SamlError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| AuthError::Internal)?;
    Ok(BASE64URL_NOPAD.encode(&bytes))
}

fn sha256_hex(text: &str) -> String {
    HEXLOWER.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref())
}

/// The base64 bodies of the `CERTIFICATE` blocks of `pem`.
fn pem_certificates(pem: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(body) = current.take()
                && BASE64.decode(body.as_bytes()).is_ok()
            {
                found.push(body);
            }
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
        }
    }
    found
}

/// The configured SAML identity provider and this Service Provider. Cheap
/// to share (`Arc`).
pub struct SamlServiceProvider {
    spec: SamlSpec,
    sp: Arc<ServiceProvider>,
    state: SharedState,
}

impl std::fmt::Debug for SamlServiceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlServiceProvider")
            .field("name", &self.spec.name)
            .field("entity_id", &self.spec.entity_id)
            .field("idp", &self.spec.idp_entity_id)
            .finish_non_exhaustive()
    }
}

impl SamlServiceProvider {
    /// The Service Provider `spec` describes (checked with
    /// [`SamlSpec::validate`]), trusting the certificates in
    /// `idp_certificate_pem` (the content of `idp_certificate_file`) and
    /// keeping started sign-ins and consumed assertion IDs in `state`.
    pub fn new(
        spec: SamlSpec,
        idp_certificate_pem: &str,
        state: SharedState,
    ) -> Result<Self, InvalidSamlSpec> {
        spec.validate()?;
        let certificates = pem_certificates(idp_certificate_pem);
        if certificates.is_empty() {
            return Err(InvalidSamlSpec {
                key: "saml.idp_certificate_file",
                message: "holds no PEM certificate".into(),
            });
        }
        let key_descriptors = certificates
            .into_iter()
            .map(|c| KeyDescriptor {
                key_use: Some("signing".into()),
                key_info: samael::key_info::KeyInfo {
                    id: None,
                    x509_data: Some(samael::key_info::X509Data {
                        certificates: vec![c],
                    }),
                },
                encryption_methods: None,
            })
            .collect();
        let idp = EntityDescriptor {
            entity_id: Some(spec.idp_entity_id.clone()),
            idp_sso_descriptors: Some(vec![IdpSsoDescriptor {
                protocol_support_enumeration: Some("urn:oasis:names:tc:SAML:2.0:protocol".into()),
                key_descriptors,
                single_sign_on_services: vec![samael::metadata::Endpoint {
                    binding: HTTP_REDIRECT_BINDING.into(),
                    location: spec.idp_sso_url.clone(),
                    response_location: None,
                }],
                id: None,
                valid_until: None,
                cache_duration: None,
                error_url: None,
                signature: None,
                organization: None,
                contact_people: Vec::new(),
                artifact_resolution_service: Vec::new(),
                single_logout_services: Vec::new(),
                manage_name_id_services: Vec::new(),
                name_id_formats: Vec::new(),
                want_authn_requests_signed: None,
                name_id_mapping_services: Vec::new(),
                assertion_id_request_services: Vec::new(),
                attribute_profiles: Vec::new(),
                attributes: Vec::new(),
            }]),
            ..EntityDescriptor::default()
        };
        let skew = chrono::Duration::from_std(spec.clock_skew.0).unwrap_or_default();
        let sp = ServiceProviderBuilder::default()
            .entity_id(spec.entity_id.clone())
            .acs_url(spec.acs_url.clone())
            // samael's metadata wants one; `metadata_xml` leaves it out
            // (no single logout here).
            .slo_url(spec.acs_url.clone())
            .metadata_url(None::<String>)
            .idp_metadata(idp)
            .max_clock_skew(skew)
            // IssueInstant may be this old (plus the skew): a sign-in is
            // answered within minutes.
            .max_issue_delay(
                chrono::Duration::from_std(spec.login_ttl.0).unwrap_or_default() + skew,
            )
            .allowed_signature_algorithms(Some(ALGORITHMS.to_vec()))
            .build()
            .map_err(|e| InvalidSamlSpec {
                key: "saml",
                message: e.to_string(),
            })?;
        // The configured certificates must parse: checked now, not at the
        // first sign-in.
        sp.idp_signing_certs().map_err(|_| InvalidSamlSpec {
            key: "saml.idp_certificate_file",
            message: "holds a certificate that does not parse".into(),
        })?;
        Ok(Self {
            spec,
            sp: Arc::new(sp),
            state,
        })
    }

    /// The configuration.
    pub fn spec(&self) -> &SamlSpec {
        &self.spec
    }

    /// The fingerprint of the settings that decide who this provider's
    /// users are here (see
    /// [`AuthService::set_external_providers`](crate::service::AuthService::set_external_providers)).
    pub fn fingerprint(&self) -> String {
        attributes::mapping_fingerprint(&self.spec)
    }

    /// This Service Provider's metadata (an `EntityDescriptor` naming the
    /// entity id and the ACS URL with the HTTP-POST binding, assertions
    /// wanted signed), for the IdP's administrator.
    pub fn metadata_xml(&self) -> Result<String, SamlError> {
        let mut metadata = self.sp.metadata().map_err(|_| AuthError::Internal)?;
        if let Some(sps) = metadata.sp_sso_descriptors.as_mut() {
            for sp in sps {
                sp.want_assertions_signed = Some(self.spec.want_assertions_signed);
                sp.single_logout_services = None;
            }
        }
        metadata
            .to_string()
            .map_err(|_| SamlError::Auth(AuthError::Internal))
    }

    /// Starts a sign-in: the IdP's URL with a deflated AuthnRequest
    /// (HTTP-Redirect binding) and the cookie binding it to this browser.
    pub async fn start(&self) -> Result<LoginStart, SamlError> {
        let mut request = self
            .sp
            .make_authentication_request(&self.spec.idp_sso_url)
            .map_err(|_| AuthError::Internal)?;
        // samael draws 32 bits; the ID is the InResponseTo to expect, so
        // it gets as many as the binding.
        let id = format!(
            "_{}",
            HEXLOWER.encode(&{
                let mut b = [0u8; 20];
                getrandom::fill(&mut b).map_err(|_| AuthError::Internal)?;
                b
            })
        );
        request.id = id.clone();
        request.protocol_binding = Some(HTTP_POST_BINDING.into());
        let binding = random_token()?;
        let flow = serde_json::to_vec(&Flow {
            b: sha256_hex(&binding),
        })
        .map_err(|_| AuthError::Internal)?;
        self.state
            .kv
            .set(
                &StateKey::global(NS_FLOW, &id),
                Bytes::from(flow),
                Some(self.spec.login_ttl()),
            )
            .await?;
        let url = request
            .redirect("")
            .ok()
            .flatten()
            .ok_or(SamlError::Auth(AuthError::Internal))?;
        Ok(LoginStart {
            location: url.into(),
            set_cookie: format!(
                "{FLOW_COOKIE}={id}.{binding}; Path=/; Secure; HttpOnly; SameSite=None; Max-Age={}",
                self.spec.login_ttl().as_secs()
            ),
        })
    }

    /// The `Set-Cookie` value that removes the binding cookie.
    pub fn clear_cookie() -> &'static str {
        "__Host-kailash-saml=; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=0"
    }

    /// Finishes a sign-in from the `SAMLResponse` form field and the
    /// binding cookie's value: the identity the IdP vouched for, for
    /// [`AuthService::sign_in_external`](crate::service::AuthService::sign_in_external).
    pub async fn finish(
        &self,
        saml_response: &str,
        cookie: Option<&str>,
    ) -> Result<ExternalIdentity, SamlError> {
        let xml = decode_response(saml_response)?;
        let (request_id, binding) = cookie
            .filter(|c| c.len() <= 256)
            .and_then(|c| c.split_once('.'))
            .ok_or(SamlError::Refused("the sign-in cookie is missing"))?;
        // Whatever follows, this request is spent.
        let flow = self
            .state
            .kv
            .take(&StateKey::global(NS_FLOW, request_id))
            .await?;
        let flow: Flow = match flow {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| AuthError::Internal)?,
            None => {
                return Err(SamlError::Refused(
                    "unknown, expired or already answered sign-in request",
                ));
            }
        };
        let matches: bool = sha256_hex(binding)
            .as_bytes()
            .ct_eq(flow.b.as_bytes())
            .into();
        if !matches {
            return Err(SamlError::Refused(
                "the sign-in was started by another browser",
            ));
        }
        let sp = self.sp.clone();
        let request_id = request_id.to_owned();
        let want_signed = self.spec.want_assertions_signed;
        let entity_id = self.spec.entity_id.clone();
        // libxml2 / libxmlsec1 work is synchronous.
        let assertion = tokio::task::spawn_blocking(move || {
            verify(&sp, &xml, &request_id, &entity_id, want_signed)
        })
        .await
        .map_err(|_| AuthError::Internal)??;
        self.consume(&assertion).await?;
        identity_from_assertion(&self.spec, &assertion)
    }

    /// Checks a `SAMLResponse` form value answering the AuthnRequest
    /// `request_id` — bounded, decoded, signature verified and reduced to
    /// the signed part, every condition checked — and returns the
    /// verified assertion, without the browser binding or the replay
    /// record of [`finish`](Self::finish). Synchronous (libxmlsec1): the
    /// entry point the `saml_response` fuzz target feeds.
    pub fn verify_response(
        &self,
        saml_response: &str,
        request_id: &str,
    ) -> Result<Assertion, SamlError> {
        let xml = decode_response(saml_response)?;
        verify(
            &self.sp,
            &xml,
            request_id,
            &self.spec.entity_id,
            self.spec.want_assertions_signed,
        )
    }

    /// Records `assertion`'s ID until it expires; refuses one already
    /// recorded.
    async fn consume(&self, assertion: &Assertion) -> Result<(), SamlError> {
        let now = self.state.clock.now().as_second();
        let expiry = assertion
            .subject
            .iter()
            .flat_map(|s| s.subject_confirmations.iter().flatten())
            .filter_map(|c| c.subject_confirmation_data.as_ref())
            .filter_map(|d| d.not_on_or_after)
            .chain(
                assertion
                    .conditions
                    .iter()
                    .filter_map(|c| c.not_on_or_after),
            )
            .map(|t| t.timestamp())
            .max()
            .unwrap_or(now);
        let ttl = Duration::from_secs(
            u64::try_from(expiry.saturating_sub(now)).unwrap_or(0)
                + self.spec.clock_skew.0.as_secs()
                + 60,
        );
        if assertion.id.is_empty() || assertion.id.len() > 256 {
            return Err(SamlError::Refused("the assertion has no usable ID"));
        }
        let fresh = self
            .state
            .kv
            .set_if_absent(
                &StateKey::global(NS_SEEN, &sha256_hex(&assertion.id)),
                Bytes::from_static(b"1"),
                Some(ttl),
            )
            .await?;
        if !fresh {
            return Err(SamlError::Refused("the assertion was already used"));
        }
        Ok(())
    }
}

/// The XML of a `SAMLResponse` form field: bounded, base64 (line breaks
/// allowed), UTF-8.
pub fn decode_response(saml_response: &str) -> Result<String, SamlError> {
    if saml_response.len() > MAX_SAML_RESPONSE_BYTES {
        return Err(SamlError::BadRequest("the SAMLResponse is too large"));
    }
    if saml_response.is_empty() {
        return Err(SamlError::BadRequest("the request has no SAMLResponse"));
    }
    let compact: Vec<u8> = saml_response
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = BASE64
        .decode(&compact)
        .map_err(|_| SamlError::BadRequest("the SAMLResponse is not base64"))?;
    let xml = String::from_utf8(bytes)
        .map_err(|_| SamlError::BadRequest("the SAMLResponse is not UTF-8"))?;
    // A SAML response never needs a document type: refusing one keeps
    // entity expansion (internal "billion laughs", external entities) away
    // from both XML parsers behind the check.
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(SamlError::BadRequest(
            "the SAMLResponse has a document type declaration",
        ));
    }
    if !same_document_uris(&xml) {
        return Err(SamlError::BadRequest(
            "the SAMLResponse refers to a document outside itself",
        ));
    }
    Ok(xml)
}

/// Whether every `URI` attribute of `xml` (a signature's `Reference`, a
/// `RetrievalMethod`) is empty or a same-document `#id`. samael leaves
/// libxmlsec1's reference policy at "any URI", which would have it fetch
/// a file or URL named by an attacker before any signature is known to be
/// good; a SAML response never needs one. A coarse scan: it may refuse an
/// odd but harmless document, never let an outside reference through.
fn same_document_uris(xml: &str) -> bool {
    let mut rest = xml;
    while let Some(at) = rest.find("URI") {
        rest = &rest[at + 3..];
        let after = rest.trim_start();
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let value = &after[1..];
        let Some(end) = value.find(quote) else {
            return false;
        };
        let value = &value[..end];
        let ok = value.is_empty()
            || value.strip_prefix('#').is_some_and(|id| {
                !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            });
        if !ok {
            return false;
        }
    }
    true
}

/// Verifies `xml` (a decoded `SAMLResponse`) against the IdP's
/// certificates and returns the assertion read from the signed part only.
fn verify(
    sp: &ServiceProvider,
    xml: &str,
    request_id: &str,
    entity_id: &str,
    want_assertions_signed: bool,
) -> Result<Assertion, SamlError> {
    use samael::service_provider::Error as E;
    let assertion = sp
        .parse_xml_response_with_mode(
            xml,
            Some(&[request_id]),
            ReduceMode::ValidateAndMarkNoAncestors,
        )
        .map_err(|e| {
            SamlError::Refused(match e {
                E::FailedToValidateSignature => {
                    "the response is not signed by the identity provider"
                }
                E::ResponseInResponseToInvalid { .. } | E::AssertionInResponseToInvalid { .. } => {
                    "the response answers another sign-in request"
                }
                E::ResponseExpired { .. }
                | E::AssertionExpired { .. }
                | E::AssertionConditionExpired { .. }
                | E::AssertionConditionExpiredBefore { .. }
                | E::AssertionSubjectConfirmationExpired { .. }
                | E::AssertionSubjectConfirmationExpiredBefore { .. } => {
                    "the assertion is expired or not yet valid"
                }
                E::ResponseIssuerMismatch { .. } | E::AssertionIssuerMismatch { .. } => {
                    "the assertion comes from another issuer"
                }
                E::AssertionConditionAudienceRestrictionFailed { .. } => {
                    "the assertion is for another audience"
                }
                E::AssertionRecipientMismatch { .. } | E::DestinationValidationError { .. } => {
                    "the response is for another recipient"
                }
                E::ResponseBadStatusCode { .. } => "the identity provider refused the sign-in",
                E::AssertionBearerSubjectConfirmationMissing
                | E::AssertionSubjectConfirmationMissing => {
                    "the assertion has no bearer subject confirmation"
                }
                E::EncryptedAssertionsNotYetSupported | E::MissingPrivateKeySP => {
                    "encrypted assertions are not accepted"
                }
                _ => "the response is malformed",
            })
        })?;
    let audience_named = assertion
        .conditions
        .as_ref()
        .and_then(|c| c.audience_restrictions.as_ref())
        .is_some_and(|rs| {
            !rs.is_empty() && rs.iter().all(|r| r.audience.iter().any(|a| a == entity_id))
        });
    if !audience_named {
        return Err(SamlError::Refused("the assertion is for another audience"));
    }
    if want_assertions_signed && !assertion_signed(sp, xml, &assertion)? {
        return Err(SamlError::Refused("the assertion itself is not signed"));
    }
    Ok(assertion)
}

/// Whether the IdP signed `assertion` itself, not only the Response around
/// it. The document is reduced to its signed parts again (samael does not
/// say which element a signature covered): when the root that remains is
/// the Assertion, a signature covered it alone; when it is the Response,
/// the assertion must carry a signature whose reference is its own ID —
/// every signature in the document verified against the IdP's
/// certificates, or the reduction fails.
fn assertion_signed(
    sp: &ServiceProvider,
    xml: &str,
    assertion: &Assertion,
) -> Result<bool, SamlError> {
    let refused = || SamlError::Refused("the response is not signed by the identity provider");
    let certs = sp.idp_signing_certs().ok().flatten().ok_or_else(refused)?;
    let reduced = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(&ALGORITHMS),
    )
    .map_err(|_| refused())?;
    if root_local_name(&reduced) == Some("Assertion") {
        return Ok(true);
    }
    let own = format!("#{}", assertion.id);
    Ok(assertion.signature.as_ref().is_some_and(|s| {
        s.signed_info
            .reference
            .iter()
            .any(|r| r.uri.as_deref() == Some(own.as_str()))
    }))
}

/// The local name of the root element of `xml` (after the declaration,
/// comments and processing instructions).
fn root_local_name(xml: &str) -> Option<&str> {
    let mut rest = xml;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("<?") {
            rest = &after[after.find("?>")? + 2..];
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = &after[after.find("-->")? + 3..];
        } else {
            break;
        }
    }
    let tag = rest.strip_prefix('<')?;
    let end = tag.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
    let name = &tag[..end];
    Some(name.rsplit(':').next().unwrap_or(name))
}

/// Deflates `text` (raw DEFLATE, as the HTTP-Redirect binding sends it).
#[doc(hidden)]
pub fn deflate(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = flate2::write::DeflateEncoder::new(&mut out, flate2::Compression::default());
    let _ = encoder.write_all(text.as_bytes());
    let _ = encoder.finish();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_document_references_pass() {
        assert!(same_document_uris(
            r##"<a><Reference URI="#id-1"/><R URI=""/></a>"##
        ));
        assert!(same_document_uris("<a>no references</a>"));
        for bad in [
            r#"<Reference URI="file:///etc/passwd"/>"#,
            r#"<Reference URI = 'http://evil.example/x'/>"#,
            r#"<Reference URI="&#35;x"/>"#,
            r##"<Reference URI="#a b"/>"##,
            r##"<Reference URI="#"/>"##,
            r#"<Reference URI="unterminated"#,
        ] {
            assert!(!same_document_uris(bad), "{bad}");
        }
    }

    #[test]
    fn the_root_is_found_past_the_prolog() {
        assert_eq!(
            root_local_name("<?xml version=\"1.0\"?><!-- c --><saml2:Assertion ID=\"a\">"),
            Some("Assertion")
        );
        assert_eq!(root_local_name("<Response>"), Some("Response"));
        assert_eq!(root_local_name("text"), None);
    }

    #[test]
    fn decoding_is_bounded_before_base64() {
        let huge = "A".repeat(MAX_SAML_RESPONSE_BYTES + 1);
        assert!(
            matches!(decode_response(&huge), Err(SamlError::BadRequest(m)) if m.contains("too large"))
        );
        assert!(matches!(decode_response(""), Err(SamlError::BadRequest(_))));
        assert!(matches!(
            decode_response("%%%"),
            Err(SamlError::BadRequest(_))
        ));
        // Line breaks, as IdPs wrap base64, are fine.
        assert_eq!(decode_response("PGE+\r\nPC9hPg==").unwrap(), "<a></a>");
    }

    #[test]
    fn a_document_type_is_refused_before_any_parser() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><samlp:Response>&b;</samlp:Response>"#;
        let external = r#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        for xml in [laughs, external] {
            let encoded = BASE64.encode(xml.as_bytes());
            assert!(
                matches!(decode_response(&encoded), Err(SamlError::BadRequest(m)) if m.contains("document type")),
                "{xml}"
            );
        }
    }
}
