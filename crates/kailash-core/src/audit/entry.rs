//! The compact, hash-chained line format of the audit file.
//!
//! Each line is one JSON object (so `jq` reads it) with short keys, written
//! in this order, absent ones left out:
//!
//! | key | meaning |
//! |---|---|
//! | `s` | sequence number, +1 per entry across every file |
//! | `t` | time, Unix milliseconds (UTC) |
//! | `a` | action (`access.check`, `auth.login`) |
//! | `d` | decision: `allow`, `deny`, `success`, `failure`, `error` |
//! | `sev` | severity `warning` or `critical` (absent: `info`) |
//! | `u` | actor |
//! | `tn` | tenant |
//! | `r` | resource |
//! | `why` | reason |
//! | `rid` | request id |
//! | `ip` | client IP |
//! | `tr` | trace id (when traces are exported) |
//! | `h` | `SHA-256(previous h ‖ this line without its "h" member)`, base64url without padding — always the last member |
//!
//! "This line without its `h` member" is the exact bytes written, from `{`
//! up to the `,"h":` that ends the line, followed by `}`: the verifier needs
//! no canonical re-serialisation. The previous `h` is the 32 raw bytes.
//!
//! Every file starts with a header line, itself chained, that is also a
//! checkpoint: `{"audit":"kailash/1","s":NEXT_SEQ,"t":MS,"prev":"H","keys":"…","h":"…"}`
//! — `prev` is the last hash of the file before (32 zero bytes for the very
//! first), `s` the sequence number of the file's first entry, `keys` the
//! legend above in one line. So a file verifies on its own, and the chain
//! verifies across files: a missing file shows as a `prev` that does not
//! match.
//!
//! ```
//! use kailash_core::audit::entry::{hash_matches, parse_line};
//! use kailash_core::audit::{AuditDecision, AuditEvent, AuditSink, JsonLinesAuditSink};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("kailash-entry-doc-{}", std::process::id()));
//! let sink = JsonLinesAuditSink::open(dir.join("audit.jsonl"))?;
//! sink.record(AuditEvent::new("auth.login", AuditDecision::Success).actor("bob")).await.unwrap();
//! let text = std::fs::read_to_string(dir.join("audit.jsonl"))?;
//! let lines: Vec<&str> = text.lines().collect();
//! let header = parse_line(lines[0].as_bytes()).unwrap();
//! let entry = parse_line(lines[1].as_bytes()).unwrap();
//! assert_eq!((header.seq, entry.seq), (1, 1));
//! assert!(hash_matches(lines[1].as_bytes(), &header.hash, &entry.hash));
//! let json: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
//! assert_eq!(json["u"], "bob");
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```

use std::io::Write;

use aws_lc_rs::digest;
use serde::Deserialize;

use super::{AuditDecision, AuditEvent, AuditSeverity};

/// A link of the chain: SHA-256 of the previous link and an entry.
pub type ChainHash = [u8; 32];

/// The `prev` of the very first file.
pub const GENESIS: ChainHash = [0; 32];

/// The format name in every file header.
pub const FORMAT: &str = "kailash/1";

/// The legend written in every header.
const KEYS: &str = "s=seq t=time(unix ms) a=action d=decision sev=severity(absent: info) \
u=actor tn=tenant r=resource why=reason rid=request id ip=client ip tr=trace id \
h=base64url(SHA-256(prev h || line without h))";

/// The longest line the verifier reads (entries are bounded far below it).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

fn decision_name(decision: AuditDecision) -> &'static str {
    match decision {
        AuditDecision::Allow => "allow",
        AuditDecision::Deny => "deny",
        AuditDecision::Success => "success",
        AuditDecision::Failure => "failure",
        AuditDecision::Error => "error",
    }
}

fn json_str(out: &mut Vec<u8>, key: &[u8], value: &str) {
    out.extend_from_slice(key);
    // Writing a `&str` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Writes `hash` as the 43 characters of its `h` (base64url, no padding).
pub fn encode_hash(hash: &ChainHash, out: &mut [u8; 43]) {
    data_encoding::BASE64URL_NOPAD.encode_mut(hash, out);
}

fn finish(out: &mut Vec<u8>, start: usize, prev: &ChainHash) -> ChainHash {
    let hash = link(prev, &out[start..]);
    out.extend_from_slice(b",\"h\":\"");
    let mut text = [0u8; 43];
    encode_hash(&hash, &mut text);
    out.extend_from_slice(&text);
    out.extend_from_slice(b"\"}\n");
    hash
}

/// `SHA-256(prev ‖ body ‖ "}")`, `body` being a line from `{` up to its `h`.
fn link(prev: &ChainHash, body: &[u8]) -> ChainHash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev);
    ctx.update(body);
    ctx.update(b"}");
    let mut hash = [0u8; 32];
    hash.copy_from_slice(ctx.finish().as_ref());
    hash
}

/// Appends the line of `event` with sequence number `seq`, chained to
/// `prev`, to `out` (with its closing `\n`), and returns its hash.
///
/// Every sink that keeps the chain (the file, a database) stores exactly
/// these bytes, so one verifier reads them all.
pub fn encode_entry(
    event: &AuditEvent,
    seq: u64,
    prev: &ChainHash,
    out: &mut Vec<u8>,
) -> ChainHash {
    let start = out.len();
    let _ = write!(out, "{{\"s\":{seq},\"t\":{}", event.time.as_millisecond());
    json_str(out, b",\"a\":", &event.action);
    out.extend_from_slice(b",\"d\":\"");
    out.extend_from_slice(decision_name(event.decision).as_bytes());
    out.push(b'"');
    match event.severity {
        AuditSeverity::Info => {}
        AuditSeverity::Warning => out.extend_from_slice(b",\"sev\":\"warning\""),
        AuditSeverity::Critical => out.extend_from_slice(b",\"sev\":\"critical\""),
    }
    if let Some(actor) = &event.actor {
        json_str(out, b",\"u\":", actor);
    }
    if let Some(tenant) = &event.tenant {
        json_str(out, b",\"tn\":", tenant.as_str());
    }
    if let Some(resource) = &event.resource {
        json_str(out, b",\"r\":", resource);
    }
    if let Some(reason) = &event.reason {
        json_str(out, b",\"why\":", reason);
    }
    if let Some(id) = &event.request_id {
        json_str(out, b",\"rid\":", id);
    }
    if let Some(ip) = &event.client_ip {
        let _ = write!(out, ",\"ip\":\"{ip}\"");
    }
    if let Some(trace) = &event.trace_id {
        json_str(out, b",\"tr\":", trace);
    }
    finish(out, start, prev)
}

/// Appends a file header (a checkpoint) to `out` and returns its hash.
pub(crate) fn encode_header(
    next_seq: u64,
    time_ms: i64,
    prev: &ChainHash,
    out: &mut Vec<u8>,
) -> ChainHash {
    let start = out.len();
    let _ = write!(
        out,
        "{{\"audit\":\"{FORMAT}\",\"s\":{next_seq},\"t\":{time_ms},\"prev\":\"{}\"",
        data_encoding::BASE64URL_NOPAD.encode(prev)
    );
    json_str(out, b",\"keys\":", KEYS);
    finish(out, start, prev)
}

/// One parsed line: an entry or a file header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    /// For an entry its sequence number; for a header, that of the file's first entry.
    pub seq: u64,
    /// Unix milliseconds.
    pub time_ms: i64,
    /// For a header, the hash it continues from.
    pub header_prev: Option<ChainHash>,
    /// The hash the line carries.
    pub hash: ChainHash,
}

#[derive(Deserialize)]
struct Fields {
    #[serde(default)]
    audit: Option<String>,
    s: u64,
    t: i64,
    #[serde(default)]
    prev: Option<String>,
    h: String,
}

fn decode_hash(text: &str) -> Option<ChainHash> {
    let mut hash = [0u8; 32];
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(text.as_bytes())
        .ok()?;
    (bytes.len() == 32).then(|| {
        hash.copy_from_slice(&bytes);
        hash
    })
}

/// Why a line is not a well-formed chain line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Not a JSON object with `s`, `t` and `h`, or `h` not last.
    #[error("not an audit chain line")]
    Malformed,
    /// A header of another format.
    #[error("a header of an unknown format")]
    UnknownFormat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFields {
    s: u64,
    t: i64,
    a: String,
    d: AuditDecision,
    #[serde(default)]
    sev: Option<AuditSeverity>,
    #[serde(default)]
    u: Option<String>,
    #[serde(default)]
    tn: Option<String>,
    #[serde(default)]
    r: Option<String>,
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    rid: Option<String>,
    #[serde(default)]
    ip: Option<std::net::IpAddr>,
    #[serde(default)]
    tr: Option<String>,
    #[allow(dead_code, reason = "checked by the verifier, not needed here")]
    h: String,
}

/// Reads an entry line (without its `\n`) back into its sequence number
/// and event — what a sink replaying a trail into another needs. The hash
/// is not checked here ([`hash_matches`] does that); a header is
/// [`LineError::Malformed`] here.
pub fn decode_entry(line: &[u8]) -> Result<(u64, AuditEvent), LineError> {
    if line.len() > MAX_LINE_BYTES || body_of(line).is_none() {
        return Err(LineError::Malformed);
    }
    let f: EntryFields = serde_json::from_slice(line).map_err(|_| LineError::Malformed)?;
    let time = jiff::Timestamp::from_millisecond(f.t).map_err(|_| LineError::Malformed)?;
    let tenant = match f.tn {
        Some(t) => Some(crate::tenant::TenantId::new(&t).map_err(|_| LineError::Malformed)?),
        None => None,
    };
    let mut event = AuditEvent::new(f.a, f.d).at(time);
    event.severity = f.sev.unwrap_or_default();
    event.actor = f.u;
    event.tenant = tenant;
    event.resource = f.r;
    event.reason = f.why.map(Into::into);
    event.request_id = f.rid;
    event.client_ip = f.ip;
    event.trace_id = f.tr;
    Ok((f.s, event))
}

/// Parses a line (without its `\n`).
pub fn parse_line(line: &[u8]) -> Result<ParsedLine, LineError> {
    let fields: Fields = serde_json::from_slice(line).map_err(|_| LineError::Malformed)?;
    let hash = decode_hash(&fields.h).ok_or(LineError::Malformed)?;
    if body_of(line).is_none() {
        return Err(LineError::Malformed);
    }
    let header_prev = match fields.audit {
        None => None,
        Some(format) if format == FORMAT => {
            Some(decode_hash(fields.prev.as_deref().unwrap_or("")).ok_or(LineError::Malformed)?)
        }
        Some(_) => return Err(LineError::UnknownFormat),
    };
    Ok(ParsedLine {
        seq: fields.s,
        time_ms: fields.t,
        header_prev,
        hash,
    })
}

/// The bytes of `line` the hash covers (without the closing `}`), if the
/// line ends with its `h` member.
fn body_of(line: &[u8]) -> Option<&[u8]> {
    const TAIL: usize = b",\"h\":\"".len() + 43 + b"\"}".len();
    if line.len() < TAIL + 1 || !line.ends_with(b"\"}") {
        return None;
    }
    let body = &line[..line.len() - TAIL];
    line[body.len()..].starts_with(b",\"h\":\"").then_some(body)
}

/// `SHA-256(prev ‖ line without h)` of an entry or header line (without
/// its `\n`): the hash it should carry when it follows `prev`. `None` when
/// the line does not end with its `h` member.
pub fn chain_hash(line: &[u8], prev: &ChainHash) -> Option<ChainHash> {
    body_of(line).map(|body| link(prev, body))
}

/// Whether `line`'s own `h` is `SHA-256(prev ‖ line without h)`.
pub fn hash_matches(line: &[u8], prev: &ChainHash, hash: &ChainHash) -> bool {
    body_of(line).is_some_and(|body| link(prev, body) == *hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::TenantId;

    #[test]
    fn an_entry_is_json_and_chains() {
        let event = AuditEvent::new("access.check", AuditDecision::Allow)
            .actor("al\"ice")
            .tenant(TenantId::new("acme").unwrap())
            .resource("report:read")
            .reason("role viewer");
        let mut out = Vec::new();
        let first = encode_header(1, 0, &GENESIS, &mut out);
        let hash = encode_entry(&event, 1, &first, &mut out);
        let text = std::str::from_utf8(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let value: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(value["u"], "al\"ice");
        assert_eq!(value["d"], "allow");
        assert!(value.get("sev").is_none());
        let parsed = parse_line(lines[1].as_bytes()).unwrap();
        assert_eq!(parsed.hash, hash);
        assert!(hash_matches(lines[1].as_bytes(), &first, &hash));
        let tampered = lines[1].replace("report:read", "report:wipe");
        assert!(!hash_matches(tampered.as_bytes(), &first, &hash));
        let header = parse_line(lines[0].as_bytes()).unwrap();
        assert_eq!(header.header_prev, Some(GENESIS));
        assert_eq!(decode_entry(lines[0].as_bytes()), Err(LineError::Malformed));
    }

    #[test]
    fn an_entry_decodes_to_the_event_it_was_written_from() {
        let mut event = AuditEvent::new("access.check", AuditDecision::Deny)
            .at(jiff::Timestamp::from_millisecond(1_700_000_000_123).unwrap())
            .actor("bob \u{e9}")
            .tenant(TenantId::new("acme").unwrap())
            .resource("report:view")
            .reason("no grant")
            .severity(AuditSeverity::Warning);
        event.request_id = Some("r-1".into());
        event.client_ip = Some("::1".parse().unwrap());
        event.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let mut out = Vec::new();
        encode_entry(&event, 7, &GENESIS, &mut out);
        let (seq, back) = decode_entry(&out[..out.len() - 1]).unwrap();
        assert_eq!(seq, 7);
        assert_eq!(back, event);
        let bare = AuditEvent::new("auth.logout", AuditDecision::Success)
            .at(jiff::Timestamp::from_millisecond(5).unwrap());
        out.clear();
        encode_entry(&bare, 8, &GENESIS, &mut out);
        assert_eq!(decode_entry(&out[..out.len() - 1]).unwrap().1, bare);
        for bad in [&b"{}"[..], b"not json", b"{\"s\":1}"] {
            assert_eq!(decode_entry(bad), Err(LineError::Malformed));
        }
    }

    /// The size of one allowed access decision of the reference deployment
    /// (`GET /api/reports` by bob of acme), in the earlier format (the
    /// event's serde JSON, one line) and in this one, plain and gzip'd as
    /// closed files are. `cargo test -p kailash-core --lib entry_size -- --nocapture`
    /// prints the figures of docs/performance.md ("Audit entry size").
    #[test]
    fn entry_size_of_an_allowed_decision() {
        use std::io::Write as _;
        let ids = crate::context::RequestIdGenerator::new();
        let start = jiff::Timestamp::now();
        let event = |i: i64| {
            AuditEvent::new("access.check", AuditDecision::Allow)
                .at(start + jiff::SignedDuration::from_micros(i * 37))
                .actor("bob")
                .tenant(TenantId::new("acme").unwrap())
                .resource("report:view")
                .reason("role `business_user` grants `report:view`")
        };
        let with_context = |i: i64| {
            let mut e = event(i);
            e.request_id = Some(ids.next_id().as_str().to_owned());
            e.client_ip = Some("127.0.0.1".parse().unwrap());
            e
        };
        const N: i64 = 10_000;
        let (mut old, mut new) = (Vec::new(), Vec::new());
        let mut prev = GENESIS;
        encode_header(1, 0, &prev, &mut new);
        let header = new.len();
        for i in 0..N {
            let e = with_context(i);
            serde_json::to_writer(&mut old, &e).unwrap();
            old.push(b'\n');
            prev = encode_entry(&e, i as u64 + 1, &prev, &mut new);
        }
        let gz = |bytes: &[u8]| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(bytes).unwrap();
            enc.finish().unwrap().len()
        };
        let per = |n: usize| n as f64 / N as f64;
        let (old_line, new_line) = (per(old.len()), per(new.len() - header));
        let example = std::str::from_utf8(&new[header..])
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned();
        println!(
            "bytes per allowed decision: before {old_line:.1} (gzip {:.1}); after {new_line:.1} (gzip {:.1})\nbefore: {}\nafter:  {example}",
            per(gz(&old)),
            per(gz(&new)),
            std::str::from_utf8(&old).unwrap().lines().next().unwrap(),
        );
        assert!(new_line < old_line, "{new_line} >= {old_line}");
    }
}
