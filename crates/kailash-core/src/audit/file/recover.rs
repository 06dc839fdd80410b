//! Picking the chain up where the files on disk leave it, at start.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::audit::entry::{ChainHash, GENESIS, MAX_LINE_BYTES, ParsedLine, parse_line};
use crate::audit::files::{Kind, Naming};

/// The active file to append to.
pub(super) struct Active {
    pub(super) len: u64,
    pub(super) first_seq: u64,
    pub(super) start_ms: i64,
}

pub(super) struct Recovered {
    pub(super) next_seq: u64,
    pub(super) last_hash: ChainHash,
    /// `None`: a new active file is to be started.
    pub(super) active: Option<Active>,
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

pub(super) fn recover(naming: &Naming) -> std::io::Result<Recovered> {
    // Leftovers of a compression cut short; a plain closed file whose
    // compressed twin is complete (renamed into place last) is redundant.
    let closed = naming.list_closed()?;
    for entry in std::fs::read_dir(naming.dir())? {
        let entry = entry?;
        if naming.classify(&entry.file_name().to_string_lossy()) == Some(Kind::Temporary) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for file in closed.iter().filter(|f| f.compressed) {
        let plain = naming.closed(file.seq);
        if plain.exists() {
            std::fs::remove_file(plain)?;
        }
    }

    let active = naming.active();
    if let Some(recovered) = recover_active(naming, active)? {
        return Ok(recovered);
    }
    // No usable active file: continue from the newest closed file.
    let closed = naming.list_closed()?;
    let (next_seq, last_hash) = match closed.last() {
        None => (1, GENESIS),
        Some(file) => {
            let last = last_line_of(&file.path, file.compressed)?.ok_or_else(|| {
                invalid(format!("{} holds no audit chain line", file.path.display()))
            })?;
            next_after(&last)
        }
    };
    Ok(Recovered {
        next_seq,
        last_hash,
        active: None,
    })
}

fn next_after(line: &ParsedLine) -> (u64, ChainHash) {
    match line.header_prev {
        Some(_) => (line.seq, line.hash),
        None => (line.seq + 1, line.hash),
    }
}

fn recover_active(naming: &Naming, path: &Path) -> std::io::Result<Option<Recovered>> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut first = Vec::new();
    BufReader::new(&mut file)
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', &mut first)?;
    let header = parse_line(first.strip_suffix(b"\n").unwrap_or(&first))
        .ok()
        .filter(|l| l.header_prev.is_some());
    let Some(header) = header else {
        // Not a chained file (written by an earlier version): kept aside,
        // outside the chain, and a new chain file is started.
        drop(file);
        let legacy = naming.legacy(jiff::Timestamp::now().as_millisecond());
        std::fs::rename(path, &legacy)?;
        tracing::warn!(
            from = %path.display(), to = %legacy.display(),
            "the audit file is not hash-chained (an earlier format); kept aside, a new chain starts"
        );
        return Ok(None);
    };
    // An incomplete last line was never accepted (its write did not
    // return): cut it so the file ends on a whole line.
    let (tail_start, tail) = read_tail(&mut file, len)?;
    let end = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => tail_start + i as u64 + 1,
        None => {
            return Err(invalid(format!(
                "{}: its last line is too long",
                path.display()
            )));
        }
    };
    if end < len {
        tracing::warn!(path = %path.display(), bytes = len - end, "cutting an incomplete last audit line (never accepted)");
        file.set_len(end)?;
        file.sync_all()?;
    }
    let (_, tail) = read_tail(&mut file, end)?;
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let last = body.rsplit(|&b| b == b'\n').next().unwrap_or(body);
    let last = parse_line(last).map_err(|_| {
        invalid(format!(
            "{}: the last line is not an audit chain line; check it with `kailash audit verify`",
            path.display()
        ))
    })?;
    let (next_seq, last_hash) = next_after(&last);
    Ok(Some(Recovered {
        next_seq,
        last_hash,
        active: Some(Active {
            len: end,
            first_seq: header.seq,
            start_ms: header.time_ms,
        }),
    }))
}

/// The last `MAX_LINE_BYTES * 2` bytes before `end`, and where they start.
fn read_tail(file: &mut File, end: u64) -> std::io::Result<(u64, Vec<u8>)> {
    let start = end.saturating_sub(2 * MAX_LINE_BYTES as u64);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.take(end - start).read_to_end(&mut tail)?;
    Ok((start, tail))
}

/// The last whole line of a closed file.
pub(super) fn last_line_of(
    path: &PathBuf,
    compressed: bool,
) -> std::io::Result<Option<ParsedLine>> {
    let file = File::open(path)?;
    let reader: Box<dyn Read> = if compressed {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let mut last = None;
    loop {
        line.clear();
        if (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)?
            == 0
        {
            break;
        }
        if let Some(body) = line.strip_suffix(b"\n")
            && let Ok(parsed) = parse_line(body)
        {
            last = Some(parsed);
        }
    }
    Ok(last)
}
