//! The `Origin` check of an upgrade request (cross-site WebSocket
//! hijacking: a page on another site opening a socket with the user's
//! cookie).

use http::HeaderMap;
use http::header::{HOST, ORIGIN};

/// The allowed origins, normalised (no trailing slash, lower case).
#[derive(Debug, Clone, Default)]
pub(super) struct Origins {
    any: bool,
    list: Vec<String>,
}

impl Origins {
    pub(super) fn new(origins: &[String]) -> Self {
        Self {
            any: origins.iter().any(|o| o == "*"),
            list: origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether the request may upgrade: no `Origin` (not a browser), an
    /// allowed one, or — with no list — the request's own host.
    pub(super) fn allows(&self, headers: &HeaderMap) -> bool {
        let mut origins = headers.get_all(ORIGIN).iter();
        let origin = match (origins.next(), origins.next()) {
            (None, _) => return true,
            (Some(o), None) => o,
            (Some(_), Some(_)) => return false,
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if self.any {
            return true;
        }
        if self.list.is_empty() {
            let host = headers.get(HOST).and_then(|h| h.to_str().ok());
            let authority = origin.split_once("://").map(|(_, rest)| rest);
            return matches!((host, authority), (Some(h), Some(a)) if h.eq_ignore_ascii_case(a));
        }
        self.list.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origins_are_matched_exactly() {
        let list = Origins::new(&["https://app.example/".into()]);
        assert!(list.allows(&headers(&[])));
        assert!(list.allows(&headers(&[("origin", "https://APP.example")])));
        assert!(!list.allows(&headers(&[("origin", "https://app.example.evil")])));
        assert!(!list.allows(&headers(&[("origin", "http://app.example")])));
        assert!(!list.allows(&headers(&[("origin", "null")])));
        let own = Origins::new(&[]);
        assert!(own.allows(&headers(&[("origin", "http://h:1"), ("host", "h:1")])));
        assert!(!own.allows(&headers(&[("origin", "http://evil"), ("host", "h:1")])));
        assert!(Origins::new(&["*".into()]).allows(&headers(&[("origin", "https://x")])));
    }
}
