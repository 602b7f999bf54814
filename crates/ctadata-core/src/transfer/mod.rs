//! The transfer engine: single files and whole trees between local disk and the storage,
//! for every backend.
//!
//! - Downloads go to `<target>.part` (with `<target>.part.meta` describing the remote file)
//!   and replace the target only after size and checksum matched. A rerun resumes a
//!   `.part` with a `Range` request when the remote file has not changed, and checks the
//!   whole file's adler32 at the end.
//! - Trees are walked with several listings in flight while files transfer, `jobs` at a
//!   time, on the backend's one connection pool; memory stays bounded (streams only).
//! - Whatever a server lists, nothing is written outside the target directory.
//! - One failed file does not stop the others (unless `fail_fast`); each failure is
//!   reported with its reason. Retries belong to the backend's retry layer, not here.

mod download;
mod filter;
mod sink;
mod upload;
mod walk;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

pub use download::{download_file, download_tree, DownloadOptions};
pub use filter::Filter;
pub use sink::{pump, ThreadWriter};
pub use upload::{upload_file, upload_tree};
pub use walk::walk;
pub use walk::walk_with;

/// Hears about a transfer as it goes (progress bars, per-file lines).
pub trait Progress: Send + Sync {
    /// More work was found: `files` files of `bytes` bytes in all.
    fn discovered(&self, _files: u64, _bytes: u64) {}
    /// A file starts (or restarts after a retry) at `offset` (resume).
    fn started(&self, _name: &str, _size: Option<u64>, _offset: u64) {}
    /// `bytes` more bytes of `name` moved.
    fn advanced(&self, _name: &str, _bytes: u64) {}
    /// A file ended.
    fn finished(&self, _name: &str, _outcome: &FileOutcome) {}
}

/// How one file of a transfer ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum FileOutcome {
    /// Moved (and verified when a checksum was available).
    Done(FileDone),
    /// Left alone, with the reason.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Would be transferred (dry run).
    Planned {
        /// Bytes it would move.
        bytes: Option<u64>,
    },
    /// Failed, with the reason.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A progress sink that does nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileDone {
    /// Remote path.
    pub remote: String,
    /// Local path.
    pub local: PathBuf,
    /// Bytes moved in this run (less than the size after a resume).
    pub bytes: u64,
    /// The file's size.
    pub size: u64,
    /// Bytes that were already there from an earlier, interrupted run.
    pub resumed_from: u64,
    /// The checksum verified, when one was.
    pub verified: Option<String>,
}

/// Options of a transfer. Retries are not among them: the backend's retry layer
/// ([`crate::retry::Retrying`]) tries each request again and resumes broken downloads.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransferOptions {
    /// Files in flight at once.
    pub jobs: usize,
    /// Stop at the first failure instead of going on with the other files.
    pub fail_fast: bool,
    /// Replace existing files at the destination.
    pub overwrite: bool,
    /// Skip files already at the destination with the same size (and checksum, when the
    /// storage knows one).
    pub skip_existing: bool,
    /// Skip files whose destination copy is as new or newer than the source.
    pub update: bool,
    /// Only say what would be done.
    pub dry_run: bool,
    /// Which files take part.
    pub filter: Filter,
    /// Who hears about progress.
    pub progress: Arc<dyn Progress>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            fail_fast: false,
            overwrite: true,
            skip_existing: false,
            update: false,
            dry_run: false,
            filter: Filter::default(),
            progress: Arc::new(NoProgress),
        }
    }
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("jobs", &self.jobs)
            .field("fail_fast", &self.fail_fast)
            .field("overwrite", &self.overwrite)
            .field("skip_existing", &self.skip_existing)
            .field("update", &self.update)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// One failed file of a tree transfer.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The file (remote path for downloads, local path for uploads).
    pub path: String,
    /// Why, in one line.
    pub reason: String,
    /// The exit code this failure alone would have had.
    pub exit_code: i32,
}

/// The outcome of a transfer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Files transferred.
    pub transferred: usize,
    /// Directories created.
    pub directories: usize,
    /// Files skipped (already there, filtered out, not regular files...).
    pub skipped: usize,
    /// Files a dry run would transfer.
    pub planned: usize,
    /// Files that failed.
    pub failures: Vec<Failure>,
    /// Bytes transferred.
    pub bytes: u64,
    /// Bytes resumed from earlier runs (not transferred again).
    pub resumed_bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl Summary {
    /// Ok when nothing failed; otherwise [`Error::Partial`].
    pub fn into_result(self) -> Result<Summary> {
        if self.failures.is_empty() {
            Ok(self)
        } else {
            Err(Error::Partial {
                failed: self.failures.len(),
                total: self.failures.len() + self.transferred + self.skipped,
            })
        }
    }

    pub(crate) fn fail(&mut self, path: String, e: &Error) {
        tracing::debug!(path = %path, "failed: {e}");
        // What to do belongs with each failure, except the generic rerun advice.
        let reason = match e.hint() {
            Some(h) if !e.is_temporary() && !matches!(e, Error::Partial { .. }) => {
                format!("{e} ({h})")
            }
            _ => e.to_string(),
        };
        self.failures.push(Failure {
            path,
            reason,
            exit_code: e.exit_code(),
        });
    }

    pub(crate) fn count(&mut self, o: &FileOutcome) {
        match o {
            FileOutcome::Done(d) => {
                self.transferred += 1;
                self.bytes += d.bytes;
                self.resumed_bytes += d.resumed_from;
            }
            FileOutcome::Skipped { .. } => self.skipped += 1,
            FileOutcome::Planned { .. } => self.planned += 1,
            FileOutcome::Failed { .. } => {}
        }
    }
}

/// Joins a remote relative path onto a local base directory, refusing anything that could
/// land outside it: `..`, absolute paths, backslashes, NUL, and existing symlinks on the way.
pub fn safe_local_join(base: &Path, rel: &str) -> Result<PathBuf> {
    let refuse = |why: &str| Error::InvalidPath {
        path: rel.to_string(),
        reason: format!("cannot be written locally: {why}"),
    };
    if rel.contains('\0') {
        return Err(refuse("it contains NUL"));
    }
    if rel.contains('\\') {
        return Err(refuse("it contains a backslash"));
    }
    if rel.starts_with('/') {
        return Err(refuse("it is absolute"));
    }
    let mut out = base.to_path_buf();
    for comp in Path::new(rel).components() {
        match comp {
            Component::Normal(c) => {
                out.push(c);
                // A symlink already inside the target tree could point anywhere.
                if let Ok(md) = std::fs::symlink_metadata(&out) {
                    if md.file_type().is_symlink() {
                        return Err(refuse(&format!("{} is a symbolic link", out.display())));
                    }
                }
            }
            Component::CurDir => {}
            _ => return Err(refuse("it climbs out of the target directory")),
        }
    }
    Ok(out)
}

/// The temporary file a download is written to before it replaces its target.
pub fn part_path(target: &Path) -> PathBuf {
    with_suffix(target, ".part")
}

/// The description of the remote file a `.part` belongs to (for resume).
pub fn part_meta_path(target: &Path) -> PathBuf {
    with_suffix(target, ".part.meta")
}

fn with_suffix(target: &Path, suffix: &str) -> PathBuf {
    let mut name = target
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    target.with_file_name(name)
}

/// The adler32 of a local file, read in large blocks.
pub async fn local_adler32(path: &Path) -> Result<crate::checksum::Checksum> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::local("read", path, e))?;
    let mut a = crate::checksum::Adler32::new();
    let mut buf = vec![0u8; crate::backend::IO_BLOCK];
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| Error::local("read", path, e))?;
        if n == 0 {
            break;
        }
        a.update(&buf[..n]);
    }
    Ok(a.checksum())
}

/// A rate in human units (`12.3 MiB/s`).
pub fn human_rate(bytes: u64, d: Duration) -> String {
    let secs = d.as_secs_f64().max(1e-6);
    format!("{}/s", human_bytes((bytes as f64 / secs) as u64))
}

/// A size in human units (`1.5 GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path();
        assert_eq!(
            safe_local_join(base, "a/b c/é").unwrap(),
            base.join("a/b c/é")
        );
        for bad in ["../x", "a/../../x", "/etc/x", "a\\..\\x", "a\0b"] {
            assert!(safe_local_join(base, bad).is_err(), "{bad}");
        }
        std::os::unix::fs::symlink("/tmp", base.join("link")).unwrap();
        let e = safe_local_join(base, "link/x").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn part_files_sit_beside_the_target() {
        assert_eq!(
            part_path(Path::new("/d/x.h5")),
            PathBuf::from("/d/x.h5.part")
        );
        assert_eq!(
            part_meta_path(Path::new("/d/x.h5")),
            PathBuf::from("/d/x.h5.part.meta")
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
