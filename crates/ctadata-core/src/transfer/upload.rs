//! Uploads: one file, and whole trees with the remote side listed once up front.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::StreamExt;

use super::lock::FileLock;
use super::{walk, FileDone, FileOutcome, Summary, TransferOptions};
use crate::backend::{PutOptions, StorageBackend, Upload};
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::path::RemotePath;

/// Uploads one local file (retried after transient errors).
pub async fn upload_file(
    backend: &dyn StorageBackend,
    local: &Path,
    remote: &RemotePath,
    put: PutOptions,
    opts: &TransferOptions,
) -> Result<FileOutcome> {
    let name = local.display().to_string();
    if opts.dry_run {
        let bytes = tokio::fs::metadata(local).await.ok().map(|m| m.len());
        let o = FileOutcome::Planned { bytes };
        opts.progress.finished(&name, &o);
        return Ok(o);
    }
    let progress = opts.progress.clone();
    let hook_name = name.clone();
    let body = Upload::from_file(local)
        .await?
        .with_read_hook(Arc::new(move |n| progress.advanced(&hook_name, n)));
    opts.progress.started(&name, Some(body.len()), 0);
    match backend.put(remote, body, put.clone()).await {
        Ok(out) => {
            let o = FileOutcome::Done(FileDone {
                remote: out.path.to_string(),
                local: local.to_path_buf(),
                bytes: out.size,
                size: out.size,
                resumed_from: 0,
                verified: out.checksums.first().map(|c| c.to_string()),
                upload: true,
            });
            opts.progress.finished(&name, &o);
            Ok(o)
        }
        Err(e) => {
            opts.progress.finished(
                &name,
                &FileOutcome::Failed {
                    reason: e.to_string(),
                },
            );
            Err(e)
        }
    }
}

struct LocalFile {
    rel: String,
    size: u64,
    mtime: Option<SystemTime>,
}

struct Scan {
    dirs: Vec<String>,
    files: Vec<LocalFile>,
    skipped: Vec<(PathBuf, String)>,
}

/// Lists a local tree: directories (parents first), files, and what was skipped
/// (symlinks, special files, names that are not UTF-8, filtered out).
fn scan_local(base: &Path, opts: &TransferOptions) -> Result<Scan> {
    let mut scan = Scan {
        dirs: Vec::new(),
        files: Vec::new(),
        skipped: Vec::new(),
    };
    let mut queue = VecDeque::from([(base.to_path_buf(), String::new())]);
    while let Some((dir, rel)) = queue.pop_front() {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::local("read directory", &dir, e))?;
        let mut children: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let path = child.path();
            let Some(name) = child.file_name().to_str().map(str::to_string) else {
                scan.skipped
                    .push((path, "the name is not valid UTF-8".into()));
                continue;
            };
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match child.file_type() {
                Ok(t) if t.is_dir() => {
                    if opts.filter.dir(&child_rel) {
                        scan.dirs.push(child_rel.clone());
                        queue.push_back((path, child_rel));
                    }
                }
                Ok(t) if t.is_file() => {
                    if !opts.filter.file(&child_rel) {
                        continue;
                    }
                    let md = child.metadata().ok();
                    scan.files.push(LocalFile {
                        rel: child_rel,
                        size: md.as_ref().map(|m| m.len()).unwrap_or(0),
                        mtime: md.and_then(|m| m.modified().ok()),
                    });
                }
                Ok(t) if t.is_symlink() => scan
                    .skipped
                    .push((path, "symbolic links are not followed".into())),
                _ => scan
                    .skipped
                    .push((path, "not a regular file or directory".into())),
            }
        }
    }
    Ok(scan)
}

/// What is already at the destination, by path relative to `root`.
async fn remote_index(
    backend: &Arc<dyn StorageBackend>,
    root: &RemotePath,
    jobs: usize,
) -> Result<Option<HashMap<String, Entry>>> {
    match backend.stat(root).await {
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
        Ok(e) if !e.is_dir() => {
            return Err(Error::conflict(
                root,
                "a file is there, not a directory",
                "choose a directory as the destination",
            ));
        }
        Ok(_) => {}
    }
    let mut map = HashMap::new();
    let mut s = walk(backend.clone(), root.clone(), jobs.clamp(2, 8));
    while let Some(e) = s.next().await {
        let e = e?;
        if let Some(rel) = e.path.strip_prefix(root) {
            map.insert(rel.to_string(), e);
        }
    }
    Ok(Some(map))
}

enum Plan {
    Put(PutOptions),
    Skip(String),
    Refuse(Error),
}

/// The remote copy is the local file already: same size, written after the local file
/// was last changed (WebDAV cannot set a remote mtime), and the same adler32 when the
/// server lists one (then the local file is read; never a request to the server).
async fn identical(path: &Path, f: &LocalFile, r: &Entry) -> Result<Option<String>> {
    let newer = match (r.mtime, f.mtime) {
        (Some(rm), Some(lm)) => {
            let s = |t: SystemTime| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
            };
            s(rm).ok() >= s(lm).ok()
        }
        _ => false,
    };
    if r.size != Some(f.size) || !newer {
        return Ok(None);
    }
    if let Some(want) = Checksum::find(&r.checksums, &ChecksumAlgorithm::Adler32) {
        let have = super::local_adler32(path).await?;
        return Ok((have.value == want.value)
            .then(|| "identical (same size and adler32, remote copy as new or newer)".into()));
    }
    Ok(Some(
        "identical (same size, remote copy as new or newer)".into(),
    ))
}

async fn plan(
    path: &Path,
    f: &LocalFile,
    remote_path: &RemotePath,
    existing: Option<&Entry>,
    opts: &TransferOptions,
) -> Result<Plan> {
    let Some(r) = existing else {
        return Ok(Plan::Put(PutOptions {
            overwrite: false,
            create_parents: false,
            checksum: None,
            known_absent: true,
        }));
    };
    if r.is_dir() {
        return Ok(Plan::Refuse(Error::conflict(
            remote_path,
            "a directory is there",
            "rename the local file or remove the remote directory",
        )));
    }
    let replace = PutOptions {
        overwrite: true,
        create_parents: false,
        checksum: None,
        known_absent: false,
    };
    if opts.skip_existing {
        return Ok(Plan::Skip(
            "already at the destination (--ignore-existing)".into(),
        ));
    }
    if opts.update {
        if let (Some(rm), Some(lm)) = (r.mtime, f.mtime) {
            if rm >= lm {
                return Ok(Plan::Skip(
                    "the remote copy is as new or newer (--update)".into(),
                ));
            }
        }
        return Ok(Plan::Put(replace));
    }
    if !opts.force {
        if let Some(why) = identical(path, f, r).await? {
            return Ok(Plan::Skip(why));
        }
    }
    if opts.overwrite {
        return Ok(Plan::Put(replace));
    }
    Ok(Plan::Refuse(Error::conflict(
        remote_path,
        "a different file is already there",
        "pass --force to replace it, --update to replace it only by a newer file, or --ignore-existing to keep it",
    )))
}

/// Creates `dir` (mode 0700) if needed, and accepts it only when it is ours: another user
/// could otherwise hold our locks (a shared `/tmp`).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // Checked once per process (a tree upload asks for every file).
    static CHECKED: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if checked.as_deref() == Some(dir) {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let md = std::fs::symlink_metadata(dir)?;
    if !md.is_dir() || md.uid() != crate::config::current_uid() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the lock directory belongs to another user",
        ));
    }
    *checked = Some(dir.to_path_buf());
    Ok(())
}

/// The lock of one upload destination (`opts.upload_locks`), waiting while another run on
/// this machine holds it. `None` when no lock is configured or it cannot be taken (then the
/// upload goes ahead unlocked, as before). The flag says whether this run waited.
async fn destination_lock(remote: &RemotePath, opts: &TransferOptions) -> (Option<FileLock>, bool) {
    use std::hash::{Hash, Hasher};
    let Some((dir, scope)) = opts.upload_locks.as_ref().filter(|_| !opts.dry_run) else {
        return (None, false);
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (scope.as_str(), remote.as_str()).hash(&mut h);
    let path = dir.join(format!("put-{:016x}.lock", h.finish()));
    if let Err(e) = private_dir(dir) {
        tracing::debug!(dir = %dir.display(), "no upload lock: {e}");
        return (None, false);
    }
    let taken = FileLock::acquire(&path, || {
        tracing::warn!("waiting for another cta-data run that is uploading to {remote}")
    })
    .await;
    match taken {
        Ok((l, waited)) => (Some(l), waited),
        Err(e) => {
            tracing::debug!(path = %path.display(), "no upload lock: {e}");
            (None, false)
        }
    }
}

/// Uploads one local file to `remote` with the rules of a tree upload: skipped when the
/// remote copy is identical (unless `force`), refused when a different one is there
/// (unless `overwrite`), `--ignore-existing` and `--update` honoured. `existing` is what
/// a listing said is at `remote`. Two runs on one machine take turns on one destination
/// (see [`TransferOptions::upload_locks`]); the second then sees the first one's file.
pub async fn upload_one(
    backend: &dyn StorageBackend,
    local: &Path,
    remote: &RemotePath,
    existing: Option<&Entry>,
    create_parents: bool,
    opts: &TransferOptions,
) -> Result<FileOutcome> {
    let name = local.display().to_string();
    // (A stat of a local path: not worth a thread hand-off.)
    let md = std::fs::metadata(local).map_err(|e| Error::local("read", local, e))?;
    let f = LocalFile {
        rel: String::new(),
        size: md.len(),
        mtime: md.modified().ok(),
    };
    let (lock, waited) = destination_lock(remote, opts).await;
    let mut existing = existing.cloned();
    if waited {
        // The other run has finished with this destination: look again.
        existing = match backend.stat(remote).await {
            Ok(e) => Some(e),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
    }
    let outcome = match plan(local, &f, remote, existing.as_ref(), opts).await? {
        Plan::Skip(reason) => {
            let out = FileOutcome::Skipped { reason };
            opts.progress.finished(&name, &out);
            Ok(out)
        }
        Plan::Refuse(e) => {
            opts.progress.finished(
                &name,
                &FileOutcome::Failed {
                    reason: e.to_string(),
                },
            );
            Err(e)
        }
        Plan::Put(mut put) => {
            put.create_parents = create_parents;
            if create_parents {
                put.known_absent = false;
            }
            upload_file(backend, local, remote, put, opts).await
        }
    };
    if let Some(l) = lock {
        l.remove();
    }
    outcome
}

/// Uploads the local tree `local` into `root` (created with its parents if needed).
pub async fn upload_tree(
    backend: Arc<dyn StorageBackend>,
    local: &Path,
    root: &RemotePath,
    opts: &TransferOptions,
) -> Result<Summary> {
    let started = Instant::now();
    let mut summary = Summary::new("put", opts);
    let scan = {
        let (l, o) = (local.to_path_buf(), opts.clone());
        tokio::task::spawn_blocking(move || scan_local(&l, &o))
            .await
            .map_err(|e| Error::local("scan", local, std::io::Error::other(e)))??
    };
    for (path, why) in &scan.skipped {
        tracing::warn!(path = %path.display(), "skipped: {why}");
        let name = path.display().to_string();
        let o = FileOutcome::Skipped {
            reason: why.clone(),
        };
        opts.progress.finished(&name, &o);
        let rel = path.strip_prefix(local).unwrap_or(path).to_string_lossy();
        summary.count(name.clone(), format!("{root}/{rel}"), None, &o);
    }
    opts.progress.discovered(
        scan.files.len() as u64,
        scan.files.iter().map(|f| f.size).sum(),
    );

    // One recursive listing of the destination instead of a request per file.
    let index = remote_index(&backend, root, opts.jobs).await?;
    if index.is_none() && !opts.dry_run {
        backend.mkdir(root, true).await?;
    }
    let index = index.unwrap_or_default();
    for rel in &scan.dirs {
        if index.get(rel).is_some_and(|e| e.is_dir()) {
            continue;
        }
        if opts.dry_run {
            summary.directories += 1;
            continue;
        }
        let remote = root.join(rel)?;
        match backend.mkdir(&remote, false).await {
            Ok(()) => summary.directories += 1,
            // Created meanwhile (a parallel run): fine.
            Err(Error::Conflict { .. })
                if backend.stat(&remote).await.is_ok_and(|e| e.is_dir()) => {}
            Err(e) => summary.fail(
                local.join(rel).display().to_string(),
                remote.to_string(),
                &e,
            ),
        }
    }

    let index = Arc::new(index);
    let mut results = futures::stream::iter(scan.files.into_iter().map(|f| {
        let b = backend.clone();
        let o = opts.clone();
        let index = index.clone();
        let local = local.to_path_buf();
        let root = root.clone();
        async move {
            let path = local.join(&f.rel);
            let name = path.display().to_string();
            let remote = match root.join(&f.rel) {
                Ok(r) => r,
                Err(e) => return (name, f.rel.clone(), Some(f.size), Err(e)),
            };
            let r = upload_one(b.as_ref(), &path, &remote, index.get(&f.rel), false, &o).await;
            (name, remote.to_string(), Some(f.size), r)
        }
    }))
    .buffer_unordered(opts.jobs.max(1));
    while let Some((src, dst, size, r)) = results.next().await {
        match r {
            Ok(outcome) => summary.count(src, dst, size, &outcome),
            Err(e) => {
                summary.fail(src, dst, &e);
                if opts.fail_fast {
                    break;
                }
            }
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
