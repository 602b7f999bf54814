//! Transfers between local files and the storage: single files and whole trees, with
//! bounded parallelism, verification before a file replaces anything, and a summary.

use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::backend::{GetOptions, PutOptions, StorageBackend, Upload, IO_BLOCK};
use crate::checksum::{Adler32, Checksum, ChecksumAlgorithm};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::path::RemotePath;

/// Walks a remote tree breadth-first with up to `concurrency` listings in flight, yielding
/// every entry below `root` (directories too, so empty ones can be recreated).
///
/// Entries a server lists outside the directory that was asked for are dropped with a
/// warning: whatever the hrefs say, the walk never leaves `root`.
pub fn walk(
    backend: Arc<dyn StorageBackend>,
    root: RemotePath,
    concurrency: usize,
) -> BoxStream<'static, Result<Entry>> {
    type Listing = BoxFuture<'static, (RemotePath, Result<Vec<Entry>>)>;
    struct State {
        backend: Arc<dyn StorageBackend>,
        pending: VecDeque<RemotePath>,
        inflight: FuturesUnordered<Listing>,
        ready: VecDeque<Result<Entry>>,
        concurrency: usize,
    }
    let state = State {
        backend,
        pending: VecDeque::from([root]),
        inflight: FuturesUnordered::new(),
        ready: VecDeque::new(),
        concurrency: concurrency.max(1),
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.ready.pop_front() {
                return Some((item, st));
            }
            while st.inflight.len() < st.concurrency {
                let Some(dir) = st.pending.pop_front() else { break };
                let b = st.backend.clone();
                st.inflight.push(
                    async move {
                        let r = b.list(&dir).await;
                        (dir, r)
                    }
                    .boxed(),
                );
            }
            match st.inflight.next().await {
                None => return None,
                Some((_, Err(e))) => st.ready.push_back(Err(e)),
                Some((dir, Ok(entries))) => {
                    for e in entries {
                        if e.path.parent().as_ref() != Some(&dir) {
                            tracing::warn!(listed = %dir, entry = %e.path, "server listed an entry outside the directory; ignored");
                            continue;
                        }
                        if e.is_dir() {
                            st.pending.push_back(e.path.clone());
                        }
                        st.ready.push_back(Ok(e));
                    }
                }
            }
        }
    })
    .boxed()
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
    let mut name = target
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    target.with_file_name(name)
}

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileDone {
    /// Remote path.
    pub remote: String,
    /// Local path.
    pub local: PathBuf,
    /// Bytes moved.
    pub bytes: u64,
    /// The checksum verified, when one was.
    pub verified: Option<String>,
}

/// Downloads one file to `target` through `<target>.part`; the target is replaced only
/// after the byte count and (when the server gives one) the adler32 checksum matched.
pub async fn download_file(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    known: Option<&Entry>,
    target: &Path,
) -> Result<FileDone> {
    if target.is_dir() {
        return Err(Error::conflict(
            target.display(),
            "a local directory is in the way of the downloaded file",
            "choose another target path",
        ));
    }
    let dl = backend
        .get(
            path,
            GetOptions {
                want_checksums: true,
                ..Default::default()
            },
        )
        .await?;
    let expected_size = dl.size.or(known.and_then(|e| e.size));
    let mut expected_sums = dl.checksums.clone();
    if let Some(k) = known {
        for c in &k.checksums {
            if Checksum::find(&expected_sums, &c.algorithm).is_none() {
                expected_sums.push(c.clone());
            }
        }
    }
    let mtime = dl.mtime.or(known.and_then(|e| e.mtime));
    let part = part_path(target);
    let file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| Error::local("create", &part, e))?;
    let mut out = tokio::io::BufWriter::with_capacity(IO_BLOCK, file);
    let mut adler = Adler32::new();
    let mut n: u64 = 0;
    let mut stream = dl.stream;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        adler.update(&chunk);
        n += chunk.len() as u64;
        out.write_all(&chunk)
            .await
            .map_err(|e| Error::local("write", &part, e))?;
    }
    out.flush()
        .await
        .map_err(|e| Error::local("write", &part, e))?;
    let file = out.into_inner();
    let discard = |msg: String| {
        let _ = std::fs::remove_file(&part);
        Error::Integrity {
            path: path.to_string(),
            message: msg,
        }
    };
    if let Some(size) = expected_size {
        if size != n {
            return Err(discard(format!(
                "expected {size} bytes, received {n}; nothing was saved"
            )));
        }
    }
    let mut verified = None;
    if let Some(want) = Checksum::find(&expected_sums, &ChecksumAlgorithm::Adler32) {
        let got = adler.checksum();
        if got.value != want.value {
            return Err(discard(format!(
                "adler32 is {} but the server says {}; nothing was saved",
                got.value, want.value
            )));
        }
        verified = Some(got.to_string());
    }
    if let Some(t) = mtime {
        let f = file.into_std().await;
        let _ = f.set_modified(t);
    } else {
        drop(file);
    }
    tokio::fs::rename(&part, target)
        .await
        .map_err(|e| Error::local("rename into place", target, e))?;
    Ok(FileDone {
        remote: path.to_string(),
        local: target.to_path_buf(),
        bytes: n,
        verified,
    })
}

/// Uploads one local file; missing parents are created when `opts.create_parents` is set.
pub async fn upload_file(
    backend: &dyn StorageBackend,
    local: &Path,
    remote: &RemotePath,
    opts: PutOptions,
) -> Result<FileDone> {
    let body = Upload::from_file(local).await?;
    let out = backend.put(remote, body, opts).await?;
    Ok(FileDone {
        remote: out.path.to_string(),
        local: local.to_path_buf(),
        bytes: out.size,
        verified: out.checksums.first().map(|c| c.to_string()),
    })
}

/// Options of a tree transfer.
#[derive(Debug, Clone)]
pub struct TreeOptions {
    /// Files in flight at once.
    pub jobs: usize,
    /// Stop at the first failure instead of going on with the other files.
    pub fail_fast: bool,
    /// Replace existing remote files (uploads).
    pub overwrite: bool,
}

impl Default for TreeOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            fail_fast: false,
            overwrite: false,
        }
    }
}

/// One failed file of a tree transfer.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// The file (remote path for downloads, local path for uploads).
    pub path: String,
    /// Why, in one line.
    pub reason: String,
    /// The exit code this failure alone would have had.
    pub exit_code: i32,
}

/// The outcome of a tree transfer.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Files transferred.
    pub transferred: usize,
    /// Directories created.
    pub directories: usize,
    /// Entries skipped (with the reason logged).
    pub skipped: usize,
    /// Files that failed.
    pub failures: Vec<Failure>,
    /// Bytes transferred.
    pub bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl Summary {
    /// Ok when nothing failed; otherwise the failure itself when it was the only file, else
    /// [`Error::Partial`].
    pub fn into_result(self) -> Result<Summary> {
        if self.failures.is_empty() {
            Ok(self)
        } else {
            Err(Error::Partial {
                failed: self.failures.len(),
                total: self.failures.len() + self.transferred,
            })
        }
    }

    fn fail(&mut self, path: String, e: &Error) {
        tracing::error!(path = %path, "{e}");
        self.failures.push(Failure {
            path,
            reason: e.to_string(),
            exit_code: e.exit_code(),
        });
    }
}

/// Downloads the tree below `root` into `local` (created if needed).
pub async fn download_tree(
    backend: Arc<dyn StorageBackend>,
    root: &RemotePath,
    local: &Path,
    opts: &TreeOptions,
    on_file: &(dyn Fn(&FileDone) + Send + Sync),
) -> Result<Summary> {
    let started = Instant::now();
    tokio::fs::create_dir_all(local)
        .await
        .map_err(|e| Error::local("create directory", local, e))?;
    let mut summary = Summary::default();
    let mut entries = walk(backend.clone(), root.clone(), opts.jobs.clamp(1, 8));
    let mut inflight = FuturesUnordered::new();
    let mut walking = true;
    loop {
        // Keep the walk ahead of the transfers, but never more than `jobs` files in flight.
        let next = if walking && inflight.len() < opts.jobs.max(1) {
            tokio::select! {
                biased;
                Some(done) = inflight.next(), if !inflight.is_empty() => Step::Done(done),
                e = entries.next() => match e { Some(e) => Step::Entry(e), None => Step::WalkEnd },
            }
        } else {
            match inflight.next().await {
                Some(done) => Step::Done(done),
                None => break,
            }
        };
        match next {
            Step::WalkEnd => walking = false,
            Step::Entry(Err(e)) => summary.fail(root.to_string(), &e),
            Step::Entry(Ok(entry)) => {
                let rel = entry.path.strip_prefix(root).unwrap_or("").to_string();
                let target = match safe_local_join(local, &rel) {
                    Ok(t) => t,
                    Err(e) => {
                        summary.fail(entry.path.to_string(), &e);
                        continue;
                    }
                };
                if entry.is_dir() {
                    match tokio::fs::create_dir_all(&target).await {
                        Ok(()) => summary.directories += 1,
                        Err(e) => summary.fail(
                            entry.path.to_string(),
                            &Error::local("create directory", &target, e),
                        ),
                    }
                    continue;
                }
                let b = backend.clone();
                inflight.push(
                    async move {
                        if let Some(parent) = target.parent() {
                            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                                (
                                    entry.path.to_string(),
                                    Error::local("create directory", parent, e),
                                )
                            })?;
                        }
                        download_file(b.as_ref(), &entry.path, Some(&entry), &target)
                            .await
                            .map_err(|e| (entry.path.to_string(), e))
                    }
                    .boxed(),
                );
            }
            Step::Done(Ok(done)) => {
                summary.transferred += 1;
                summary.bytes += done.bytes;
                on_file(&done);
            }
            Step::Done(Err((p, e))) => {
                summary.fail(p, &e);
                if opts.fail_fast {
                    break;
                }
            }
        }
        if opts.fail_fast && !summary.failures.is_empty() {
            break;
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

enum Step<T> {
    Entry(Result<Entry>),
    WalkEnd,
    Done(T),
}

/// Uploads the local tree `local` to `root` (created with its parents if needed).
pub async fn upload_tree(
    backend: Arc<dyn StorageBackend>,
    local: &Path,
    root: &RemotePath,
    opts: &TreeOptions,
    on_file: &(dyn Fn(&FileDone) + Send + Sync),
) -> Result<Summary> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let (dirs, files, skipped) = scan_local(local)?;
    for (path, why) in &skipped {
        tracing::warn!(path = %path.display(), "skipped: {why}");
    }
    summary.skipped = skipped.len();
    backend.mkdir(root, true).await?;
    // Directories top-down, then the files in parallel.
    for rel in &dirs {
        let remote = root.join(rel)?;
        match backend.mkdir(&remote, true).await {
            Ok(()) => summary.directories += 1,
            Err(e) => summary.fail(local.join(rel).display().to_string(), &e),
        }
    }
    let mut results = futures::stream::iter(files.into_iter().map(|rel| {
        let b = backend.clone();
        let path = local.join(&rel);
        let remote = root.join(&rel);
        let put = PutOptions {
            overwrite: opts.overwrite,
            create_parents: false,
            checksum: None,
        };
        async move {
            let remote = remote.map_err(|e| (path.display().to_string(), e))?;
            upload_file(b.as_ref(), &path, &remote, put)
                .await
                .map_err(|e| (path.display().to_string(), e))
        }
    }))
    .buffer_unordered(opts.jobs.max(1));
    while let Some(r) = results.next().await {
        match r {
            Ok(done) => {
                summary.transferred += 1;
                summary.bytes += done.bytes;
                on_file(&done);
            }
            Err((p, e)) => {
                summary.fail(p, &e);
                if opts.fail_fast {
                    break;
                }
            }
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

type Scan = (Vec<String>, Vec<String>, Vec<(PathBuf, String)>);

/// Lists a local tree: relative directory paths (parents first), relative file paths, and
/// what was skipped (symlinks, special files, names that are not UTF-8).
fn scan_local(base: &Path) -> Result<Scan> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut queue = VecDeque::from([(base.to_path_buf(), String::new())]);
    while let Some((dir, rel)) = queue.pop_front() {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::local("read directory", &dir, e))?;
        let mut children: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let path = child.path();
            let Some(name) = child.file_name().to_str().map(str::to_string) else {
                skipped.push((path, "the name is not valid UTF-8".into()));
                continue;
            };
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match child.file_type() {
                Ok(t) if t.is_dir() => {
                    dirs.push(child_rel.clone());
                    queue.push_back((path, child_rel));
                }
                Ok(t) if t.is_file() => files.push(child_rel),
                Ok(t) if t.is_symlink() => {
                    skipped.push((path, "symbolic links are not followed".into()))
                }
                _ => skipped.push((path, "not a regular file or directory".into())),
            }
        }
    }
    Ok((dirs, files, skipped))
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
    fn part_path_sits_beside_the_target() {
        assert_eq!(
            part_path(Path::new("/d/x.h5")),
            PathBuf::from("/d/x.h5.part")
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
