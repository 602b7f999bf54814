//! Downloads: one file through `<target>.part` with resume, and whole trees.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{
    part_meta_path, part_path, pump, safe_local_join, walk, FileDone, FileOutcome, Summary,
    ThreadWriter, TransferOptions,
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
    md: Option<&std::fs::Metadata>,
    opts: &TransferOptions,
) -> Result<Option<String>> {
    let Some(md) = md.filter(|m| m.is_file()) else {
        return Ok(None);
    };
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
/// when the remote file is unchanged, and renamed into
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
    // One look at the target serves every check below.
    // (A stat of a local path, like those of `safe_local_join`: not worth a thread hand-off.)
    let target_md = std::fs::metadata(target).ok();
    if target_md.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(Error::conflict(
            target.display(),
            "a local directory is in the way of the downloaded file",
            "choose another target path",
        ));
    }
    let name = path.to_string();
    if let Some(reason) = skip_reason(&entry, target, target_md.as_ref(), opts).await? {
        let o = FileOutcome::Skipped { reason };
        opts.progress.finished(&name, &o);
        return Ok(o);
    }
    if opts.dry_run {
        let o = FileOutcome::Planned { bytes: entry.size };
        opts.progress.finished(&name, &o);
        return Ok(o);
    }
    // A device or FIFO (`get X /dev/null`) is written as it is: never renamed over.
    let special = target_md.is_some_and(|m| !m.file_type().is_file() && !m.file_type().is_dir());
    let small = !special && entry.size.is_some_and(|s| s <= SMALL);
    // No retry loop here: the backend's retry layer tries requests again and resumes a
    // broken body with `Range`; what still fails keeps its `.part` for a rerun.
    let attempted = if small {
        fetch_small(backend, path, &entry, target, opts).await
    } else {
        fetch(backend, path, &entry, target, special, opts, true).await
    };
    match attempted {
        Err(e) => {
            opts.progress.finished(
                &name,
                &FileOutcome::Failed {
                    reason: e.to_string(),
                },
            );
            Err(e)
        }
        Ok(done) => {
            let o = FileOutcome::Done(done);
            opts.progress.finished(&name, &o);
            Ok(o)
        }
    }
}

/// Files smaller than this are not resumed (no `.part.meta` for them).
const RESUMABLE: u64 = 1 << 20;

/// Files below this size (those that are not resumed) are received in memory, checked,
/// then written and renamed into place in one blocking call: a few syscalls instead of a
/// dozen thread hand-offs. Memory: at most this much per file in flight.
const SMALL: u64 = RESUMABLE - 1;

/// Checks the received size and, when the server gave one, the adler32; returns the
/// verified checksum.
fn verify(
    name: &str,
    size: Option<u64>,
    total: u64,
    server_sums: &[Checksum],
    adler: &Adler32,
) -> Result<Option<String>> {
    if let Some(s) = size {
        if s != total {
            return Err(Error::integrity(
                name,
                format!("expected {s} bytes, received {total}; nothing was saved"),
            ));
        }
    }
    let Some(want) = Checksum::find(server_sums, &ChecksumAlgorithm::Adler32) else {
        return Ok(None);
    };
    let got = adler.checksum();
    if got.value != want.value {
        return Err(Error::integrity(
            name,
            format!(
                "adler32 is {} but the server says {}; nothing was saved",
                got.value, want.value
            ),
        ));
    }
    Ok(Some(got.to_string()))
}

fn has_adler(sums: &[Checksum]) -> bool {
    Checksum::find(sums, &ChecksumAlgorithm::Adler32).is_some()
}

/// The adler32 of what a resumed `.part` already holds (the checksum covers the whole file).
async fn seed_adler(part: &Path) -> Result<Adler32> {
    let mut adler = Adler32::new();
    let mut f = tokio::fs::File::open(part)
        .await
        .map_err(|e| Error::local("read", part, e))?;
    let mut buf = vec![0u8; IO_BLOCK];
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| Error::local("read", part, e))?;
        if n == 0 {
            return Ok(adler);
        }
        adler.update(&buf[..n]);
    }
}

/// The server's checksums of a response, over those of the listing.
fn merge_sums(listed: &[Checksum], answered: &[Checksum]) -> Vec<Checksum> {
    let mut sums = listed.to_vec();
    for c in answered {
        sums.retain(|s| s.algorithm != c.algorithm);
        sums.push(c.clone());
    }
    sums
}

/// One attempt at a small file: the body is held in memory (at most [`SMALL`] bytes, plus
/// one chunk), verified, then written to `<target>.part` and renamed into place.
async fn fetch_small(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    entry: &Entry,
    target: &Path,
    opts: &TransferOptions,
) -> Result<FileDone> {
    let name = path.to_string();
    let get = GetOptions::default()
        .with_checksums(true)
        .with_known(entry.clone());
    let dl = backend.get(path, get).await?;
    if dl.size.is_some_and(|s| s > SMALL) {
        // The file grew since it was listed: stream it to disk instead.
        drop(dl);
        tracing::debug!(path = %path, "larger than listed: streaming it");
        return fetch(backend, path, entry, target, false, opts, true).await;
    }
    opts.progress.started(&name, entry.size, 0);
    let server_sums = merge_sums(&entry.checksums, &dl.checksums);
    let size = dl.size.or(entry.size);
    let mtime = dl.mtime.or(entry.mtime);
    let mut body = Vec::with_capacity(size.unwrap_or(0).min(SMALL) as usize);
    let mut adler = Adler32::new();
    let want_adler = has_adler(&server_sums);
    let mut stream = dl.stream;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() as u64 > SMALL {
            // More than the listing announced: stop before memory grows.
            break;
        }
        if want_adler {
            adler.update(&chunk);
        }
        body.extend_from_slice(&chunk);
        opts.progress.advanced(&name, chunk.len() as u64);
    }
    let total = body.len() as u64;
    let verified = verify(&name, size, total, &server_sums, &adler)?;
    let part = part_path(target);
    let meta = part_meta_path(target);
    let dest = target.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&part).map_err(|e| Error::local("create", &part, e))?;
        let written = f
            .write_all(&body)
            .map_err(|e| Error::local("write", &part, e));
        if let Err(e) = written {
            drop(f);
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        if let Some(t) = mtime {
            let _ = f.set_modified(t);
        }
        drop(f);
        if let Err(e) = std::fs::rename(&part, &dest) {
            let _ = std::fs::remove_file(&part);
            return Err(Error::local("rename into place", &dest, e));
        }
        // A description left by an interrupted run of a once larger remote file.
        let _ = std::fs::remove_file(&meta);
        Ok(())
    })
    .await
    .map_err(|e| Error::local("write", target, std::io::Error::other(e)))??;
    Ok(FileDone {
        remote: name,
        local: target.to_path_buf(),
        bytes: total,
        size: total,
        resumed_from: 0,
        verified,
    })
}

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
    special: bool,
    opts: &TransferOptions,
    may_restart: bool,
) -> Result<FileDone> {
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
    let earlier = match resumable {
        true => tokio::fs::metadata(&part).await.ok(),
        false => None,
    };
    if let Some(pmd) = &earlier {
        match read_meta(&meta_path).await {
            Some(meta)
                if meta.same_file(entry)
                    && entry.size.is_none_or(|s| pmd.len() <= s)
                    && backend.capabilities().ranged_reads =>
            {
                offset = pmd.len();
            }
            _ => {
                tracing::info!(path = %path, "the remote file changed since the partial download: starting again");
                discard(&part, &meta_path).await;
            }
        }
    }
    if resumable {
        let meta = serde_json::to_vec(&PartMeta::of(entry)).unwrap_or_default();
        tokio::fs::write(&meta_path, meta)
            .await
            .map_err(|e| Error::local("write", &meta_path, e))?;
    }

    // The adler32 is computed only when the server gives one to compare with.
    let mut adler = Adler32::new();
    if offset > 0 {
        tracing::info!(path = %path, offset, "resuming a partial download");
    }
    opts.progress.started(&name, entry.size, offset);

    let mut server_sums = entry.checksums.clone();
    let mut size = entry.size;
    let mut mtime = entry.mtime;
    let mut received = 0u64;
    let complete_already = offset > 0 && entry.size == Some(offset);
    if !complete_already {
        let mut get = GetOptions::default()
            .with_checksums(true)
            .with_known(entry.clone());
        if offset > 0 {
            get = get.with_range(ByteRange::From(offset));
            if let Some(tag) = &entry.etag {
                get = get.with_if_match(tag.clone());
            }
        }
        let dl = match backend.get(path, get).await {
            Ok(dl) => dl,
            Err(e @ (Error::Conflict { .. } | Error::Protocol { .. }))
                if offset > 0 && may_restart =>
            {
                tracing::info!(path = %path, "cannot resume ({e}): starting again");
                discard_unless(special, &part, &meta_path).await;
                return Box::pin(fetch(backend, path, entry, target, special, opts, false)).await;
            }
            Err(e) => return Err(e),
        };
        if offset > 0 && dl.range.as_ref().is_some_and(|r| r.start != offset) {
            discard_unless(special, &part, &meta_path).await;
            return Err(Error::protocol(
                name,
                Some(206),
                format!("asked for bytes from {offset}, got {:?}", dl.range),
            ));
        }
        server_sums = merge_sums(&server_sums, &dl.checksums);
        let want_adler = has_adler(&server_sums);
        if want_adler && offset > 0 {
            adler = seed_adler(&part).await?;
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
        let mut out = ThreadWriter::new(file.into_std().await)
            .map_err(|e| Error::local("write", &part, e))?;
        let mut stream = dl.stream;
        let failure = pump(&mut stream, &mut out, |chunk| {
            if want_adler {
                adler.update(chunk);
            }
            received += chunk.len() as u64;
            opts.progress.advanced(&name, chunk.len() as u64);
        })
        .await;
        // Keep what arrived: the next attempt (or run) resumes from there.
        let written = out.finish().await;
        if let Some(e) = failure {
            return Err(e);
        }
        let file = written.map_err(|e| Error::local("write", &part, e))?;
        // Set the remote mtime through the same handle (no second open).
        if let (Some(t), false) = (mtime, special) {
            let _ = file.set_modified(t);
            mtime = None;
        }
    }

    if complete_already && has_adler(&server_sums) {
        adler = seed_adler(&part).await?;
    }
    let total = offset + received;
    let verified = match verify(&name, size, total, &server_sums, &adler) {
        Ok(v) => v,
        Err(e) => {
            discard_unless(special, &part, &meta_path).await;
            return Err(e);
        }
    };
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
    let mut made = std::collections::HashSet::from([local.to_path_buf()]);
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
                                Ok(()) => {
                                    summary.directories += 1;
                                    made.insert(t);
                                }
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
                    // Directories arrive before their files: most parents exist already.
                    let parent = target.parent().filter(|p| !made.contains(*p));
                    let parent = parent.map(Path::to_path_buf);
                    inflight.push(
                        async move {
                            if !o.dry_run {
                                if let Some(parent) = parent {
                                    tokio::fs::create_dir_all(&parent).await.map_err(|e| {
                                        (
                                            entry.path.to_string(),
                                            Error::local("create directory", &parent, e),
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
