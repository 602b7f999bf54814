//! The `StorageBackend` trait every way into the storage implements, and its companions.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::path::RemotePath;

/// A stream of bytes coming from (or going to) the storage.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A stream of listing entries, yielded as the server's answer is read.
pub type EntryStream = BoxStream<'static, Result<Entry>>;

/// Which bytes of a file to read.
///
/// A `Bounded` range is built with [`ByteRange::bounded`], which refuses empty and inverted
/// ranges, so every range renders as a valid HTTP `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `start..end` (end exclusive, never empty).
    #[non_exhaustive]
    Bounded {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// From `start` to the end of the file (resume).
    From(u64),
    /// The last `n` bytes (Parquet footers).
    Suffix(u64),
}

impl ByteRange {
    /// `start..end` (end exclusive); an empty (`start == end`) or inverted range is refused.
    pub fn bounded(start: u64, end: u64) -> Result<Self> {
        if start >= end {
            return Err(Error::usage(
                format!("the byte range {start}..{end} is empty or inverted"),
                "give a range whose end lies after its start",
            ));
        }
        Ok(ByteRange::Bounded { start, end })
    }

    /// The first byte this range asks for, when it does not depend on the file's size.
    pub fn start(&self) -> Option<u64> {
        match *self {
            ByteRange::Bounded { start, .. } | ByteRange::From(start) => Some(start),
            ByteRange::Suffix(_) => None,
        }
    }

    /// The value of an HTTP `Range` header for this range.
    pub fn to_http_header(&self) -> String {
        match *self {
            ByteRange::Bounded { start, end } => {
                format!("bytes={}-{}", start, end.saturating_sub(1))
            }
            ByteRange::From(start) => format!("bytes={start}-"),
            ByteRange::Suffix(n) => format!("bytes=-{n}"),
        }
    }

    /// The absolute `start..end` this range selects in a file of `size` bytes.
    pub fn resolve(&self, size: u64) -> std::ops::Range<u64> {
        match *self {
            ByteRange::Bounded { start, end } => start.min(size)..end.min(size),
            ByteRange::From(start) => start.min(size)..size,
            ByteRange::Suffix(n) => size.saturating_sub(n)..size,
        }
    }
}

/// Options of a read; build with `GetOptions::default()` and the `with_*` methods.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GetOptions {
    /// Only these bytes; `None` for the whole file.
    pub range: Option<ByteRange>,
    /// Fail with `Conflict` unless the file's ETag is this one (resume, conditional reads).
    pub if_match: Option<String>,
    /// Ask the server for its checksums (RFC 3230 `Want-Digest`).
    pub want_checksums: bool,
    /// What the caller already knows of the file (from the listing that found it): a
    /// backend may use it instead of looking the file up again.
    pub known: Option<Entry>,
    // ---- mount (issue 19) ----
    /// A read session shared by the reads of one open file: a backend may keep in it what
    /// makes the next read of the same file cheaper (dCache: the pool's URL, valid while a
    /// connection that used it stays open), and must fall back when that no longer works.
    pub session: Option<ReadSession>,
}

// ---- mount (issue 19) ----
/// What one open file's reads share (see [`GetOptions::session`]): an opaque slot a backend
/// fills and empties. Its contents may hold a secret (a pool URL with its transfer id): it is
/// never shown, not even by `Debug`.
#[derive(Clone, Default)]
pub struct ReadSession(Arc<std::sync::Mutex<Option<String>>>);

impl ReadSession {
    /// An empty session.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the backend kept, if anything.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Keeps `value` (or forgets, with `None`).
    pub fn set(&self, value: Option<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

impl Debug for ReadSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().map(|v| v.is_some()).unwrap_or(false);
        f.debug_struct("ReadSession").field("held", &held).finish()
    }
}
// ---- end of mount ----

impl GetOptions {
    /// Only these bytes.
    pub fn with_range(mut self, range: ByteRange) -> Self {
        self.range = Some(range);
        self
    }

    /// Only if the file still has this ETag.
    pub fn with_if_match(mut self, etag: impl Into<String>) -> Self {
        self.if_match = Some(etag.into());
        self
    }

    /// Ask for the server's checksums.
    pub fn with_checksums(mut self, want: bool) -> Self {
        self.want_checksums = want;
        self
    }

    /// The file's entry as the caller's listing gave it.
    pub fn with_known(mut self, entry: Entry) -> Self {
        self.known = Some(entry);
        self
    }

    /// The read session of the open file this read belongs to (mount, issue 19).
    pub fn with_session(mut self, session: ReadSession) -> Self {
        self.session = Some(session);
        self
    }
}

/// An open read: the bytes plus what the server said about the file.
pub struct Download {
    /// The file read.
    pub path: RemotePath,
    /// Size of the whole file, when known.
    pub size: Option<u64>,
    /// The byte range delivered (`0..size` for a whole read), when known.
    pub range: Option<std::ops::Range<u64>>,
    /// Modification time, when known.
    pub mtime: Option<SystemTime>,
    /// Entity tag, when known.
    pub etag: Option<String>,
    /// Whole-file checksums the server reported with this read.
    pub checksums: Vec<Checksum>,
    /// The bytes.
    pub stream: ByteStream,
}

impl Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("range", &self.range)
            .field("etag", &self.etag)
            .field("checksums", &self.checksums)
            .finish_non_exhaustive()
    }
}

/// Something that can produce the same bytes again (so a redirect or a retry can resend them).
pub type StreamFactory = Arc<dyn Fn() -> BoxFuture<'static, Result<ByteStream>> + Send + Sync>;

#[derive(Clone)]
enum UploadSource {
    File(PathBuf),
    Bytes(Bytes),
    Factory(StreamFactory),
}

/// Called with the size of each block as it is read for sending.
pub type ReadHook = Arc<dyn Fn(u64) + Send + Sync>;

/// A replayable upload body of known length.
#[derive(Clone)]
pub struct Upload {
    source: UploadSource,
    len: u64,
    on_read: Option<ReadHook>,
}

/// Block size for reading local files: large blocks keep system calls few.
pub const IO_BLOCK: usize = 1 << 20;

impl Upload {
    /// A local file, read in large blocks each time the body is (re)sent.
    pub async fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| Error::local("read", &path, e))?;
        if !meta.is_file() {
            return Err(Error::usage(
                format!("{} is not a regular file", path.display()),
                "give a file, or use -r for a directory",
            ));
        }
        Ok(Self {
            len: meta.len(),
            source: UploadSource::File(path),
            on_read: None,
        })
    }

    /// Bytes held in memory (small objects).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            len: bytes.len() as u64,
            source: UploadSource::Bytes(bytes),
            on_read: None,
        }
    }

    /// A body produced on demand by `factory`, which must yield exactly `len` bytes each time.
    pub fn from_factory(len: u64, factory: StreamFactory) -> Self {
        Self {
            len,
            source: UploadSource::Factory(factory),
            on_read: None,
        }
    }

    /// Reports each block read for sending to `hook` (progress bars).
    pub fn with_read_hook(mut self, hook: ReadHook) -> Self {
        self.on_read = Some(hook);
        self
    }

    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty body.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hook given by [`Upload::with_read_hook`], for senders that read the file themselves.
    pub fn read_hook(&self) -> Option<&ReadHook> {
        self.on_read.as_ref()
    }

    /// The local file behind this body, when there is one.
    pub fn local_path(&self) -> Option<&Path> {
        match &self.source {
            UploadSource::File(p) => Some(p),
            _ => None,
        }
    }

    /// Opens the body from its start.
    pub async fn open(&self) -> Result<ByteStream> {
        let stream = self.open_raw().await?;
        Ok(match self.on_read.clone() {
            None => stream,
            Some(hook) => stream
                .inspect(move |r| {
                    if let Ok(b) = r {
                        hook(b.len() as u64);
                    }
                })
                .boxed(),
        })
    }

    async fn open_raw(&self) -> Result<ByteStream> {
        match &self.source {
            UploadSource::Bytes(b) => {
                let b = b.clone();
                Ok(futures::stream::once(async move { Ok(b) }).boxed())
            }
            UploadSource::Factory(f) => f().await,
            UploadSource::File(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| Error::local("read", path, e))?;
                let path = path.clone();
                Ok(tokio_util::io::ReaderStream::with_capacity(file, IO_BLOCK)
                    .map(move |r| r.map_err(|e| Error::local("read", &path, e)))
                    .boxed())
            }
        }
    }
}

impl Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let src = match &self.source {
            UploadSource::File(p) => format!("file {}", p.display()),
            UploadSource::Bytes(_) => "memory".to_string(),
            UploadSource::Factory(_) => "stream".to_string(),
        };
        f.debug_struct("Upload")
            .field("source", &src)
            .field("len", &self.len)
            .finish()
    }
}

/// Options of a write; build with `PutOptions::default()` and the `with_*` methods.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PutOptions {
    /// Replace an existing file (dCache files are write-once: the backend deletes, then puts).
    pub overwrite: bool,
    /// Create missing parent directories first.
    pub create_parents: bool,
    /// A checksum of the body known in advance, to be checked by the server when it can.
    pub checksum: Option<Checksum>,
    /// The caller has just listed the parent and the file was not there: the backend
    /// may skip its own existence check (saves a request per file in tree uploads).
    pub known_absent: bool,
}

impl PutOptions {
    /// Replace an existing file.
    pub fn with_overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Create missing parent directories first.
    pub fn with_create_parents(mut self, yes: bool) -> Self {
        self.create_parents = yes;
        self
    }

    /// A checksum of the body known in advance.
    pub fn with_checksum(mut self, sum: Checksum) -> Self {
        self.checksum = Some(sum);
        self
    }

    /// The caller knows the file is absent (it has just listed the parent).
    pub fn with_known_absent(mut self, yes: bool) -> Self {
        self.known_absent = yes;
        self
    }
}

/// The rule every backend applies before writing `path`: `Ok(false)` when nothing is
/// there, `Ok(true)` when a file is there and may be replaced; a conflict otherwise.
pub fn check_put_target(
    path: &RemotePath,
    existing: Option<&Entry>,
    overwrite: bool,
) -> Result<bool> {
    match existing {
        None => Ok(false),
        Some(e) if e.is_dir() => Err(Error::conflict(
            path,
            "a directory is there",
            "give the file's full path, or end the path with '/'",
        )),
        Some(_) if !overwrite => Err(Error::conflict(
            path,
            "a file is already there",
            "pass --force to replace it",
        )),
        Some(_) => Ok(true),
    }
}

/// What a write achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// Where the data really landed (the proxy puts it under the user's folder).
    pub path: RemotePath,
    /// Bytes written.
    pub size: u64,
    /// Checksums of the stored data that were verified against what was sent.
    pub checksums: Vec<Checksum>,
}

/// What a backend can do, so callers ask instead of guessing (rclone's feature table).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// The backend's name (`local`, `dcache`, `x509`, `downloadservice`).
    pub backend: &'static str,
    /// Files can be written.
    pub write: bool,
    /// Directories can be created.
    pub mkdir: bool,
    /// Files and directories can be deleted.
    pub delete: bool,
    /// Files and directories can be renamed on the server.
    pub rename: bool,
    /// Byte ranges can be read (resume, columnar readers).
    pub ranged_reads: bool,
    /// Entity tags are given (change detection for resume, conditional reads).
    pub etags: bool,
    /// Checksum algorithms the server reports.
    pub checksums: Vec<ChecksumAlgorithm>,
    /// How many transfers at once suit this backend by default.
    pub default_jobs: usize,
    /// How many ranged streams one big download uses by default (1: one stream).
    pub default_streams: usize,
}

/// How far a server does something users rely on, as far as the client has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Every answer seen so far had it.
    Yes,
    /// Some answers had it, some did not.
    Partly,
    /// No answer seen so far had it.
    No,
    /// Nothing seen yet tells (no answer of that kind, or the server cannot be asked).
    #[default]
    Unknown,
}

impl Support {
    /// From counts: `with` of `seen` answers had it.
    pub fn from_counts(with: u64, seen: u64) -> Self {
        match (with, seen) {
            (_, 0) => Self::Unknown,
            (w, s) if w >= s => Self::Yes,
            (0, _) => Self::No,
            _ => Self::Partly,
        }
    }
}

/// What the client has learned of the server behind a backend from its answers, so that
/// `stat -v` and the object_store adapter say what the server lacks (ETags, checksums in
/// listings, an atomic create-if-absent) instead of claiming it.
///
/// Unlike [`Capabilities`] (what the backend's code can do), these are the server's
/// traits, learned as requests are answered: they start [`Support::Unknown`] and fill in.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerNotes {
    /// The server's own name for itself (its `Server` header), when it gives one.
    pub server: Option<String>,
    /// Files in listings (PROPFIND) carry an entity tag.
    pub etags_in_listings: Support,
    /// A file's HEAD carries an entity tag.
    pub etags_on_head: Support,
    /// Files in listings carry checksums.
    pub checksums_in_listings: Support,
    /// A file's HEAD with `Want-Digest` carries a checksum.
    pub checksums_on_head: Support,
    /// A create-if-absent (a rename refusing an existing target) is refused by the server
    /// itself, atomically (WebDAV `Overwrite: F` honoured in one namespace operation). When
    /// not [`Support::Yes`], the client checks that the target is absent before it
    /// renames, and a writer racing in between can still be replaced.
    pub atomic_create: Support,
}

impl ServerNotes {
    /// Whether files can be told changed by an entity tag (from listings or HEAD).
    pub fn etags(&self) -> Support {
        match (self.etags_in_listings, self.etags_on_head) {
            (Support::Yes, _) | (_, Support::Yes) => Support::Yes,
            (Support::Partly, _) | (_, Support::Partly) => Support::Partly,
            (Support::No, Support::No) => Support::No,
            (Support::No, Support::Unknown) | (Support::Unknown, Support::No) => Support::No,
            (Support::Unknown, Support::Unknown) => Support::Unknown,
        }
    }

    /// The notes as `(key, text)` lines for people (`stat -v`): what the server gives, and
    /// what it lacks with what the client does instead.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        out.push((
            "server:",
            self.server
                .clone()
                .unwrap_or_else(|| "(it does not name itself)".into()),
        ));
        let etags = match (self.etags_in_listings, self.etags_on_head, self.etags()) {
            (Support::Yes, _, _) => "in listings".to_string(),
            (_, Support::Yes, _) => "not in listings; a file's HEAD gives one".to_string(),
            (_, _, Support::Partly) => "for some files only".to_string(),
            (_, _, Support::No) => {
                "none: a changed file is noticed by its size and time only".to_string()
            }
            _ => "not seen yet".to_string(),
        };
        out.push(("etags:", etags));
        let sums = match (self.checksums_in_listings, self.checksums_on_head) {
            (Support::Yes, _) => "in listings".to_string(),
            (Support::Partly, _) => {
                "in listings for some files only; the others asked per file (HEAD with Want-Digest)"
                    .to_string()
            }
            (_, Support::Yes | Support::Partly) => {
                "not in listings; asked per file (HEAD with Want-Digest)".to_string()
            }
            (Support::No, Support::No) => "none: transfers are checked by size only".to_string(),
            (Support::No, Support::Unknown) => {
                "not in listings; asked per file (HEAD with Want-Digest)".to_string()
            }
            _ => "not seen yet".to_string(),
        };
        out.push(("digests:", sums));
        let create = match self.atomic_create {
            Support::Yes => "atomic: the server itself refuses an existing target (Overwrite: F)".to_string(),
            Support::No => "not atomic: this server ignores Overwrite: F, so the client checks that the target is absent first; a writer racing in between can be replaced".to_string(),
            _ => "not atomic: the server is not known to honour Overwrite: F, so the client checks that the target is absent first; a writer racing in between can be replaced".to_string(),
        };
        out.push(("create:", create));
        out
    }
}

/// One way into the storage: a protocol plus an authentication mode.
///
/// Every method works on [`RemotePath`]s, which cannot escape the root. An operation a
/// backend cannot do returns [`Error::Unsupported`] naming the profile that can; it is
/// never a silent no-op.
#[async_trait]
pub trait StorageBackend: Send + Sync + Debug {
    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// What the client has learned so far of the server's traits (see [`ServerNotes`]).
    /// By default, nothing learned: the ETag notes follow [`Capabilities::etags`] and a
    /// create-if-absent is not claimed atomic.
    fn server_notes(&self) -> ServerNotes {
        let etags = if self.capabilities().etags {
            Support::Unknown
        } else {
            Support::No
        };
        ServerNotes {
            etags_in_listings: etags,
            etags_on_head: etags,
            ..ServerNotes::default()
        }
    }

    /// Metadata of one file or directory.
    async fn stat(&self, path: &RemotePath) -> Result<Entry>;

    /// The children of a directory (not the directory itself, not recursive), yielded as the
    /// server's answer is read. Errors known before the first entry (not found, not a
    /// directory, refused) come as the outer `Err`; later ones end the stream.
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream>;

    /// The children of a directory, collected (small directories, tests).
    async fn list_all(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        use futures::TryStreamExt;
        self.list(dir).await?.try_collect().await
    }

    /// Reads a file, whole or a byte range, as a stream.
    async fn get(&self, path: &RemotePath, opts: GetOptions) -> Result<Download>;

    /// The server's checksums of one file, asked for that file alone (a WebDAV backend
    /// sends `HEAD` with `Want-Digest`): what a checksum that came with a download is
    /// checked against before data is called corrupt. By default those of [`Self::stat`].
    async fn checksums(&self, path: &RemotePath) -> Result<Vec<Checksum>> {
        Ok(self.stat(path).await?.checksums)
    }

    /// Writes a file from a replayable body of known length.
    async fn put(&self, path: &RemotePath, body: Upload, opts: PutOptions) -> Result<PutOutcome>;

    /// Creates a directory; with `parents`, creates missing ancestors and accepts an existing one.
    async fn mkdir(&self, path: &RemotePath, parents: bool) -> Result<()>;

    /// Deletes a file, or a directory (an empty one unless `recursive`).
    async fn delete(&self, path: &RemotePath, recursive: bool) -> Result<()>;

    /// Renames (moves) a file or directory on the server.
    async fn rename(&self, from: &RemotePath, to: &RemotePath, overwrite: bool) -> Result<()>;

    // Optional capabilities: a backend that has one returns it; `None` means the backend
    // cannot (see [`unsupported`] for the error callers give then).

    /// Tape staging and archive information (WLCG Tape REST API), when this backend has it.
    fn tape(&self) -> Option<&dyn crate::tape::TapeOps> {
        None
    }

    /// Share links (dCache macaroons), when this backend can ask for them.
    fn share_links(&self) -> Option<&dyn crate::share::ShareOps> {
        None
    }

    /// Server-side copies (WebDAV `COPY`, HTTP third-party copy), when this backend does them.
    fn server_copy(&self) -> Option<&dyn crate::tpc::ServerCopyOps> {
        None
    }
}

/// The error for an optional capability (tape, share links, server-side copy) that the
/// backend `backend` lacks: it names the operation and the profiles that have it.
pub fn unsupported(operation: &str, backend: &str) -> Error {
    Error::Unsupported {
        operation: operation.into(),
        backend: backend.into(),
        hint: format!(
            "'{operation}' needs direct access to the dCache door: use a profile of the dcache or x509 backend ('cta-data --profile cta {operation} ...', or --profile grid with a proxy)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            ByteRange::bounded(0, 10).unwrap().to_http_header(),
            "bytes=0-9"
        );
        assert_eq!(
            ByteRange::bounded(5, 6).unwrap().to_http_header(),
            "bytes=5-5"
        );
        // The old bug: 5..5 rendered as `bytes=5-4`. Empty and inverted ranges are refused.
        assert!(ByteRange::bounded(5, 5).is_err());
        assert!(ByteRange::bounded(6, 5).is_err());
        assert_eq!(ByteRange::From(5).to_http_header(), "bytes=5-");
        assert_eq!(ByteRange::Suffix(8).to_http_header(), "bytes=-8");
        assert_eq!(ByteRange::Suffix(8).resolve(5), 0..5);
        assert_eq!(ByteRange::bounded(3, 100).unwrap().resolve(10), 3..10);
    }

    #[tokio::test]
    async fn upload_bodies_replay() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 3 * IO_BLOCK + 5]).unwrap();
        let up = Upload::from_file(&p).await.unwrap();
        assert_eq!(up.len(), (3 * IO_BLOCK + 5) as u64);
        for _ in 0..2 {
            let mut s = up.open().await.unwrap();
            let mut n = 0;
            while let Some(b) = s.next().await {
                n += b.unwrap().len();
            }
            assert_eq!(n as u64, up.len());
        }
        let err = Upload::from_file(dir.path().join("missing"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
