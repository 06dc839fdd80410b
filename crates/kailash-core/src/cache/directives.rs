//! Parsing of the header fields a cache reads: `Cache-Control` (RFC 9111
//! §5.2), `Vary`, entity tags (RFC 9110 §8.8.3) and HTTP dates (§5.6.7).
//! Every parser is total: malformed input gives the conservative reading
//! (not storable, not fresh, no match), never a panic.

use http::header::{self, HeaderMap, HeaderName};
use jiff::Timestamp;

/// The largest delta-seconds value kept (RFC 9111 §1.2.2: 2^31).
const MAX_DELTA: u64 = 1 << 31;

/// The `Cache-Control` directives a cache acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CacheControl {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) private: bool,
    pub(crate) public: bool,
    /// `Some(None)` when present with an invalid value.
    pub(crate) max_age: Option<Option<u64>>,
    pub(crate) s_maxage: Option<Option<u64>>,
}

impl CacheControl {
    /// The directives of every `Cache-Control` field in `headers`; a
    /// request without one but with `Pragma: no-cache` reads as `no-cache`
    /// (RFC 9111 §5.4).
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut cc = Self::default();
        let mut any = false;
        for value in headers.get_all(header::CACHE_CONTROL) {
            any = true;
            // A field that is not visible ASCII cannot be read: stay safe.
            let Ok(text) = value.to_str() else {
                cc.no_store = true;
                continue;
            };
            for (name, arg) in split_directives(text) {
                cc.apply(&name, arg);
            }
        }
        if !any {
            for value in headers.get_all(header::PRAGMA) {
                if value.to_str().is_ok_and(|t| {
                    t.split(',')
                        .any(|p| p.trim().eq_ignore_ascii_case("no-cache"))
                }) {
                    cc.no_cache = true;
                }
            }
        }
        cc
    }

    fn apply(&mut self, name: &str, arg: Option<String>) {
        let delta = |arg: Option<String>| arg.as_deref().and_then(delta_seconds);
        if name.eq_ignore_ascii_case("no-store") {
            self.no_store = true;
        } else if name.eq_ignore_ascii_case("no-cache") {
            // The qualified form (`no-cache="field"`) is read like the
            // unqualified one: the cache never stores what it cannot strip.
            self.no_cache = true;
        } else if name.eq_ignore_ascii_case("private") {
            self.private = true;
        } else if name.eq_ignore_ascii_case("public") {
            self.public = true;
        } else if name.eq_ignore_ascii_case("max-age") {
            if self.max_age.is_none() {
                self.max_age = Some(delta(arg));
            } else {
                // Conflicting duplicates: the stricter reading (RFC 9111 §4.2.1).
                self.max_age = Some(None);
            }
        } else if name.eq_ignore_ascii_case("s-maxage") {
            if self.s_maxage.is_none() {
                self.s_maxage = Some(delta(arg));
            } else {
                self.s_maxage = Some(None);
            }
        }
    }
}

/// `name[=token|"quoted"]` pairs, names lowercase-insensitive as given.
fn split_directives(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && !matches!(bytes[i], b',' | b'=' | b' ' | b'\t') {
            i += 1;
        }
        let name = text.get(start..i).unwrap_or_default().to_owned();
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        let mut arg = None;
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
                let mut value = String::new();
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        i += 1;
                    }
                    value.push(char::from(bytes[i]));
                    i += 1;
                }
                i += 1;
                arg = Some(value);
            } else {
                let s = i;
                while i < bytes.len() && bytes[i] != b',' {
                    i += 1;
                }
                arg = Some(text.get(s..i).unwrap_or_default().trim().to_owned());
            }
        }
        // Skip anything up to the next comma (malformed trailing text).
        while i < bytes.len() && bytes[i] != b',' {
            i += 1;
        }
        if !name.is_empty() {
            out.push((name, arg));
        }
    }
    out
}

/// A delta-seconds value (digits only), saturated at 2^31.
pub(crate) fn delta_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().map_or(MAX_DELTA, |v| v.min(MAX_DELTA)))
}

/// What a response's `Vary` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Vary {
    /// The response varies on something outside the request: never stored.
    Any,
    /// The request fields the response was selected by (lowercase names).
    Fields(Vec<HeaderName>),
}

impl Vary {
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut fields = Vec::new();
        for value in headers.get_all(header::VARY) {
            let Ok(text) = value.to_str() else {
                return Self::Any;
            };
            for part in text.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                if part == "*" {
                    return Self::Any;
                }
                match HeaderName::from_bytes(part.as_bytes()) {
                    Ok(name) if !fields.contains(&name) => fields.push(name),
                    Ok(_) => {}
                    // A field name that is not one cannot be matched.
                    Err(_) => return Self::Any,
                }
            }
        }
        Self::Fields(fields)
    }
}

/// Whether any entity tag in an `If-None-Match` list matches `etag` by the
/// weak comparison (RFC 9110 §8.8.3.2: opaque tags equal, `W/` ignored).
/// `*` matches any stored representation.
pub(crate) fn if_none_match(headers: &HeaderMap, etag: &str) -> Option<bool> {
    let mut seen = false;
    let stored = opaque(etag.trim())?;
    for value in headers.get_all(header::IF_NONE_MATCH) {
        seen = true;
        let Ok(text) = value.to_str() else { continue };
        if text.trim() == "*" {
            return Some(true);
        }
        let mut rest = text;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let Some((tag, after)) = next_tag(rest) else {
                break;
            };
            if tag == stored {
                return Some(true);
            }
            rest = after;
        }
    }
    seen.then_some(false)
}

/// The opaque tag (with its quotes) of an entity tag, `W/` dropped.
fn opaque(tag: &str) -> Option<&str> {
    let (t, rest) = next_tag(tag)?;
    rest.trim().is_empty().then_some(t)
}

/// The first entity tag of `text` (its opaque part, quotes included) and
/// what follows it.
fn next_tag(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix("W/").unwrap_or(text);
    let inner = body.strip_prefix('"')?;
    let end = inner.find('"')?;
    let tag = body.get(..end + 2)?;
    if !tag[1..=end]
        .bytes()
        .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
    {
        return None;
    }
    Some((tag, body.get(end + 2..)?))
}

/// An HTTP date (IMF-fixdate, and the RFC 850 and asctime forms read by
/// their RFC 2822 equivalent where jiff accepts them); `None` when invalid.
pub(crate) fn http_date(value: &http::HeaderValue) -> Option<Timestamp> {
    let text = value.to_str().ok()?.trim();
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cache_control_directives() {
        let cc = CacheControl::parse(&headers(&[(
            "cache-control",
            "Private, max-age=60, s-maxage=\"120\", foo=\"a,b\", No-Cache",
        )]));
        assert!(cc.private && cc.no_cache && !cc.public && !cc.no_store);
        assert_eq!(cc.max_age, Some(Some(60)));
        assert_eq!(cc.s_maxage, Some(Some(120)));
        let cc = CacheControl::parse(&headers(&[("cache-control", "max-age=abc")]));
        assert_eq!(cc.max_age, Some(None));
        let cc = CacheControl::parse(&headers(&[(
            "cache-control",
            "max-age=99999999999999999999",
        )]));
        assert_eq!(cc.max_age, Some(Some(MAX_DELTA)));
        let cc = CacheControl::parse(&headers(&[("cache-control", "max-age=5, max-age=10")]));
        assert_eq!(cc.max_age, Some(None));
        let cc = CacheControl::parse(&headers(&[("pragma", "no-cache")]));
        assert!(cc.no_cache);
        for junk in ["", ",,,", "=", "\"", "max-age=\"", "a=\"\\", "  ,= ,"] {
            let mut h = HeaderMap::new();
            h.insert("cache-control", HeaderValue::from_str(junk).unwrap());
            let _ = CacheControl::parse(&h);
        }
    }

    #[test]
    fn vary_fields_and_star() {
        assert_eq!(
            Vary::parse(&headers(&[("vary", "Accept-Language, accept")])),
            Vary::Fields(vec![
                HeaderName::from_static("accept-language"),
                HeaderName::from_static("accept")
            ])
        );
        assert_eq!(Vary::parse(&headers(&[("vary", "accept, *")])), Vary::Any);
        assert_eq!(Vary::parse(&headers(&[("vary", "a b")])), Vary::Any);
        assert_eq!(Vary::parse(&HeaderMap::new()), Vary::Fields(vec![]));
    }

    #[test]
    fn weak_comparison_of_entity_tags() {
        let h = headers(&[("if-none-match", "\"x\", W/\"v1\"")]);
        assert_eq!(if_none_match(&h, "\"v1\""), Some(true));
        assert_eq!(if_none_match(&h, "W/\"x\""), Some(true));
        assert_eq!(if_none_match(&h, "\"v2\""), Some(false));
        let h = headers(&[("if-none-match", "\"a,b\"")]);
        assert_eq!(if_none_match(&h, "\"a,b\""), Some(true));
        assert_eq!(if_none_match(&h, "\"a\""), Some(false));
        assert_eq!(
            if_none_match(&headers(&[("if-none-match", "*")]), "\"q\""),
            Some(true)
        );
        assert_eq!(if_none_match(&HeaderMap::new(), "\"q\""), None);
        // A stored tag that is not one never matches.
        assert_eq!(
            if_none_match(&headers(&[("if-none-match", "*")]), "bare"),
            None
        );
        for junk in ["\"", "W/", "W/\"", ",\"", "\"\"\""] {
            let mut h = HeaderMap::new();
            h.insert("if-none-match", HeaderValue::from_str(junk).unwrap());
            let _ = if_none_match(&h, "\"x\"");
        }
    }

    proptest::proptest! {
        /// Any field value a client or handler can send: parsed without a
        /// panic, whatever it reads as.
        #[test]
        fn parsers_take_any_field_value(value in "[ -~\t]{0,64}", tag in "(W/)?\"[ -~]{0,8}\"?") {
            if let Ok(v) = HeaderValue::from_str(&value) {
                let mut h = HeaderMap::new();
                for name in ["cache-control", "vary", "if-none-match", "pragma"] {
                    h.insert(name, v.clone());
                }
                let _ = CacheControl::parse(&h);
                let _ = Vary::parse(&h);
                let _ = if_none_match(&h, &tag);
                let _ = http_date(&v);
            }
        }
    }

    #[test]
    fn http_dates() {
        let t = http_date(&HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(t.map(|t| t.as_second()), Some(784_111_777));
        assert_eq!(http_date(&HeaderValue::from_static("0")), None);
        assert_eq!(http_date(&HeaderValue::from_static("")), None);
    }
}
