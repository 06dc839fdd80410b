//! Which request paths a guard layer lets through untouched (login, health
//! checks, a JWKS document): one segment-aware matcher for every layer, so
//! authentication and tenancy can never disagree about what is public.
//!
//! Exact paths match exactly. Prefixes match whole segments — `/public`
//! matches `/public` and `/public/x`, never `/publicity` — and a path with a
//! `.` or `..` segment (also percent-encoded) is never public under a
//! prefix: a router that normalises `/public/../admin` after the guard must
//! not receive it as public.
//!
//! ```
//! use kailash_core::public::PublicPaths;
//!
//! let public = PublicPaths::new().path("/auth/login").prefix("/docs");
//! assert!(public.contains("/auth/login"));
//! assert!(!public.contains("/auth/loginx"));
//! assert!(public.contains("/docs/app.js"));
//! assert!(!public.contains("/docsx"));
//! assert!(!public.contains("/docs/../api/admin"));
//! ```

/// The exact paths and the path prefixes a layer lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicPaths {
    paths: Vec<String>,
    prefixes: Vec<String>,
}

impl PublicPaths {
    /// Nothing public.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also lets `path` through, exactly.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.add_path(path);
        self
    }

    /// Also lets through `prefix` and every path below it (whole segments).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.add_prefix(prefix);
        self
    }

    /// Adds an exact path in place.
    pub fn add_path(&mut self, path: impl Into<String>) {
        self.paths.push(path.into());
    }

    /// Adds a prefix in place.
    pub fn add_prefix(&mut self, prefix: impl Into<String>) {
        self.prefixes.push(prefix.into());
    }

    /// Whether nothing is public.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.prefixes.is_empty()
    }

    /// Whether `path` passes untouched.
    pub fn contains(&self, path: &str) -> bool {
        if self.paths.iter().any(|p| p == path) {
            return true;
        }
        if self.prefixes.is_empty() || has_dot_segment(path) {
            return false;
        }
        self.prefixes.iter().any(|prefix| under(path, prefix))
    }
}

/// Whether `path` is `prefix` or below it, by whole segments (`/a` covers
/// `/a` and `/a/b`, not `/ab`): the one prefix rule of every layer that
/// applies to route groups (allow-lists, the HTTPS policy's exemptions,
/// DLP rules, public paths).
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'))
}

/// [`under`] for a path that is let *through* by the prefix (an exemption):
/// never for a path with a `.` or `..` segment, which a router normalising
/// after the layer could turn into a path outside the prefix.
pub(crate) fn exempt_under(path: &str, prefix: &str) -> bool {
    under(path, prefix) && !has_dot_segment(path)
}

/// Whether any segment of `path` is `.` or `..` (also percent-encoded).
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_detected() {
        assert!(has_dot_segment("/public/../admin"));
        assert!(has_dot_segment("/public/%2E%2e/admin"));
        assert!(has_dot_segment("/public/./x"));
        assert!(!has_dot_segment("/public/.well-known"));
        assert!(!has_dot_segment("/public/x"));
    }

    #[test]
    fn prefixes_match_whole_segments_and_paths_match_exactly() {
        let public = PublicPaths::new()
            .path("/auth/login")
            .prefix("/public")
            .prefix("/assets/");
        assert!(public.contains("/public"));
        assert!(public.contains("/public/x/y"));
        assert!(!public.contains("/publicity"));
        assert!(public.contains("/assets/app.css"));
        assert!(!public.contains("/auth/login/extra"));
        assert!(!public.contains("/auth/logi"));
        assert!(!public.contains("/public/%2e%2e/admin"));
        assert!(!PublicPaths::new().contains("/"));
    }
}
