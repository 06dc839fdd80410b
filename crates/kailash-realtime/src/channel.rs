//! [`ChannelRules`]: which permission subscribing to a channel needs.
//!
//! Rules map a channel pattern to a permission: `workflows` (exactly that
//! channel), `workflows.*` (every channel starting with `workflows.`) or
//! `*` (every channel). The first rule that matches decides, so list the
//! specific ones first. A channel no rule matches cannot be subscribed to
//! (deny by default).
//!
//! ```
//! use kailash_realtime::channel::{ChannelRule, ChannelRules};
//!
//! let rules = ChannelRules::new(vec![
//!     ChannelRule::new("audit.*", Some("audit:view")).unwrap(),
//!     ChannelRule::new("workflows", Some("workflow:view")).unwrap(),
//!     ChannelRule::new("news", None).unwrap(),
//! ]);
//! assert_eq!(rules.required("audit.logins").unwrap().unwrap().as_str(), "audit:view");
//! assert!(rules.required("news").unwrap().is_none()); // any connection of the tenant
//! assert!(rules.required("secrets").is_none()); // no rule: refused
//! ```

use kailash_access::permission::Permission;
use serde::{Deserialize, Serialize};

use crate::error::RealtimeError;
use crate::event::valid_channel;

/// One channel pattern and the permission it requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    /// `name`, `prefix.*` or `*`.
    pub pattern: String,
    /// The permission a subscriber needs; `None`: any connection of the tenant.
    #[serde(default)]
    pub permission: Option<Permission>,
}

impl ChannelRule {
    /// A rule; fails for a pattern that is not `name`, `prefix.*` or `*`,
    /// or a permission that is not `resource:action`.
    pub fn new(pattern: &str, permission: Option<&str>) -> Result<Self, RealtimeError> {
        let rule = Self {
            pattern: pattern.to_owned(),
            permission: permission
                .map(Permission::parse)
                .transpose()
                .map_err(|_| RealtimeError::InvalidPermission)?,
        };
        rule.validate()?;
        Ok(rule)
    }

    /// Checks the pattern.
    pub fn validate(&self) -> Result<(), RealtimeError> {
        let ok = self.pattern == "*"
            || match self.pattern.strip_suffix(".*") {
                Some(prefix) => valid_channel(prefix),
                None => valid_channel(&self.pattern),
            };
        if ok {
            Ok(())
        } else {
            Err(RealtimeError::Config(
                "a channel pattern is not `name`, `prefix.*` or `*`",
            ))
        }
    }

    fn matches(&self, channel: &str) -> bool {
        if self.pattern == "*" {
            return true;
        }
        match self.pattern.strip_suffix('*') {
            // `prefix.*`: the prefix with its dot, and something after it.
            Some(prefix) => channel.len() > prefix.len() && channel.starts_with(prefix),
            None => self.pattern == channel,
        }
    }
}

/// The ordered channel rules; see the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelRules {
    rules: Vec<ChannelRule>,
}

impl ChannelRules {
    /// Rules in order of precedence.
    pub fn new(rules: Vec<ChannelRule>) -> Self {
        Self { rules }
    }

    /// `None` when no rule matches `channel` (refuse); otherwise the
    /// permission the first matching rule requires.
    pub fn required(&self, channel: &str) -> Option<Option<&Permission>> {
        self.rules
            .iter()
            .find(|r| r.matches(channel))
            .map(|r| r.permission.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_prefixes() {
        let r = ChannelRule::new("a.*", None).unwrap();
        assert!(r.matches("a.b") && r.matches("a.b.c"));
        assert!(!r.matches("a") && !r.matches("a.") && !r.matches("ab.c"));
        for bad in ["", "a b", "a*", "*.a", "a.**"] {
            assert!(ChannelRule::new(bad, None).is_err(), "{bad}");
        }
        assert!(ChannelRule::new("a", Some("nope")).is_err());
    }
}
