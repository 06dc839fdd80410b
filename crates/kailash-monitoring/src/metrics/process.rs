//! The process's own figures, read from `/proc` at scrape time (Linux; on
//! other systems, or where `/proc` is not mounted, they are left out).

use std::fmt::Write as _;

/// Appends `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`
/// and `process_start_time_seconds` (the Prometheus client libraries'
/// standard names), each only when it could be read.
pub(crate) fn collect(out: &mut String) {
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    if let Some(stat) = read_small("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state is field 3, utime 14, stime 15, starttime 22.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
            if let (Some(utime), Some(stime)) = (field(14), field(15)) {
                family(
                    out,
                    "process_cpu_seconds_total",
                    "counter",
                    "User and system CPU time spent, in seconds.",
                );
                let _ = writeln!(
                    out,
                    "process_cpu_seconds_total {}",
                    (utime + stime) as f64 / ticks
                );
            }
            if let (Some(start), Some(boot)) = (field(22), boot_time()) {
                family(
                    out,
                    "process_start_time_seconds",
                    "gauge",
                    "Start time of the process since the Unix epoch, in seconds.",
                );
                let _ = writeln!(
                    out,
                    "process_start_time_seconds {}",
                    boot as f64 + start as f64 / ticks
                );
            }
        }
    }
    if let Some(statm) = read_small("/proc/self/statm") {
        let page = rustix::param::page_size() as u64;
        let mut it = statm.split_whitespace().map(|f| f.parse::<u64>().ok());
        if let (Some(Some(size)), Some(Some(resident))) = (it.next(), it.next()) {
            family(
                out,
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size, in bytes.",
            );
            let _ = writeln!(out, "process_virtual_memory_bytes {}", size * page);
            family(
                out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size, in bytes.",
            );
            let _ = writeln!(out, "process_resident_memory_bytes {}", resident * page);
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries.
        let open = dir.count().saturating_sub(1);
        family(out, "process_open_fds", "gauge", "Open file descriptors.");
        let _ = writeln!(out, "process_open_fds {open}");
    }
    if let Some(max) = read_small("/proc/self/limits").and_then(|l| max_open_files(&l)) {
        family(
            out,
            "process_max_fds",
            "gauge",
            "The soft limit on open file descriptors.",
        );
        let _ = writeln!(out, "process_max_fds {max}");
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `/proc` files are small; never read more than this of one.
fn read_small(path: &str) -> Option<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(16 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

fn boot_time() -> Option<u64> {
    read_small("/proc/stat")?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let mut out = String::new();
        super::collect(&mut out);
        if !std::path::Path::new("/proc/self/stat").exists() {
            eprintln!("skipped: no /proc");
            return;
        }
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(
                out.contains(&format!("\n{name}")),
                "{name} missing in {out}"
            );
        }
    }

    #[test]
    fn parses_the_limits_table() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(super::max_open_files(limits), Some(1024));
        assert_eq!(super::max_open_files("nothing"), None);
    }
}
