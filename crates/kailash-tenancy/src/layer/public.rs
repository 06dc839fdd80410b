//! Paths that need no tenant (health checks, login), and why a `..` never
//! makes a path public.

/// The exact paths and the path prefixes that pass through untouched.
#[derive(Debug, Clone, Default)]
pub(super) struct PublicPaths {
    paths: Vec<String>,
    prefixes: Vec<String>,
}

impl PublicPaths {
    pub(super) fn add_path(&mut self, path: String) {
        self.paths.push(path);
    }

    pub(super) fn add_prefix(&mut self, prefix: String) {
        self.prefixes.push(prefix);
    }

    /// Whether `path` needs no tenant. Prefixes match whole segments, and a
    /// path with a dot segment is never public under a prefix: a router that
    /// normalises `/public/../admin` after us must not see it as public.
    pub(super) fn contains(&self, path: &str) -> bool {
        if self.paths.iter().any(|p| p == path) {
            return true;
        }
        if self.prefixes.is_empty() || has_dot_segment(path) {
            return false;
        }
        self.prefixes.iter().any(|prefix| {
            path.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/')
            })
        })
    }
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
}
