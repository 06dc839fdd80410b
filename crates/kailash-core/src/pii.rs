//! Personal data and secrets in text: detection and redaction.
//!
//! [`PiiDetector`] finds e-mail addresses, phone numbers, payment card
//! numbers, US social security numbers, IBANs, IP addresses and secrets
//! that look like tokens or keys. Every candidate a pattern finds is then
//! *validated*, so a run of digits is not a card unless it has a card
//! network's prefix and length and passes the Luhn check, an IBAN must
//! pass ISO 7064 mod 97, an SSN must have a valid area, group and serial,
//! and an address must parse. [`PiiDetector::redact`] replaces each finding
//! with `[REDACTED:<kind>]`.
//!
//! What is detected, precisely:
//!
//! | kind | matches |
//! |---|---|
//! | `email` | `local@domain.tld` |
//! | `phone` | E.164 (`+4930123456`) and North American `(555) 123-4567`, `555-123-4567`, `555.123.4567` |
//! | `payment_card` | 13–19 digits (spaces or dashes allowed) with a Visa, Mastercard, Amex, Discover, JCB, Diners or UnionPay prefix, passing Luhn |
//! | `us_ssn` | `AAA-GG-SSSS`, area not 000, 666 or 9xx, group not 00, serial not 0000 |
//! | `iban` | country code, check digits and 11–30 characters, passing mod 97 |
//! | `ip_address` | IPv4 and IPv6 addresses that parse |
//! | `secret` | JWTs, Stripe-, GitHub-, Slack- and AWS-style keys, PEM private keys |
//!
//! ```
//! use kailash_core::pii::{PiiDetector, PiiKind};
//!
//! let detector = PiiDetector::all();
//! let text = "card 4111 1111 1111 1111, mail ann@example.com, order 1733280000000";
//! assert_eq!(
//!     detector.redact(text),
//!     "card [REDACTED:payment_card], mail [REDACTED:email], order 1733280000000"
//! );
//! let only_mail = PiiDetector::new([PiiKind::Email]);
//! assert_eq!(only_mail.find(text).len(), 1);
//! ```

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// A kind of personal data or secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PiiKind {
    /// A secret: a token or key.
    Secret,
    /// A payment card number.
    PaymentCard,
    /// An IBAN.
    Iban,
    /// A US social security number.
    UsSsn,
    /// An e-mail address.
    Email,
    /// An IP address.
    IpAddress,
    /// A phone number.
    Phone,
}

impl PiiKind {
    /// Every kind, in the order overlapping findings are preferred.
    pub const ALL: [PiiKind; 7] = [
        PiiKind::Secret,
        PiiKind::PaymentCard,
        PiiKind::Iban,
        PiiKind::UsSsn,
        PiiKind::Email,
        PiiKind::IpAddress,
        PiiKind::Phone,
    ];

    /// The kind's name (`payment_card`).
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::Secret => "secret",
            PiiKind::PaymentCard => "payment_card",
            PiiKind::Iban => "iban",
            PiiKind::UsSsn => "us_ssn",
            PiiKind::Email => "email",
            PiiKind::IpAddress => "ip_address",
            PiiKind::Phone => "phone",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for PiiKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding: its kind and byte range in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: PiiKind,
    /// Where it starts (byte offset).
    pub start: usize,
    /// Where it ends (byte offset, exclusive).
    pub end: usize,
}

/// The candidate patterns, one per kind in [`PiiKind::ALL`] order. ASCII
/// word boundaries (`(?-u:\b)`): the text's other scripts do not matter.
static PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // Secret
        concat!(
            r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
            r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
            r"|gh[pousr]_[A-Za-z0-9]{36,}",
            r"|(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
            r"|xox[abposr]-[A-Za-z0-9-]{10,}",
            r"|-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----",
        ),
        // PaymentCard
        r"(?-u:\b)\d(?:[ -]?\d){12,18}(?-u:\b)",
        // Iban
        r"(?-u:\b)[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)",
        // UsSsn
        r"(?-u:\b)\d{3}-\d{2}-\d{4}(?-u:\b)",
        // Email
        r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?-u:\b)",
        // IpAddress: IPv4, or anything with two colons that may be IPv6.
        r"(?-u:\b)(?:\d{1,3}\.){3}\d{1,3}(?-u:\b)|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]*:[0-9A-Fa-f.]*",
        // Phone
        r"\+[1-9]\d{6,14}(?-u:\b)|(?:\(\d{3}\) ?|(?-u:\b)\d{3}[ .-])\d{3}[ .-]\d{4}(?-u:\b)",
    ]
    .iter()
    .map(|p| Regex::new(p).unwrap_or_else(|e| panic!("PII pattern {p}: {e}")))
    .collect()
});

fn digits(text: &str) -> Vec<u8> {
    text.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A card network's prefix and a length it issues.
fn card_network(d: &[u8]) -> bool {
    let n = d.len();
    let prefix = |k: usize| d.iter().take(k).fold(0u32, |a, &x| a * 10 + u32::from(x));
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    match d.first() {
        Some(4) => matches!(n, 13 | 16 | 19),              // Visa
        Some(5) => (51..=55).contains(&p2) && n == 16,     // Mastercard
        Some(2) => (2221..=2720).contains(&p4) && n == 16, // Mastercard
        Some(3) if p2 == 34 || p2 == 37 => n == 15,        // Amex
        Some(3) if p2 == 35 => (16..=19).contains(&n),     // JCB
        Some(3) if p2 == 36 || p2 == 38 || (300..=305).contains(&p3) => (14..=19).contains(&n), // Diners
        Some(6) if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) => (16..=19).contains(&n), // Discover
        Some(6) if p2 == 62 => (16..=19).contains(&n), // UnionPay
        _ => false,
    }
}

/// Whether the match `text[start..end]` is a finding of `kind`: valid
/// itself and, for addresses, not part of a longer dotted run (a version
/// number `1.2.3.4.5`).
fn valid_at(kind: PiiKind, text: &str, start: usize, end: usize) -> bool {
    if kind == PiiKind::IpAddress {
        let b = text.as_bytes();
        let dotted = |i: usize| b.get(i) == Some(&b'.');
        if (start > 0 && dotted(start - 1))
            || (dotted(end) && b.get(end + 1).is_some_and(u8::is_ascii_digit))
        {
            return false;
        }
    }
    valid(kind, &text[start..end])
}

fn valid(kind: PiiKind, m: &str) -> bool {
    match kind {
        PiiKind::PaymentCard => {
            let d = digits(m);
            card_network(&d) && luhn(&d)
        }
        PiiKind::Iban => {
            let compact: Vec<u8> = m.bytes().filter(|b| *b != b' ').collect();
            if !(15..=34).contains(&compact.len()) {
                return false;
            }
            // Move the first four characters to the end, letters as 10..35.
            let mut rem = 0u32;
            for &b in compact[4..].iter().chain(&compact[..4]) {
                let v = match b {
                    b'0'..=b'9' => u32::from(b - b'0'),
                    b'A'..=b'Z' => u32::from(b - b'A') + 10,
                    _ => return false,
                };
                rem = if v >= 10 {
                    (rem * 100 + v) % 97
                } else {
                    (rem * 10 + v) % 97
                };
            }
            rem == 1
        }
        PiiKind::UsSsn => {
            let d = digits(m);
            let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
            area != 0
                && area != 666
                && area < 900
                && (d[3], d[4]) != (0, 0)
                && d[5..] != [0, 0, 0, 0]
        }
        PiiKind::IpAddress => {
            if m.contains(':') {
                m.parse::<Ipv6Addr>().is_ok()
            } else {
                m.parse::<Ipv4Addr>().is_ok()
            }
        }
        PiiKind::Phone => (7..=15).contains(&digits(m).len()),
        PiiKind::Secret | PiiKind::Email => true,
    }
}

/// Finds and redacts personal data; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiiDetector {
    /// Bit `k` set: [`PiiKind::ALL`]`[k]` is detected.
    kinds: u8,
}

impl Default for PiiDetector {
    fn default() -> Self {
        Self::all()
    }
}

impl PiiDetector {
    /// Detects these kinds.
    pub fn new(kinds: impl IntoIterator<Item = PiiKind>) -> Self {
        Self {
            kinds: kinds.into_iter().fold(0, |a, k| a | (1 << k.index())),
        }
    }

    /// Detects every kind.
    pub fn all() -> Self {
        Self::new(PiiKind::ALL)
    }

    /// Whether `kind` is detected.
    pub fn detects(&self, kind: PiiKind) -> bool {
        self.kinds & (1 << kind.index()) != 0
    }

    /// The kinds worth a pattern search in `text`: one pass over its bytes
    /// rules out most (no `@`, no e-mail; no digit, no number; fewer than
    /// two `:`, no IPv6; shorter than 20 bytes, no secret).
    fn candidates(&self, text: &str) -> u8 {
        let (mut at, mut digits, mut colons) = (false, 0usize, 0usize);
        for b in text.bytes() {
            match b {
                b'@' => at = true,
                b'0'..=b'9' => digits += 1,
                b':' => colons += 1,
                _ => {}
            }
        }
        let mut kinds = self.kinds;
        let mut off = |kind: PiiKind, keep: bool| {
            if !keep {
                kinds &= !(1 << kind.index());
            }
        };
        off(PiiKind::Email, at);
        off(PiiKind::Secret, text.len() >= 20);
        off(PiiKind::PaymentCard, digits >= 13);
        off(PiiKind::Iban, digits >= 2 && text.len() >= 15);
        off(PiiKind::UsSsn, digits >= 9);
        off(PiiKind::Phone, digits >= 7);
        off(PiiKind::IpAddress, digits >= 4 || colons >= 2);
        kinds
    }

    /// The findings in `text`, in order and not overlapping: where two
    /// overlap, the earlier wins, then the longer, then the kind listed
    /// first in [`PiiKind::ALL`].
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut all = Vec::new();
        let candidates = self.candidates(text);
        for kind in PiiKind::ALL {
            if candidates & (1 << kind.index()) == 0 {
                continue;
            }
            for m in PATTERNS[kind.index()].find_iter(text) {
                if valid_at(kind, text, m.start(), m.end()) {
                    all.push(Finding {
                        kind,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        all.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end), f.kind));
        let mut out: Vec<Finding> = Vec::with_capacity(all.len());
        for f in all {
            if out.last().is_none_or(|last| f.start >= last.end) {
                out.push(f);
            }
        }
        out
    }

    /// Whether `text` holds anything this detector finds.
    pub fn contains(&self, text: &str) -> bool {
        let candidates = self.candidates(text);
        PiiKind::ALL.iter().any(|&kind| {
            candidates & (1 << kind.index()) != 0
                && PATTERNS[kind.index()]
                    .find_iter(text)
                    .any(|m| valid_at(kind, text, m.start(), m.end()))
        })
    }

    /// `text` with every finding replaced by `[REDACTED:<kind>]` (borrowed
    /// when there is none).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let findings = self.find(text);
        if findings.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(redact_findings(text, &findings))
    }
}

/// `text` with `findings` (from [`PiiDetector::find`] on it) replaced.
pub fn redact_findings(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        out.push_str(&text[at..f.start]);
        out.push_str("[REDACTED:");
        out.push_str(f.kind.as_str());
        out.push(']');
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<PiiKind> {
        PiiDetector::all()
            .find(text)
            .iter()
            .map(|f| f.kind)
            .collect()
    }

    #[test]
    fn each_kind_is_found_and_validated() {
        for (text, kind) in [
            ("ann.lee+x@mail.example.co.uk", PiiKind::Email),
            ("+4930123456789", PiiKind::Phone),
            ("(555) 123-4567", PiiKind::Phone),
            ("555.123.4567", PiiKind::Phone),
            ("4111 1111 1111 1111", PiiKind::PaymentCard),
            ("5555-5555-5555-4444", PiiKind::PaymentCard),
            ("378282246310005", PiiKind::PaymentCard),
            ("6011111111111117", PiiKind::PaymentCard),
            ("123-45-6789", PiiKind::UsSsn),
            ("GB82 WEST 1234 5698 7654 32", PiiKind::Iban),
            ("DE89370400440532013000", PiiKind::Iban),
            ("203.0.113.9", PiiKind::IpAddress),
            ("2001:db8::1", PiiKind::IpAddress),
            ("::1", PiiKind::IpAddress),
            ("AKIAIOSFODNN7EXAMPLE", PiiKind::Secret),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", PiiKind::Secret),
            ("sk_live_abcdefghijklmnop1234", PiiKind::Secret),
            ("-----BEGIN RSA PRIVATE KEY-----", PiiKind::Secret),
            (
                "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
                PiiKind::Secret,
            ),
        ] {
            assert_eq!(kinds(&format!("x {text} y")), vec![kind], "{text}");
        }
    }

    #[test]
    fn lookalikes_are_not_findings() {
        for text in [
            "4111 1111 1111 1112",         // Luhn fails
            "1733280000000",               // epoch millis: no card network
            "1234567890123456",            // no network
            "000-12-3456",                 // SSN area 000
            "666-12-3456",                 // area 666
            "912-12-3456",                 // area 9xx
            "123-00-4567",                 // group 00
            "GB82 WEST 1234 5698 7654 33", // mod 97 fails
            "999.1.1.1",                   // not an address
            "12:30:45",                    // a time, not IPv6
            "2026-12-04",                  // a date
            "version 1.2.3.4.5",
            "user@localhost", // no domain
            "call 12345",
        ] {
            assert_eq!(kinds(text), Vec::<PiiKind>::new(), "{text}");
        }
    }

    #[test]
    fn redaction_replaces_findings_only_and_kinds_can_be_chosen() {
        let d = PiiDetector::all();
        assert_eq!(d.redact("nothing here"), Cow::Borrowed("nothing here"));
        assert_eq!(
            d.redact("from 10.0.0.1 to bob@example.com; ssn 123-45-6789"),
            "from [REDACTED:ip_address] to [REDACTED:email]; ssn [REDACTED:us_ssn]"
        );
        let mail = PiiDetector::new([PiiKind::Email]);
        assert!(mail.detects(PiiKind::Email) && !mail.detects(PiiKind::IpAddress));
        assert_eq!(
            mail.redact("10.0.0.1 bob@example.com"),
            "10.0.0.1 [REDACTED:email]"
        );
        assert!(mail.contains("x bob@example.com") && !mail.contains("10.0.0.1"));
        // Non-ASCII text around findings is kept whole.
        assert_eq!(
            d.redact("Grüße an ann@example.com — danke"),
            "Grüße an [REDACTED:email] — danke"
        );
        let kinds: Vec<PiiKind> =
            serde_json::from_str(r#"["email", "payment_card", "us_ssn"]"#).unwrap();
        assert_eq!(
            kinds,
            [PiiKind::Email, PiiKind::PaymentCard, PiiKind::UsSsn]
        );
    }
}
