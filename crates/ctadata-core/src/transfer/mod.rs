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
mod lock;
mod sink;
mod space;
mod stage;
mod streams;
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
pub use stage::{needs_staging, stage_one, stage_stream, StageOptions, Staged};
pub use upload::{upload_file, upload_one, upload_tree};
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
    /// Staging from tape (`get --stage`): of the `total` files of stage request `request`,
    /// `on_disk` are on disk now and `failed` could not be staged.
    fn staging(&self, _request: &str, _on_disk: usize, _failed: usize, _total: usize) {}
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
    /// The checksum verified, when one was (`adler32:0a1b2c3d`); else only the size was.
    pub verified: Option<String>,
    /// An upload (local to remote) rather than a download.
    pub upload: bool,
}

impl FileDone {
    /// Where the data came from and where it went, as the user names them.
    pub fn endpoints(&self) -> (String, String) {
        let local = self.local.display().to_string();
        if self.upload {
            (local, self.remote.clone())
        } else {
            (self.remote.clone(), local)
        }
    }

    /// How the copy was checked, for people: `verified by adler32` or `verified by size only`.
    pub fn how_verified(&self) -> &'static str {
        match self.verified {
            Some(_) => "verified by adler32",
            None => "verified by size only",
        }
    }
}

/// Files at least this large are downloaded with several ranged streams by default.
pub const DEFAULT_STREAM_CUTOFF: u64 = 64 << 20;

/// Options of a transfer. Retries are not among them: the backend's retry layer
/// ([`crate::retry::Retrying`]) tries each request again and resumes broken downloads.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransferOptions {
    /// Files in flight at once.
    pub jobs: usize,
    /// Ranged streams for one big download (`None`: the backend's default; 1: one stream).
    pub streams: Option<usize>,
    /// Files at least this large are downloaded with several streams.
    pub stream_cutoff: u64,
    /// Stop at the first failure instead of going on with the other files.
    pub fail_fast: bool,
    /// Replace existing files at the destination.
    pub overwrite: bool,
    /// Skip every file that exists at the destination, whatever its content (the CLI's
    /// `--ignore-existing`).
    pub skip_existing: bool,
    /// Transfer even files whose destination copy is identical (same size and mtime, and
    /// adler32 where both sides know it); without it they are skipped.
    pub force: bool,
    /// Keep one [`FileRecord`] per file in the [`Summary`] (for `--json`; off, memory stays
    /// flat whatever the tree's size).
    pub keep_files: bool,
    /// Where uploads take a lock per destination (the runtime directory), and the scope of
    /// the destination's names (the profile's URL): two runs on one machine uploading to
    /// one remote path take turns. `None`: no lock.
    pub upload_locks: Option<(PathBuf, String)>,
    /// Skip files whose destination copy is as new or newer than the source.
    pub update: bool,
    /// Only say what would be done.
    pub dry_run: bool,
    /// Which files take part.
    pub filter: Filter,
    /// Who hears about progress.
    pub progress: Arc<dyn Progress>,
    /// Stage files that are only on tape before downloading them (`get --stage`); `None`:
    /// such a file fails at once, saying it is on tape.
    pub stage: Option<StageOptions>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            streams: None,
            stream_cutoff: DEFAULT_STREAM_CUTOFF,
            fail_fast: false,
            overwrite: true,
            skip_existing: false,
            force: false,
            keep_files: false,
            upload_locks: None,
            update: false,
            dry_run: false,
            filter: Filter::default(),
            progress: Arc::new(NoProgress),
            stage: None,
        }
    }
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("jobs", &self.jobs)
            .field("streams", &self.streams)
            .field("stream_cutoff", &self.stream_cutoff)
            .field("fail_fast", &self.fail_fast)
            .field("overwrite", &self.overwrite)
            .field("skip_existing", &self.skip_existing)
            .field("force", &self.force)
            .field("update", &self.update)
            .field("dry_run", &self.dry_run)
            .field("stage", &self.stage)
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

/// One file of a transfer, as `--json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FileRecord {
    /// Where the file comes from (remote path for downloads, local path for uploads).
    pub source: String,
    /// Where it goes.
    pub destination: String,
    /// `done`, `skipped`, `planned` or `failed`.
    pub outcome: &'static str,
    /// The file's size, when known.
    pub size: Option<u64>,
    /// Bytes moved in this run.
    pub bytes: u64,
    /// Bytes already there from an earlier run (resumed).
    pub resumed_from: u64,
    /// `adler32` or `size` (what was compared after the transfer), for files moved.
    pub verified: Option<&'static str>,
    /// The checksum verified (`adler32:0a1b2c3d`).
    pub checksum: Option<String>,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
}

/// The outcome of a transfer: one shape for single files, trees and dry runs.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// `get` or `put`.
    pub command: &'static str,
    /// Nothing was transferred: the files counted as `planned` would have been.
    pub dry_run: bool,
    /// Files transferred.
    pub transferred: usize,
    /// Files skipped (already there, not regular files...).
    pub skipped: usize,
    /// Files a dry run would transfer.
    pub planned: usize,
    /// Files that failed (as many as `failures`).
    pub failed: usize,
    /// Directories created.
    pub directories: usize,
    /// Bytes transferred.
    pub bytes: u64,
    /// Bytes resumed from earlier runs (not transferred again).
    pub resumed_bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Each file, when asked for ([`TransferOptions::keep_files`]).
    pub files: Vec<FileRecord>,
    /// Files that failed, with why and the exit code each alone would have had.
    pub failures: Vec<Failure>,
    /// Files transferred and verified by adler32.
    #[serde(skip)]
    pub verified_adler32: usize,
    /// Files transferred and checked by size only.
    #[serde(skip)]
    pub verified_size: usize,
    /// Whether `files` is filled in.
    #[serde(skip)]
    pub keep_files: bool,
    /// Some failure may heal when the same command runs again.
    #[serde(skip)]
    pub retry: bool,
}

impl Summary {
    /// An empty summary of `command` (`get` or `put`) run with `opts`.
    pub fn new(command: &'static str, opts: &TransferOptions) -> Self {
        Self {
            command,
            dry_run: opts.dry_run,
            keep_files: opts.keep_files,
            ..Self::default()
        }
    }

    /// Ok when nothing failed; otherwise [`Error::Partial`].
    pub fn into_result(self) -> Result<Summary> {
        if self.failures.is_empty() {
            Ok(self)
        } else {
            Err(Error::Partial {
                failed: self.failures.len(),
                total: self.failures.len() + self.transferred + self.skipped,
                retry: self.retry,
            })
        }
    }

    /// Counts a failed file (`source` to `destination`).
    pub fn fail(&mut self, source: String, destination: String, e: &Error) {
        tracing::debug!(path = %source, "failed: {e}");
        // What to do belongs with each failure, except the generic rerun advice.
        let reason = match e.hint() {
            Some(h) if !e.is_temporary() && !matches!(e, Error::Partial { .. }) => {
                format!("{e} ({h})")
            }
            _ => e.to_string(),
        };
        self.retry |= e.is_temporary() || matches!(e, Error::Partial { retry: true, .. });
        if self.keep_files {
            self.files.push(FileRecord {
                source: source.clone(),
                destination,
                outcome: "failed",
                size: None,
                bytes: 0,
                resumed_from: 0,
                verified: None,
                checksum: None,
                reason: Some(reason.clone()),
            });
        }
        self.failed += 1;
        self.failures.push(Failure {
            path: source,
            reason,
            exit_code: e.exit_code(),
        });
    }

    /// Counts one file's outcome (`source` to `destination`, `size` when known).
    pub fn count(
        &mut self,
        source: String,
        destination: String,
        size: Option<u64>,
        o: &FileOutcome,
    ) {
        let mut rec = FileRecord {
            source,
            destination,
            outcome: "done",
            size,
            bytes: 0,
            resumed_from: 0,
            verified: None,
            checksum: None,
            reason: None,
        };
        match o {
            FileOutcome::Done(d) => {
                self.transferred += 1;
                self.bytes += d.bytes;
                self.resumed_bytes += d.resumed_from;
                if d.verified.is_some() {
                    self.verified_adler32 += 1;
                } else {
                    self.verified_size += 1;
                }
                rec.size = Some(d.size);
                rec.bytes = d.bytes;
                rec.resumed_from = d.resumed_from;
                rec.verified = Some(if d.verified.is_some() {
                    "adler32"
                } else {
                    "size"
                });
                rec.checksum = d.verified.clone();
            }
            FileOutcome::Skipped { reason } => {
                self.skipped += 1;
                rec.outcome = "skipped";
                rec.reason = Some(reason.clone());
            }
            FileOutcome::Planned { bytes } => {
                self.planned += 1;
                rec.outcome = "planned";
                rec.size = bytes.or(size);
            }
            FileOutcome::Failed { reason } => {
                self.failed += 1;
                rec.outcome = "failed";
                rec.reason = Some(reason.clone());
            }
        }
        if self.keep_files {
            self.files.push(rec);
        }
    }

    /// How the transferred files were checked, for people: `3 verified by adler32, 1 by
    /// size only (the server offers no checksum)`; empty when nothing moved.
    pub fn verification(&self) -> String {
        match (self.verified_adler32, self.verified_size) {
            (0, 0) => String::new(),
            (a, 0) => format!("{a} verified by adler32"),
            (0, s) => format!("{s} verified by size only (the server offers no checksum)"),
            (a, s) => {
                format!("{a} verified by adler32, {s} by size only (the server offers no checksum)")
            }
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
