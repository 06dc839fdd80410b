//! Built-in checks of the host: memory and disk usage, each a fraction
//! (0 to 1) compared against a threshold.
//!
//! ```
//! use kailash_monitoring::health::HealthCheck;
//! use kailash_monitoring::health::system::{DiskCheck, MemoryCheck};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let disk = DiskCheck::new(std::env::temp_dir(), 1.0).probe().await;
//! let used = disk.value.unwrap();
//! assert!((0.0..=1.0).contains(&used));
//! assert_eq!(disk.threshold, Some(1.0));
//! let memory = MemoryCheck::new(1.0).probe().await;
//! assert!(memory.value.is_some());
//! # });
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{HealthCheck, Probe};

/// The most read from one `/proc` or cgroup file.
const MAX_FILE_BYTES: u64 = 64 * 1024;

fn read_small(path: &Path) -> Option<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Memory in use as a fraction of what the process may use: the cgroup v2
/// `memory.current / memory.max` when the process runs in a cgroup with a
/// limit (a container), else the host's `1 - MemAvailable / MemTotal`
/// from `/proc/meminfo`. Fails above the threshold (e.g. `0.9`).
#[derive(Debug, Clone)]
pub struct MemoryCheck {
    threshold: f64,
    cgroup: PathBuf,
    meminfo: PathBuf,
}

impl MemoryCheck {
    /// Reads `/sys/fs/cgroup` and `/proc/meminfo`.
    pub fn new(threshold: f64) -> Self {
        Self::with_paths(threshold, "/sys/fs/cgroup", "/proc/meminfo")
    }

    /// Reads `memory.current` and `memory.max` in `cgroup`, and `meminfo`
    /// (for tests, or a non-standard mount).
    pub fn with_paths(
        threshold: f64,
        cgroup: impl Into<PathBuf>,
        meminfo: impl Into<PathBuf>,
    ) -> Self {
        Self {
            threshold,
            cgroup: cgroup.into(),
            meminfo: meminfo.into(),
        }
    }

    /// The fraction in use, and where it came from.
    pub fn usage(&self) -> Result<(f64, &'static str), String> {
        if let Some(fraction) = cgroup_usage(&self.cgroup) {
            return Ok((fraction, "cgroup"));
        }
        let text = read_small(&self.meminfo).ok_or("memory usage unavailable")?;
        let field = |name: &str| -> Option<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        };
        match (field("MemTotal"), field("MemAvailable")) {
            (Some(total), Some(available)) if total > 0.0 => {
                Ok(((1.0 - available / total).clamp(0.0, 1.0), "host"))
            }
            _ => Err("memory usage unavailable".to_owned()),
        }
    }
}

/// `memory.current / memory.max`, when both are present and limited.
fn cgroup_usage(dir: &Path) -> Option<f64> {
    let max = read_small(&dir.join("memory.max"))?;
    let max: f64 = max.trim().parse().ok()?; // "max": no limit
    let current: f64 = read_small(&dir.join("memory.current"))?
        .trim()
        .parse()
        .ok()?;
    (max > 0.0).then(|| (current / max).clamp(0.0, 1.0))
}

#[async_trait]
impl HealthCheck for MemoryCheck {
    async fn check(&self) -> Result<(), String> {
        self.probe().await.result
    }

    async fn probe(&self) -> Probe {
        match self.usage() {
            Ok((fraction, _)) => Probe::at_most("memory usage", fraction, self.threshold),
            Err(error) => Probe::from(Err(error)),
        }
    }

    fn measures(&self) -> bool {
        true
    }
}

/// Disk usage of the file system holding a directory (the data
/// directory), as the fraction of blocks not available to the process
/// (`1 - f_bavail / f_blocks`, statvfs). Fails above the threshold.
#[derive(Debug, Clone)]
pub struct DiskCheck {
    dir: PathBuf,
    threshold: f64,
}

impl DiskCheck {
    /// Checks the file system of `dir`.
    pub fn new(dir: impl Into<PathBuf>, threshold: f64) -> Self {
        Self {
            dir: dir.into(),
            threshold,
        }
    }

    /// The fraction in use.
    pub fn usage(&self) -> Result<f64, String> {
        // The directory's path stays out of the error (it is configuration,
        // but the report is public).
        let stat = rustix::fs::statvfs(&self.dir).map_err(|e| format!("statvfs failed: {e}"))?;
        if stat.f_blocks == 0 {
            return Err("file system reports no blocks".to_owned());
        }
        #[allow(clippy::cast_precision_loss)] // a ratio
        let used = 1.0 - stat.f_bavail as f64 / stat.f_blocks as f64;
        Ok(used.clamp(0.0, 1.0))
    }
}

#[async_trait]
impl HealthCheck for DiskCheck {
    async fn check(&self) -> Result<(), String> {
        self.probe().await.result
    }

    async fn probe(&self) -> Probe {
        match self.usage() {
            Ok(fraction) => Probe::at_most("disk usage", fraction, self.threshold),
            Err(error) => Probe::from(Err(error)),
        }
    }

    fn measures(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kailash-health-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn memory_reads_a_limited_cgroup_and_reports_value_and_threshold() {
        let d = dir("cg");
        std::fs::write(d.join("memory.max"), "1000\n").unwrap();
        std::fs::write(d.join("memory.current"), "950\n").unwrap();
        let probe = MemoryCheck::with_paths(0.9, &d, d.join("none"))
            .probe()
            .await;
        assert_eq!(probe.value, Some(0.95));
        assert_eq!(probe.threshold, Some(0.9));
        assert!(probe.result.unwrap_err().contains("above threshold"));

        std::fs::write(d.join("memory.current"), "500\n").unwrap();
        let probe = MemoryCheck::with_paths(0.9, &d, d.join("none"))
            .probe()
            .await;
        assert_eq!((probe.value, probe.result), (Some(0.5), Ok(())));
    }

    #[tokio::test]
    async fn memory_falls_back_to_meminfo_without_a_cgroup_limit() {
        let d = dir("mi");
        std::fs::write(d.join("memory.max"), "max\n").unwrap();
        std::fs::write(d.join("memory.current"), "950\n").unwrap();
        std::fs::write(
            d.join("meminfo"),
            "MemTotal:       1000 kB\nMemFree:   10 kB\nMemAvailable:    250 kB\n",
        )
        .unwrap();
        let check = MemoryCheck::with_paths(0.8, &d, d.join("meminfo"));
        assert_eq!(check.usage().unwrap(), (0.75, "host"));
        assert_eq!(check.probe().await.result, Ok(()));
        let none = MemoryCheck::with_paths(0.8, d.join("x"), d.join("y"));
        assert!(none.probe().await.result.is_err());
    }

    #[tokio::test]
    async fn disk_reports_the_fraction_and_fails_above_its_threshold() {
        let d = dir("disk");
        let ok = DiskCheck::new(&d, 1.0).probe().await;
        let used = ok.value.unwrap();
        assert!((0.0..=1.0).contains(&used));
        assert_eq!((ok.threshold, ok.result), (Some(1.0), Ok(())));
        if used > 0.0 {
            let bad = DiskCheck::new(&d, used / 2.0).probe().await;
            assert!(bad.result.unwrap_err().contains("disk usage"));
        }
        let missing = DiskCheck::new(d.join("missing"), 0.9).probe().await;
        assert!(missing.result.unwrap_err().starts_with("statvfs failed"));
    }
}
