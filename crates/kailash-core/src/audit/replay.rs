//! Reading a file sink's entries back as events, from a sequence number on:
//! what a sink that spools to files while its database is away needs to
//! replay them in order.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::AuditEvent;
use super::entry::{MAX_LINE_BYTES, decode_entry, parse_line};
use super::files::Naming;

/// Up to `max` entries with a sequence number above `after`, oldest first,
/// from the files of the sink whose active file is `active` (closed files,
/// plain or compressed, then the active one).
///
/// The entries read are consecutive: the first is `after + 1` (or the
/// oldest still kept, when retention deleted older files) and each next
/// one follows. An incomplete last line (a write in progress) ends the
/// read. Rotation or compression racing with the read is retried; an
/// entry that does not decode, or a gap inside the files, is an
/// [`std::io::ErrorKind::InvalidData`] error naming the sequence number.
///
/// ```
/// use kailash_core::audit::{AuditDecision, AuditEvent, AuditSink, JsonLinesAuditSink, read_entries};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("kailash-replay-doc-{}", std::process::id()));
/// let sink = JsonLinesAuditSink::open(dir.join("audit.jsonl"))?;
/// for user in ["ann", "bob", "cid"] {
///     sink.record(AuditEvent::new("auth.login", AuditDecision::Success).actor(user)).await.unwrap();
/// }
/// let entries = read_entries(&dir.join("audit.jsonl"), 1, 10)?;
/// assert_eq!(entries.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [2, 3]);
/// assert_eq!(entries[0].1.actor.as_deref(), Some("bob"));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub fn read_entries(
    active: &Path,
    after: u64,
    max: usize,
) -> std::io::Result<Vec<(u64, AuditEvent)>> {
    let naming = Naming::new(active);
    let mut last_error = None;
    for attempt in 0..4 {
        // The last attempt accepts a trail that starts past `after + 1`
        // (retention deleted the older files).
        match read_once(&naming, after, max, attempt < 3) {
            Ok(entries) => return Ok(entries),
            // A file renamed or compressed under the read: list again.
            Err(Retry::Again(e)) => last_error = Some(e),
            Err(Retry::Fatal(e)) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("audit files kept changing")))
}

enum Retry {
    Again(std::io::Error),
    Fatal(std::io::Error),
}

fn invalid(seq: u64, what: &str) -> Retry {
    Retry::Fatal(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("audit entry after {seq}: {what}"),
    ))
}

fn read_once(
    naming: &Naming,
    after: u64,
    max: usize,
    strict: bool,
) -> Result<Vec<(u64, AuditEvent)>, Retry> {
    let closed = naming.list_closed().map_err(Retry::Fatal)?;
    // The last closed file starting at or before the wanted entry holds it;
    // every later file follows.
    let start = closed
        .iter()
        .rposition(|f| f.seq <= after.saturating_add(1))
        .unwrap_or(0);
    let mut paths: Vec<(PathBuf, bool)> = closed[start..]
        .iter()
        .map(|f| (f.path.clone(), f.compressed))
        .collect();
    paths.push((naming.active().to_path_buf(), false));
    let mut out = Vec::new();
    let mut expected: Option<u64> = strict.then_some(after.saturating_add(1));
    let last = paths.len() - 1;
    for (i, (path, compressed)) in paths.into_iter().enumerate() {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Retry::Again(e));
            }
            Err(e) => return Err(Retry::Fatal(e)),
        };
        let reader: Box<dyn BufRead> = if compressed {
            Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        let done = read_file(reader, after, max, i == last, &mut expected, &mut out)?;
        if done {
            break;
        }
    }
    Ok(out)
}

/// Reads one file's entries into `out`; `true` once `max` are there.
fn read_file(
    mut reader: impl BufRead,
    after: u64,
    max: usize,
    last: bool,
    expected: &mut Option<u64>,
    out: &mut Vec<(u64, AuditEvent)>,
) -> Result<bool, Retry> {
    let mut buf = Vec::with_capacity(512);
    let mut first_line = true;
    loop {
        if out.len() >= max {
            return Ok(true);
        }
        buf.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(Retry::Fatal)?;
        if read == 0 {
            return Ok(false);
        }
        if buf.last() != Some(&b'\n') {
            // A write in progress at the end of the active file.
            return if last {
                Ok(false)
            } else {
                Err(invalid(after, "an incomplete line inside a closed file"))
            };
        }
        let line = &buf[..buf.len() - 1];
        let parsed = parse_line(line).map_err(|_| invalid(after, "not a chain line"))?;
        if first_line {
            first_line = false;
            if parsed.header_prev.is_some() {
                // A header names the file's first entry: a file that starts
                // past the one expected was rotated in under the listing.
                if let Some(want) = *expected
                    && parsed.seq > want
                    && out.len() < max
                {
                    return Err(Retry::Again(std::io::Error::other(
                        "an audit file was rotated during the read",
                    )));
                }
                continue;
            }
        }
        if parsed.header_prev.is_some() {
            return Err(invalid(after, "a header inside a file"));
        }
        if parsed.seq <= after {
            continue;
        }
        if let Some(want) = *expected
            && parsed.seq != want
        {
            return Err(invalid(want - 1, "a gap in the sequence"));
        }
        let (seq, event) = decode_entry(line).map_err(|_| invalid(parsed.seq, "undecodable"))?;
        *expected = Some(seq + 1);
        out.push((seq, event));
    }
}
