//! Downloads: one file through `<target>.part` with resume and retries, and whole trees.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    part_meta_path, part_path, safe_local_join, walk, FileDone, FileOutcome, Summary,
    TransferOptions,
};
use crate::backend::{ByteRange, GetOptions, StorageBackend, IO_BLOCK};
use crate::checksum::{Adler32, Checksum, ChecksumAlgorithm};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::path::RemotePath;

/// Options of a single download (the tree options apply to each file).
pub type DownloadOptions = TransferOptions;

/// What a `.part` file was downloaded from, so a rerun resumes only the same remote file.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct PartMeta {
    path: String,
    size: Option<u64>,
    etag: Option<String>,
    mtime: Option<u64>,
}

fn unix(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

impl PartMeta {
    fn of(e: &Entry) -> Self {
        Self {
            path: e.path.to_string(),
            size: e.size,
            etag: e.etag.clone(),
            mtime: unix(e.mtime),
        }
    }

    /// The remote file is still the one the `.part` came from.
    fn same_file(&self, e: &Entry) -> bool {
        let now = Self::of(e);
        self.path == now.path
            && self.size == now.size
            && (self.etag.is_none() || now.etag.is_none() || self.etag == now.etag)
            && (self.mtime.is_none() || now.mtime.is_none() || self.mtime == now.mtime)
    }
}

async fn read_meta(p: &Path) -> Option<PartMeta> {
    serde_json::from_slice(&tokio::fs::read(p).await.ok()?).ok()
}

/// Why a download can be skipped, if it can.
async fn skip_reason(
    entry: &Entry,
    target: &Path,
    opts: &TransferOptions,
) -> Result<Option<String>> {
    let Ok(md) = tokio::fs::metadata(target).await else {
        return Ok(None);
    };
    if !md.is_file() {
        return Ok(None);
    }
    if opts.skip_existing && entry.size == Some(md.len()) {
        if let Some(want) = Checksum::find(&entry.checksums, &ChecksumAlgorithm::Adler32) {
            let have = super::local_adler32(target).await?;
            return Ok((have.value == want.value).then(|| "same size and adler32".to_string()));
        }
        return Ok(Some("same size".into()));
    }
    if opts.update {
        if let (Some(remote), Ok(local)) = (entry.mtime, md.modified()) {
            if local >= remote {
                return Ok(Some("the local copy is as new or newer".into()));
            }
        }
    }
    Ok(None)
}

/// Downloads one file to `target`: through `<target>.part`, resumed from an earlier run
/// when the remote file is unchanged, retried after transient errors, and renamed into
/// place only after the size and (when the server gives one) the adler32 matched.
pub async fn download_file(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    known: Option<&Entry>,
    target: &Path,
    opts: &TransferOptions,
) -> Result<FileOutcome> {
    let entry = match known {
        Some(e) => e.clone(),
        None => backend.stat(path).await?,
    };
    if entry.is_dir() {
        return Err(Error::usage(
            format!("{path} is a directory"),
            format!("use 'get -r {}' for a directory", path.as_str()),
        ));
    }
    if target.is_dir() {
        return Err(Error::conflict(
            target.display(),
            "a local directory is in the way of the downloaded file",
            "choose another target path",
        ));
    }
    let name = path.to_string();
    if let Some(reason) = skip_reason(&entry, target, opts).await? {
        let o = FileOutcome::Skipped { reason };
        opts.progress.finished(&name, &o);
        return Ok(o);
    }
    if opts.dry_run {
        let o = FileOutcome::Planned { bytes: entry.size };
        opts.progress.finished(&name, &o);
        return Ok(o);
    }
    let mut attempt = 0u32;
    loop {
        match fetch(backend, path, &entry, target, opts, true).await {
            Err(e) if e.is_transient() && attempt < opts.retries => {
                attempt += 1;
                let pause = opts.retry_delay.saturating_mul(1 << (attempt - 1).min(6));
                tracing::warn!(path = %path, attempt, "{e}; resuming in {:.0} s", pause.as_secs_f64());
                tokio::time::sleep(pause).await;
            }
            Err(e) => {
                opts.progress.finished(
                    &name,
                    &FileOutcome::Failed {
                        reason: e.to_string(),
                    },
                );
                return Err(e);
            }
            Ok(done) => {
                let o = FileOutcome::Done(done);
                opts.progress.finished(&name, &o);
                return Ok(o);
            }
        }
    }
}

/// Files smaller than this are not resumed (no `.part.meta` for them).
const RESUMABLE: u64 = 1 << 20;

async fn discard_unless(special: bool, part: &Path, meta: &Path) {
    if !special {
        discard(part, meta).await;
    }
}

async fn discard(part: &Path, meta: &Path) {
    let _ = tokio::fs::remove_file(part).await;
    let _ = tokio::fs::remove_file(meta).await;
}

/// One attempt; `may_restart` allows one fresh start when a resume is refused.
async fn fetch(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    entry: &Entry,
    target: &Path,
    opts: &TransferOptions,
    may_restart: bool,
) -> Result<FileDone> {
    // A device or FIFO (`get X /dev/null`) is written as it is: never renamed over.
    let special = tokio::fs::metadata(target)
        .await
        .map(|m| !m.file_type().is_file() && !m.file_type().is_dir())
        .unwrap_or(false);
    let part = if special {
        target.to_path_buf()
    } else {
        part_path(target)
    };
    let meta_path = part_meta_path(target);
    // Resuming a small file is not worth a second file per download.
    let resumable = !special && entry.size.is_none_or(|s| s >= RESUMABLE);
    let name = path.to_string();

    // Resume only the same remote file, and only when the backend can read ranges.
    let mut offset = 0u64;
    if let (true, Ok(pmd), Some(meta)) = (
        resumable,
        tokio::fs::metadata(&part).await,
        read_meta(&meta_path).await,
    ) {
        let fits = entry.size.is_none_or(|s| pmd.len() <= s);
        if meta.same_file(entry) && fits && backend.capabilities().ranged_reads {
            offset = pmd.len();
        } else {
            tracing::info!(path = %path, "the remote file changed since the partial download: starting again");
        }
    }
    if offset == 0 && !special {
        discard_unless(special, &part, &meta_path).await;
    }
    if resumable {
        let meta = serde_json::to_vec(&PartMeta::of(entry)).unwrap_or_default();
        tokio::fs::write(&meta_path, meta)
            .await
            .map_err(|e| Error::local("write", &meta_path, e))?;
    }

    // The checksum covers the whole file: seed it with what is already there.
    let mut adler = Adler32::new();
    if offset > 0 {
        let mut f = tokio::fs::File::open(&part)
            .await
            .map_err(|e| Error::local("read", &part, e))?;
        let mut buf = vec![0u8; IO_BLOCK];
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| Error::local("read", &part, e))?;
            if n == 0 {
                break;
            }
            adler.update(&buf[..n]);
        }
        tracing::info!(path = %path, offset, "resuming a partial download");
    }
    opts.progress.started(&name, entry.size, offset);

    let mut server_sums = entry.checksums.clone();
    let mut size = entry.size;
    let mut mtime = entry.mtime;
    let mut received = 0u64;
    let complete_already = offset > 0 && entry.size == Some(offset);
    if !complete_already {
        let get = GetOptions {
            range: (offset > 0).then_some(ByteRange::From(offset)),
            if_match: if offset > 0 { entry.etag.clone() } else { None },
            want_checksums: true,
        };
        let dl = match backend.get(path, get).await {
            Ok(dl) => dl,
            Err(e @ (Error::Conflict { .. } | Error::Protocol { .. }))
                if offset > 0 && may_restart =>
            {
                tracing::info!(path = %path, "cannot resume ({e}): starting again");
                discard_unless(special, &part, &meta_path).await;
                return Box::pin(fetch(backend, path, entry, target, opts, false)).await;
            }
            Err(e) => return Err(e),
        };
        if offset > 0 && dl.range.as_ref().is_some_and(|r| r.start != offset) {
            discard_unless(special, &part, &meta_path).await;
            return Err(Error::Protocol {
                path: name,
                status: Some(206),
                message: format!("asked for bytes from {offset}, got {:?}", dl.range),
            });
        }
        for c in &dl.checksums {
            server_sums.retain(|s| s.algorithm != c.algorithm);
            server_sums.push(c.clone());
        }
        size = dl.size.or(size);
        mtime = dl.mtime.or(mtime);
        let file = if special {
            tokio::fs::OpenOptions::new().write(true).open(&part).await
        } else {
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(offset > 0)
                .write(true)
                .truncate(offset == 0)
                .open(&part)
                .await
        }
        .map_err(|e| Error::local("create", &part, e))?;
        let mut out = tokio::io::BufWriter::with_capacity(IO_BLOCK, file);
        let mut stream = dl.stream;
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    adler.update(&chunk);
                    received += chunk.len() as u64;
                    if let Err(e) = out.write_all(&chunk).await {
                        failure = Some(Error::local("write", &part, e));
                        break;
                    }
                    opts.progress.advanced(&name, chunk.len() as u64);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Keep what arrived: the next attempt (or run) resumes from there.
        let flushed = out.flush().await;
        if let Some(e) = failure {
            return Err(e);
        }
        flushed.map_err(|e| Error::local("write", &part, e))?;
        // Set the remote mtime through the same handle (no second open).
        if let (Some(t), false) = (mtime, special) {
            let f = out.into_inner().into_std().await;
            let _ = f.set_modified(t);
            mtime = None;
        }
    }

    let total = offset + received;
    if let Some(s) = size {
        if s != total {
            discard_unless(special, &part, &meta_path).await;
            return Err(Error::Integrity {
                path: name,
                message: format!("expected {s} bytes, received {total}; nothing was saved"),
            });
        }
    }
    let mut verified = None;
    if let Some(want) = Checksum::find(&server_sums, &ChecksumAlgorithm::Adler32) {
        let got = adler.checksum();
        if got.value != want.value {
            discard_unless(special, &part, &meta_path).await;
            return Err(Error::Integrity {
                path: name,
                message: format!(
                    "adler32 is {} but the server says {}; nothing was saved",
                    got.value, want.value
                ),
            });
        }
        verified = Some(got.to_string());
    }
    if !special {
        if let Some(t) = mtime {
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&part) {
                let _ = f.set_modified(t);
            }
        }
        tokio::fs::rename(&part, target)
            .await
            .map_err(|e| Error::local("rename into place", target, e))?;
        if resumable {
            let _ = tokio::fs::remove_file(&meta_path).await;
        }
    }
    Ok(FileDone {
        remote: name,
        local: target.to_path_buf(),
        bytes: received,
        size: total,
        resumed_from: offset,
        verified,
    })
}

/// Downloads the tree below `root` into `local` (created if needed).
pub async fn download_tree(
    backend: Arc<dyn StorageBackend>,
    root: &RemotePath,
    local: &Path,
    opts: &TransferOptions,
) -> Result<Summary> {
    let started = Instant::now();
    if !opts.dry_run {
        tokio::fs::create_dir_all(local)
            .await
            .map_err(|e| Error::local("create directory", local, e))?;
    }
    let mut summary = Summary::default();
    let filter = opts.filter.clone();
    let root_for_walk = root.clone();
    let mut entries = walk::walk_with(
        backend.clone(),
        root.clone(),
        opts.jobs.clamp(2, 8),
        move |e| filter.dir(e.path.strip_prefix(&root_for_walk).unwrap_or("")),
    );
    let mut inflight = FuturesUnordered::new();
    let mut walking = true;
    let jobs = opts.jobs.max(1);
    loop {
        // The walk stays ahead of the transfers, with never more than `jobs` files in flight.
        let step = if walking && inflight.len() < jobs {
            tokio::select! {
                biased;
                Some(done) = inflight.next(), if !inflight.is_empty() => Step::Done(done),
                e = entries.next() => match e { Some(e) => Step::Entry(Box::new(e)), None => Step::WalkEnd },
            }
        } else {
            match inflight.next().await {
                Some(done) => Step::Done(done),
                None => break,
            }
        };
        match step {
            Step::WalkEnd => walking = false,
            Step::Entry(e) => match *e {
                Err(e) => {
                    summary.fail(root.to_string(), &e);
                }
                Ok(entry) => {
                    let rel = entry.path.strip_prefix(root).unwrap_or("").to_string();
                    if entry.is_dir() {
                        if !opts.filter.dir(&rel) {
                            continue;
                        }
                        match safe_local_join(local, &rel) {
                            Ok(t) if opts.dry_run => drop(t),
                            Ok(t) => match tokio::fs::create_dir_all(&t).await {
                                Ok(()) => summary.directories += 1,
                                Err(e) => summary.fail(
                                    entry.path.to_string(),
                                    &Error::local("create directory", &t, e),
                                ),
                            },
                            Err(e) => summary.fail(entry.path.to_string(), &e),
                        }
                        continue;
                    }
                    if !opts.filter.file(&rel) {
                        continue;
                    }
                    let target = match safe_local_join(local, &rel) {
                        Ok(t) => t,
                        Err(e) => {
                            summary.fail(entry.path.to_string(), &e);
                            continue;
                        }
                    };
                    opts.progress.discovered(1, entry.size.unwrap_or(0));
                    let b = backend.clone();
                    let o = opts.clone();
                    inflight.push(
                        async move {
                            if !o.dry_run {
                                if let Some(parent) = target.parent() {
                                    tokio::fs::create_dir_all(parent).await.map_err(|e| {
                                        (
                                            entry.path.to_string(),
                                            Error::local("create directory", parent, e),
                                        )
                                    })?;
                                }
                            }
                            download_file(b.as_ref(), &entry.path, Some(&entry), &target, &o)
                                .await
                                .map_err(|e| (entry.path.to_string(), e))
                        }
                        .boxed(),
                    );
                }
            },
            Step::Done(Ok(outcome)) => summary.count(&outcome),
            Step::Done(Err((p, e))) => {
                summary.fail(p, &e);
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
    Entry(Box<Result<Entry>>),
    WalkEnd,
    Done(T),
}
