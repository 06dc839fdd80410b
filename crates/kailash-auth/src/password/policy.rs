//! Complexity rules for setting or changing a password.

use serde::{Deserialize, Serialize};

use super::Password;

/// A small embedded list of very common passwords (lower case), including
/// the common ones long enough to pass the length rule.
const COMMON_PASSWORDS: &[&str] = &[
    "123456",
    "123456789",
    "12345678",
    "1234567890",
    "123456789012",
    "1234567890123",
    "12345678901234",
    "111111111111",
    "000000000000",
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "password12345",
    "password123!",
    "password1234!",
    "passw0rd",
    "p@ssw0rd",
    "p@ssw0rd123",
    "p@ssw0rd1234",
    "p@ssword1234",
    "qwerty",
    "qwerty123",
    "qwerty123456",
    "qwertyuiop",
    "qwertyuiop123",
    "qwertyuiop[]",
    "qwerty123456!",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "1qaz2wsx3edc4rfv",
    "zaq12wsxcde3",
    "asdfghjkl123",
    "abc123456789",
    "abcdefghijkl",
    "abcd1234abcd",
    "iloveyou",
    "iloveyou1234",
    "iloveyou123!",
    "welcome",
    "welcome12345",
    "welcome123!",
    "welcome@1234",
    "letmein",
    "letmein12345",
    "letmein123!",
    "admin",
    "admin1234567",
    "administrator",
    "administrator1",
    "changeme",
    "changeme1234",
    "changeme123!",
    "monkey",
    "dragon",
    "football",
    "football1234",
    "baseball",
    "baseball1234",
    "sunshine",
    "sunshine1234",
    "princess",
    "princess1234",
    "superman",
    "superman1234",
    "trustno1",
    "starwars",
    "starwars1234",
    "master",
    "master123456",
    "whatever",
    "whatever1234",
    "shadow",
    "michael",
    "jennifer",
    "computer",
    "internet",
    "secret",
    "secret123456",
    "summer2024!",
    "summer2025!",
    "summer2026!",
    "winter2024!",
    "winter2025!",
    "winter2026!",
    "spring2025!",
    "autumn2025!",
    "correcthorsebatterystaple",
    "correct horse battery staple",
    "mypassword123",
    "mypassword1234",
    "newpassword1",
    "newpassword123",
    "test12345678",
    "testtest1234",
    "password!password",
];

/// Usernames shorter than this are not looked for inside a password (a
/// one-letter username would forbid almost every password).
const MIN_USERNAME_CHECKED: usize = 3;

/// One rule a password breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Fewer characters than required.
    TooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// More characters (or bytes than [`MAX_PASSWORD_BYTES`](super::MAX_PASSWORD_BYTES)) than allowed.
    TooLong {
        /// The maximum, in characters.
        max: usize,
    },
    /// Not enough of the four character classes (lower, upper, digit, symbol).
    TooFewCharacterClasses {
        /// How many classes are required.
        required: u8,
        /// How many the password has.
        found: u8,
    },
    /// The password contains the username (case-insensitive).
    ContainsUsername,
    /// The password is on the list of very common passwords.
    Common,
    /// The password starts or ends with whitespace.
    SurroundingWhitespace,
}

impl std::fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort { min } => write!(f, "shorter than {min} characters"),
            Self::TooLong { max } => write!(f, "longer than {max} characters"),
            Self::TooFewCharacterClasses { required, found } => write!(
                f,
                "uses {found} of lower case, upper case, digits and symbols; {required} required"
            ),
            Self::ContainsUsername => f.write_str("contains the username"),
            Self::Common => f.write_str("is a very common password"),
            Self::SurroundingWhitespace => f.write_str("starts or ends with whitespace"),
        }
    }
}

/// Every rule a password breaks (never the password itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password does not meet the policy: {}", list(.violations))]
pub struct PolicyError {
    /// The broken rules, in the order the rules are listed on [`PasswordPolicy`].
    pub violations: Vec<PolicyViolation>,
}

fn list(v: &[PolicyViolation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Complexity rules for new passwords.
///
/// Deserializes from configuration (unknown fields are refused; missing
/// fields take the defaults):
///
/// ```
/// use kailash_auth::password::{Password, PasswordPolicy, PolicyViolation};
///
/// let policy: PasswordPolicy = serde_json::from_str(r#"{ "min_length": 14 }"#)?;
/// let err = policy.validate(&Password::new("alice-Secret-1"), "alice").unwrap_err();
/// assert_eq!(err.violations, vec![PolicyViolation::ContainsUsername]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPolicy")]
pub struct PasswordPolicy {
    /// Minimum length in characters (default 12).
    pub min_length: usize,
    /// Maximum length in characters (default 128).
    pub max_length: usize,
    /// How many of lower case, upper case, digits and symbols must appear
    /// (0 to 4, default 3). Characters that are neither cased letters nor
    /// digits count as symbols.
    pub min_character_classes: u8,
    /// Refuse passwords containing the username, ignoring case (default
    /// true). Usernames shorter than 3 characters are not checked.
    pub reject_username: bool,
    /// Refuse passwords on the embedded list of very common passwords,
    /// ignoring case (default true).
    pub reject_common: bool,
    /// Refuse passwords starting or ending with whitespace (default true).
    pub reject_surrounding_whitespace: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 12,
            max_length: 128,
            min_character_classes: 3,
            reject_username: true,
            reject_common: true,
            reject_surrounding_whitespace: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPolicy {
    min_length: usize,
    max_length: usize,
    min_character_classes: u8,
    reject_username: bool,
    reject_common: bool,
    reject_surrounding_whitespace: bool,
}

impl Default for RawPolicy {
    fn default() -> Self {
        let d = PasswordPolicy::default();
        Self {
            min_length: d.min_length,
            max_length: d.max_length,
            min_character_classes: d.min_character_classes,
            reject_username: d.reject_username,
            reject_common: d.reject_common,
            reject_surrounding_whitespace: d.reject_surrounding_whitespace,
        }
    }
}

impl TryFrom<RawPolicy> for PasswordPolicy {
    type Error = &'static str;
    fn try_from(r: RawPolicy) -> Result<Self, Self::Error> {
        if r.min_character_classes > 4 {
            return Err("min_character_classes must be between 0 and 4");
        }
        if r.min_length > r.max_length {
            return Err("min_length must not exceed max_length");
        }
        if r.max_length == 0 || r.max_length > crate::bounds::MAX_PASSWORD_CHARS {
            return Err("max_length must be between 1 and 1024");
        }
        Ok(Self {
            min_length: r.min_length,
            max_length: r.max_length,
            min_character_classes: r.min_character_classes,
            reject_username: r.reject_username,
            reject_common: r.reject_common,
            reject_surrounding_whitespace: r.reject_surrounding_whitespace,
        })
    }
}

impl PasswordPolicy {
    /// Checks `password` for the account `username`; the error lists every
    /// rule broken.
    pub fn validate(&self, password: &Password, username: &str) -> Result<(), PolicyError> {
        let mut violations = Vec::new();
        let text = password.expose();
        if text.len() > super::MAX_PASSWORD_BYTES {
            // Do not spend further work on oversized input.
            return Err(PolicyError {
                violations: vec![PolicyViolation::TooLong {
                    max: self.max_length,
                }],
            });
        }
        let chars = text.chars().count();
        if chars < self.min_length {
            violations.push(PolicyViolation::TooShort {
                min: self.min_length,
            });
        }
        if chars > self.max_length {
            violations.push(PolicyViolation::TooLong {
                max: self.max_length,
            });
        }
        let (mut lower, mut upper, mut digit, mut symbol) = (false, false, false, false);
        for c in text.chars() {
            if c.is_lowercase() {
                lower = true;
            } else if c.is_uppercase() {
                upper = true;
            } else if c.is_numeric() {
                digit = true;
            } else {
                symbol = true;
            }
        }
        let found = u8::from(lower) + u8::from(upper) + u8::from(digit) + u8::from(symbol);
        if found < self.min_character_classes {
            violations.push(PolicyViolation::TooFewCharacterClasses {
                required: self.min_character_classes,
                found,
            });
        }
        let lowered = text.to_lowercase();
        let user = username.trim().to_lowercase();
        if self.reject_username
            && user.chars().count() >= MIN_USERNAME_CHECKED
            && lowered.contains(&user)
        {
            violations.push(PolicyViolation::ContainsUsername);
        }
        if self.reject_common && COMMON_PASSWORDS.contains(&lowered.as_str()) {
            violations.push(PolicyViolation::Common);
        }
        if self.reject_surrounding_whitespace && text.trim() != text {
            violations.push(PolicyViolation::SurroundingWhitespace);
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(PolicyError { violations })
        }
    }
}
