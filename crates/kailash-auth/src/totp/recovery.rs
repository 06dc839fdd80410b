//! One-time recovery codes, stored as SHA-256 hashes.

use std::fmt;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::TotpError;

/// How many codes [`RecoveryCodes::generate_default`] makes.
pub const DEFAULT_RECOVERY_CODES: usize = 10;
/// The most codes [`RecoveryCodes::generate`] makes at once.
pub const MAX_RECOVERY_CODES: usize = 100;
/// Base32 characters per code (80 bits).
const CODE_CHARS: usize = 16;

/// A plaintext recovery code (four dash-separated groups of four base32
/// characters), shown to the user once.
///
/// `Debug` prints `RecoveryCode(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// The formatted code, to show to the user.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(***)")
    }
}

/// The stored form of a user's recovery codes: lower-case hex SHA-256 of
/// each normalised code (16 upper-case base32 characters, no dashes).
///
/// Codes carry 80 random bits, so an unsalted fast hash is enough: the
/// stored hashes cannot be reversed by search. `Debug` shows only the count.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryCodes {
    /// Hex SHA-256 of each unused code.
    pub hashes: Vec<String>,
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("remaining", &self.hashes.len())
            .finish_non_exhaustive()
    }
}

impl RecoveryCodes {
    /// [`DEFAULT_RECOVERY_CODES`] new codes.
    pub fn generate_default() -> Result<(Self, Vec<RecoveryCode>), TotpError> {
        Self::generate(DEFAULT_RECOVERY_CODES)
    }

    /// `n` new codes (at most [`MAX_RECOVERY_CODES`]) from the OS random
    /// number generator: the stored form and the plaintext codes to show once.
    pub fn generate(n: usize) -> Result<(Self, Vec<RecoveryCode>), TotpError> {
        if n > MAX_RECOVERY_CODES {
            return Err(TotpError::InvalidConfig("at most 100 recovery codes"));
        }
        let mut hashes = Vec::with_capacity(n);
        let mut codes = Vec::with_capacity(n);
        for _ in 0..n {
            let mut bytes = [0u8; 10];
            getrandom::fill(&mut bytes).map_err(|_| TotpError::Rng)?;
            let raw = data_encoding::BASE32_NOPAD.encode(&bytes);
            hashes.push(hash_normalised(&raw));
            let mut formatted = String::with_capacity(CODE_CHARS + 3);
            for (i, c) in raw.chars().enumerate() {
                if i > 0 && i % 4 == 0 {
                    formatted.push('-');
                }
                formatted.push(c);
            }
            codes.push(RecoveryCode(formatted));
        }
        Ok((Self { hashes }, codes))
    }

    /// How many unused codes remain.
    pub fn remaining(&self) -> usize {
        self.hashes.len()
    }

    /// Uses `code`: when it matches an unused code, that code is removed and
    /// `true` returned. Case, dashes and whitespace are ignored.
    ///
    /// The input's hash is compared with every stored hash in constant time,
    /// without stopping at a match.
    pub fn consume(&mut self, code: &str) -> bool {
        if code.len() > 64 {
            return false;
        }
        let normalised: String = code
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if normalised.len() != CODE_CHARS {
            return false;
        }
        let candidate = hash_normalised(&normalised);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, stored) in self.hashes.iter().enumerate() {
            let eq = stored.as_bytes().ct_eq(candidate.as_bytes());
            let take = eq & !found;
            index = u64::conditional_select(&index, &(i as u64), take);
            found |= eq;
        }
        if !bool::from(found) {
            return false;
        }
        match usize::try_from(index) {
            Ok(i) if i < self.hashes.len() => {
                self.hashes.remove(i);
                true
            }
            _ => false,
        }
    }
}

fn hash_normalised(code: &str) -> String {
    let d = digest::digest(&digest::SHA256, code.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in d.as_ref() {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    hex
}
