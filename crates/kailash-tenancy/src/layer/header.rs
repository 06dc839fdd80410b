//! The `X-Tenant-ID` header: read strictly, because a lenient parser would
//! let two spellings of one tenant disagree with the token's.

use http::{HeaderMap, HeaderName};
use kailash_core::TenantId;

use super::refusal::Refusal;

/// The header a client may name its tenant in (when enabled).
pub const TENANT_HEADER: HeaderName = HeaderName::from_static("x-tenant-id");

/// The tenant in the `X-Tenant-ID` header: `Ok(None)` when absent; an error
/// when repeated, not visible ASCII, or not a valid [`TenantId`].
pub(super) fn header_tenant(headers: &HeaderMap) -> Result<Option<TenantId>, Refusal> {
    let mut values = headers.get_all(&TENANT_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::MalformedHeader);
    }
    let text = value.to_str().map_err(|_| Refusal::MalformedHeader)?;
    TenantId::new(text)
        .map(Some)
        .map_err(|_| Refusal::MalformedHeader)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(&TENANT_HEADER, http::HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    #[test]
    fn header_is_parsed_strictly() {
        assert_eq!(header_tenant(&headers(&[])), Ok(None));
        assert_eq!(header_tenant(&headers(&[b"acme"])), Ok(Some(id("acme"))));
        for bad in [
            &b" acme"[..],
            b"acme ",
            b"Acme",
            b"ac me",
            b"",
            b"ac\tme",
            b"\xc3\xa9",
        ] {
            assert_eq!(
                header_tenant(&headers(&[bad])),
                Err(Refusal::MalformedHeader),
                "{bad:?}"
            );
        }
        assert_eq!(
            header_tenant(&headers(&[b"acme", b"acme"])),
            Err(Refusal::MalformedHeader)
        );
    }
}
