//! Downloads: one file through `<target>.part` with resume, and whole trees.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::stream::{BoxStream, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::lock::FileLock;
use super::stage::{needs_staging, stage_stream, Staged};
use super::streams::{self, Chunks};
use super::{
    part_meta_path, part_path, pump, safe_local_join, space, walk, FileDone, FileOutcome, Summary,
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
pub(super) struct PartMeta {
    path: String,
    size: Option<u64>,
    etag: Option<String>,
    mtime: Option<u64>,
    /// A download in several streams: the chunks and how far each got (`None`: the
    /// `.part` holds one unbroken prefix of the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) chunks: Option<Chunks>,
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
            chunks: None,
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

/// Same second: the engine sets a download's mtime to the remote one, and some servers and
/// filesystems keep no fractions.
fn secs(t: SystemTime) -> Option<u64> {
    unix(Some(t))
}

/// Why a download can be skipped, if it can: `--ignore-existing`, `--update`, or (unless
/// `--force`) an identical local copy: same size and same mtime (to the second). The local
/// side has no stored checksum, so no file is read for this.
fn skip_reason(
    entry: &Entry,
    md: Option<&std::fs::Metadata>,
    opts: &TransferOptions,
) -> Option<String> {
    let md = md.filter(|m| m.is_file())?;
    if opts.skip_existing {
        return Some("already at the destination (--ignore-existing)".into());
    }
    let local = md.modified().ok();
    if opts.update {
        if let (Some(remote), Some(local)) = (entry.mtime, local) {
            if local >= remote || secs(local) == secs(remote) {
                return Some("the local copy is as new or newer (--update)".into());
            }
        }
        return None;
    }
    let same_mtime =
        entry.mtime.and_then(secs).is_some() && entry.mtime.and_then(secs) == local.and_then(secs);
    if !opts.force && entry.size == Some(md.len()) && same_mtime {
        return Some("identical (same size and mtime)".into());
    }
    None
}

/// Downloads one file to `target`: through `<target>.part`, which this run owns (an
/// advisory lock: a second run on the same target waits, then finds the file done),
/// resumed from an earlier run when the remote file is unchanged, and renamed into
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
    // A device or FIFO (`get X /dev/null`) is written as it is: never renamed over.
    let special = target_md
        .as_ref()
        .is_some_and(|m| !m.file_type().is_file() && !m.file_type().is_dir());
    let is_link = std::fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && !special {
        // Writing through a link would change a file elsewhere; replacing it would drop the
        // link. Neither is what the user asked for.
        return Err(Error::conflict(
            target.display(),
            "the target is a symbolic link",
            "give the path the link points to, or remove the link first; cta-data never writes through a link",
        ));
    }
    if target_md.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(Error::conflict(
            target.display(),
            "a local directory is in the way of the downloaded file",
            "choose another target path",
        ));
    }
    let name = path.to_string();
    if let Some(reason) = skip_reason(&entry, target_md.as_ref(), opts) {
        let o = FileOutcome::Skipped { reason };
        opts.progress.finished(&name, &o);
        return Ok(o);
    }
    if opts.dry_run {
        let o = FileOutcome::Planned { bytes: entry.size };
        opts.progress.finished(&name, &o);
        return Ok(o);
    }
    if super::needs_staging(&entry) {
        // A read would block until the storage stages it (hours, maybe): say so instead.
        // (`get --stage` stages such files first and hands them here online.)
        let e = crate::tape::on_tape(path);
        opts.progress.finished(
            &name,
            &FileOutcome::Failed {
                reason: e.to_string(),
            },
        );
        return Err(e);
    }
    let attempted = if special {
        to_device(backend, path, &entry, target, target_md.as_ref(), opts)
            .await
            .map(FileOutcome::Done)
    } else {
        owned(backend, path, &entry, target, opts).await
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
        Ok(o) => {
            opts.progress.finished(&name, &o);
            Ok(o)
        }
    }
}

/// `/dev/null`: its character device (1, 3).
const DEV_NULL: u64 = (1 << 8) | 3;

/// A download to a device or FIFO, written as it is; to `/dev/null`, which takes writes at
/// any offset, in several streams like a file.
async fn to_device(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    entry: &Entry,
    target: &Path,
    md: Option<&std::fs::Metadata>,
    opts: &TransferOptions,
) -> Result<FileDone> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let null = md.is_some_and(|m| m.file_type().is_char_device() && m.rdev() == DEV_NULL);
    let n = streams::streams_for(backend, entry, opts);
    if null && n > 1 {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(target)
            .map_err(|e| Error::local("open", target, e))?;
        let sink = streams::Target::Discard(f);
        let meta_of = |c: Chunks| PartMeta {
            chunks: Some(c),
            ..PartMeta::of(entry)
        };
        match streams::fetch_parallel(backend, path, entry, target, &sink, None, n, opts, &meta_of)
            .await?
        {
            streams::Outcome::Done(d) => return Ok(d),
            streams::Outcome::RangesIgnored => {
                tracing::info!(path = %path, "the server ignores byte ranges: downloading in one stream");
            }
        }
    }
    fetch(backend, path, entry, target, None, opts, true).await
}

/// A download through a `.part` this run owns.
async fn owned(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    entry: &Entry,
    target: &Path,
    opts: &TransferOptions,
) -> Result<FileOutcome> {
    let part = part_path(target);
    let (lock, waited) = FileLock::acquire(&part, || {
        tracing::warn!(
            "waiting for another cta-data run that is downloading to {}",
            target.display()
        )
    })
    .await
    .map_err(|e| Error::local("create", &part, e))?;
    let have = lock.file().metadata().map(|m| m.len()).unwrap_or(0);
    // What is on disk: a `.part` of several streams is sparse until its chunks arrive.
    let allocated = lock
        .file()
        .metadata()
        .map(|m| (std::os::unix::fs::MetadataExt::blocks(&m) * 512).min(m.len()))
        .unwrap_or(0);
    if waited {
        // The other run has let go: it most likely finished this very file.
        if let Some(reason) = skip_reason(entry, std::fs::metadata(target).ok().as_ref(), opts) {
            if have == 0 {
                lock.remove();
            }
            return Ok(FileOutcome::Skipped { reason });
        }
    }
    if let Some(size) = entry.size {
        if let Err(e) = space::ensure(target, size.saturating_sub(allocated)) {
            if have == 0 {
                lock.remove();
            }
            return Err(e);
        }
    }
    // No retry loop here: the backend's retry layer tries requests again and resumes a
    // broken body with `Range`; what still fails keeps its `.part` for a rerun.
    let attempted = attempt(backend, path, entry, target, &lock, opts, have, true).await;
    // An empty `.part` helps no rerun.
    if attempted.is_err() && lock.file().metadata().is_ok_and(|m| m.len() == 0) {
        lock.remove();
    }
    attempted.map(FileOutcome::Done)
}
/// One attempt at the file through its locked `.part` (which holds `have` bytes from an
/// earlier run): small files in memory, big ones in several streams where the server reads
/// ranges, the others in one stream. `may_restart`: a file that changed during a
/// download in several streams is started once more.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    entry: &Entry,
    target: &Path,
    lock: &FileLock,
    opts: &TransferOptions,
    have: u64,
    may_restart: bool,
) -> Result<FileDone> {
    if entry.size.is_some_and(|s| s <= SMALL) {
        return fetch_small(backend, path, entry, target, lock, opts).await;
    }
    let meta_path = part_meta_path(target);
    let earlier = if have > 0 {
        read_meta(&meta_path).await
    } else {
        None
    };
    let earlier_chunked = earlier
        .as_ref()
        .is_some_and(|m| m.chunks.is_some() && m.same_file(entry));
    let n = streams::streams_for(backend, entry, opts);
    let can = entry.size.is_some() && backend.capabilities().ranged_reads;
    if !(can && (n > 1 || earlier_chunked)) {
        return fetch(backend, path, entry, target, Some(lock), opts, true).await;
    }
    let size = entry.size.unwrap_or_default();
    // What an earlier run left: its chunks, or the prefix one stream wrote.
    let layout = match earlier {
        Some(m) if m.same_file(entry) => m.chunks.or_else(|| {
            let chunk = streams::chunk_size(size, n);
            let done = (0..size.div_ceil(chunk))
                .map(|i| have.saturating_sub(i * chunk).min(chunk))
                .collect();
            Some(Chunks { size: chunk, done })
        }),
        Some(_) => {
            tracing::info!(path = %path, "the remote file changed since the partial download: starting again");
            reset(Some(lock), &meta_path).await;
            None
        }
        None => None,
    };
    let meta_of = |c: Chunks| PartMeta {
        chunks: Some(c),
        ..PartMeta::of(entry)
    };
    let sink = streams::Target::Part(lock);
    let part = lock.path();
    match streams::fetch_parallel(
        backend,
        path,
        entry,
        target,
        &sink,
        layout,
        n.max(1),
        opts,
        &meta_of,
    )
    .await
    {
        Ok(streams::Outcome::Done(done)) => {
            if let Some(t) = entry.mtime {
                let _ = lock.file().set_modified(t);
            }
            tokio::fs::rename(part, target)
                .await
                .map_err(|e| Error::local("rename into place", target, e))?;
            let _ = tokio::fs::remove_file(&meta_path).await;
            Ok(done)
        }
        Ok(streams::Outcome::RangesIgnored) => {
            tracing::info!(path = %path, "the server ignores byte ranges: downloading in one stream");
            reset(Some(lock), &meta_path).await;
            fetch(backend, path, entry, target, Some(lock), opts, false).await
        }
        Err(Error::Conflict { message, .. }) if may_restart => {
            tracing::info!(path = %path, "{message}: starting again");
            reset(Some(lock), &meta_path).await;
            let fresh = backend.stat(path).await?;
            Box::pin(attempt(backend, path, &fresh, target, lock, opts, 0, false)).await
        }
        Err(e) => {
            let full = matches!(&e, Error::LocalIo { source, .. } if source.kind() == std::io::ErrorKind::StorageFull);
            if full || matches!(e, Error::Integrity { .. } | Error::Conflict { .. }) {
                // Nothing worth resuming: give the space back.
                reset(Some(lock), &meta_path).await;
            }
            Err(e)
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

/// [`verify`], except that an adler32 that came with the download itself and does not
/// match is first checked against the one the server gives for this file alone (see
/// [`StorageBackend::checksums`]): some servers (XRootD 5.5.3) put on a GET the last
/// checksum they computed, possibly of another file. Data is called corrupt only when
/// the file's own checksum disagrees too.
#[allow(clippy::too_many_arguments)]
pub(super) async fn verify_checked(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    name: &str,
    size: Option<u64>,
    total: u64,
    server_sums: &[Checksum],
    answered: &[Checksum],
    adler: &Adler32,
) -> Result<Option<String>> {
    let err = match verify(name, size, total, server_sums, adler) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let size_ok = size.is_none_or(|s| s == total);
    if !size_ok || !has_adler(answered) {
        return Err(err);
    }
    let got = adler.checksum();
    let own = match backend.checksums(path).await {
        Ok(sums) => sums,
        Err(e) => {
            tracing::debug!(path = %path, "the file's own checksum could not be fetched: {e}");
            return Err(err);
        }
    };
    match Checksum::find(&own, &ChecksumAlgorithm::Adler32) {
        Some(c) if c.value == got.value => {
            tracing::info!(path = %path, "the Digest that came with the download named another checksum; the file's own adler32 matches the data");
            Ok(Some(got.to_string()))
        }
        _ => Err(err),
    }
}

pub(super) fn has_adler(sums: &[Checksum]) -> bool {
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
pub(super) fn merge_sums(listed: &[Checksum], answered: &[Checksum]) -> Vec<Checksum> {
    let mut sums = listed.to_vec();
    for c in answered {
        sums.retain(|s| s.algorithm != c.algorithm);
        sums.push(c.clone());
    }
    sums
}

/// One attempt at a small file: the body is held in memory (at most [`SMALL`] bytes, plus
/// one chunk), verified, then written to the locked `<target>.part` and renamed into place.
async fn fetch_small(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    entry: &Entry,
    target: &Path,
    lock: &FileLock,
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
        return fetch(backend, path, entry, target, Some(lock), opts, true).await;
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
    let verified = verify_checked(
        backend,
        path,
        &name,
        size,
        total,
        &server_sums,
        &dl.checksums,
        &adler,
    )
    .await?;
    let part = lock.path().to_path_buf();
    let meta = part_meta_path(target);
    let dest = target.to_path_buf();
    let file = lock
        .file()
        .try_clone()
        .map_err(|e| Error::local("write", &part, e))?;
    tokio::task::spawn_blocking(move || -> Result<()> {
        use std::io::{Seek, Write};
        let mut f = file;
        let written = f
            .set_len(0)
            .and_then(|()| f.rewind())
            .and_then(|()| f.write_all(&body));
        if let Err(e) = written {
            let _ = f.set_len(0);
            return Err(space::full(&part, Some(total), e));
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
        upload: false,
    })
}

/// Removes a `.part` that cannot be used again (its lock, if any, is let go afterwards).
async fn discard(part: &Path, meta: &Path) {
    let _ = tokio::fs::remove_file(part).await;
    let _ = tokio::fs::remove_file(meta).await;
}

/// Starts a `.part` over: emptied (it stays, locked, for the next attempt) and its
/// description removed.
async fn reset(lock: Option<&FileLock>, meta: &Path) {
    if let Some(l) = lock {
        let _ = l.file().set_len(0);
        let _ = tokio::fs::remove_file(meta).await;
    }
}

/// One attempt; `may_restart` allows one fresh start when a resume is refused. `lock`
/// owns the `.part`; without one the target is a device or FIFO, written as it is.
async fn fetch(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    entry: &Entry,
    target: &Path,
    lock: Option<&FileLock>,
    opts: &TransferOptions,
    may_restart: bool,
) -> Result<FileDone> {
    let special = lock.is_none();
    let part = match lock {
        Some(l) => l.path().to_path_buf(),
        None => target.to_path_buf(),
    };
    let meta_path = part_meta_path(target);
    // Resuming a small file is not worth a second file per download.
    let resumable = !special && entry.size.is_none_or(|s| s >= RESUMABLE);
    let name = path.to_string();

    // Resume only the same remote file, and only when the backend can read ranges.
    let mut offset = 0u64;
    let earlier = match lock {
        Some(l) => l.file().metadata().map(|m| m.len()).unwrap_or(0),
        None => 0,
    };
    if earlier > 0 {
        match read_meta(&meta_path).await {
            Some(meta)
                if resumable
                    && meta.chunks.is_none()
                    && meta.same_file(entry)
                    && entry.size.is_none_or(|s| earlier <= s)
                    && backend.capabilities().ranged_reads =>
            {
                offset = earlier;
            }
            _ => {
                tracing::info!(path = %path, "the remote file changed since the partial download: starting again");
                reset(lock, &meta_path).await;
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
    // The checksums that came with the download itself (not from the listing).
    let mut answered = Vec::new();
    let complete_already = offset > 0 && entry.size == Some(offset);
    if !complete_already {
        let mut get = GetOptions::default()
            .with_checksums(true)
            .with_known(entry.clone());
        if offset > 0 {
            // A closed range: some servers (XRootD 5.5.3) answer an open `bytes=N-` with
            // an empty body and `Content-Range: bytes N--1/size`.
            let range = match entry.size {
                Some(size) if size > offset => ByteRange::bounded(offset, size)?,
                _ => ByteRange::From(offset),
            };
            get = get.with_range(range);
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
                reset(lock, &meta_path).await;
                return Box::pin(fetch(backend, path, entry, target, lock, opts, false)).await;
            }
            Err(e) => return Err(e),
        };
        if offset > 0 && dl.range.as_ref().is_some_and(|r| r.start != offset) {
            reset(lock, &meta_path).await;
            return Err(Error::protocol(
                name,
                Some(206),
                format!("asked for bytes from {offset}, got {:?}", dl.range),
            ));
        }
        server_sums = merge_sums(&server_sums, &dl.checksums);
        answered = dl.checksums.clone();
        let want_adler = has_adler(&server_sums);
        if want_adler && offset > 0 {
            adler = seed_adler(&part).await?;
        }
        size = dl.size.or(size);
        mtime = dl.mtime.or(mtime);
        let file = match lock {
            Some(l) => l.file().try_clone().and_then(|mut f| {
                use std::io::Seek;
                f.set_len(offset)?;
                f.seek(std::io::SeekFrom::Start(offset))?;
                Ok(f)
            }),
            None => std::fs::OpenOptions::new().write(true).open(&part),
        }
        .map_err(|e| Error::local("create", &part, e))?;
        let mut out = ThreadWriter::new(file).map_err(|e| Error::local("write", &part, e))?;
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
        if let Err(e) = &written {
            if e.kind() == std::io::ErrorKind::StorageFull && !special {
                // Nothing to resume on a full disk: give the space back.
                discard(&part, &meta_path).await;
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let file = written.map_err(|e| space::full(&part, size, e))?;
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
    let verified = match verify_checked(
        backend,
        path,
        &name,
        size,
        total,
        &server_sums,
        &answered,
        &adler,
    )
    .await
    {
        Ok(v) => v,
        Err(e) => {
            if !special {
                discard(&part, &meta_path).await;
            }
            return Err(e);
        }
    };
    if !special {
        if let Some(t) = mtime {
            let _ = lock.map(|l| l.file().set_modified(t));
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
        upload: false,
    })
}

/// Connections a tree download aims at when it picks the streams per file itself.
const TREE_CONNECTIONS: usize = 32;

/// Downloads the tree below `root` into `local` (created if needed).
pub async fn download_tree(
    backend: Arc<dyn StorageBackend>,
    root: &RemotePath,
    local: &Path,
    opts: &TransferOptions,
) -> Result<Summary> {
    let started = Instant::now();
    if std::fs::metadata(local).is_ok_and(|m| !m.is_dir()) {
        return Err(Error::conflict(
            local.display(),
            "a local file is in the way of the directory download",
            "give a directory (existing or new) as the target, or move the file away; nothing was written",
        ));
    }
    if !opts.dry_run {
        tokio::fs::create_dir_all(local)
            .await
            .map_err(|e| Error::local("create directory", local, e))?;
    }
    let mut summary = Summary::new("get", opts);
    let at = |p: &Path| p.display().to_string();
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
    // Many files at once need fewer streams each: at most about 32 connections in all,
    // unless the streams were asked for.
    let mut opts = opts.clone();
    if opts.streams.is_none() {
        let default = backend.capabilities().default_streams;
        opts.streams = Some(default.min((TREE_CONNECTIONS / jobs).max(1)));
    }
    let opts = &opts;
    // `--stage`: files on tape wait for one stage request, made when the walk is over; the
    // walk then runs ahead of the downloads (its files queue in `ready`) so that the
    // request goes out early. Without it the walk stays at most `jobs` files ahead.
    let staging = opts.stage.clone();
    let mut ready: VecDeque<(Entry, PathBuf, Option<PathBuf>)> = VecDeque::new();
    let mut on_tape: Vec<Entry> = Vec::new();
    let mut stager: Option<BoxStream<'static, Staged>> = None;
    loop {
        while inflight.len() < jobs {
            let Some((entry, target, parent)) = ready.pop_front() else {
                break;
            };
            let b = backend.clone();
            let o = opts.clone();
            inflight.push(
                async move {
                    let src = entry.path.to_string();
                    let dst = target.display().to_string();
                    if !o.dry_run {
                        if let Some(parent) = parent {
                            if let Err(e) = tokio::fs::create_dir_all(&parent).await {
                                let e = Error::local("create directory", &parent, e);
                                return (src, dst, entry.size, Err(e));
                            }
                        }
                    }
                    let r = download_file(b.as_ref(), &entry.path, Some(&entry), &target, &o).await;
                    (src, dst, entry.size, r)
                }
                .boxed(),
            );
        }
        if !walking && stager.is_none() && !on_tape.is_empty() {
            if let Some(s) = &staging {
                stager = Some(stage_stream(
                    backend.clone(),
                    std::mem::take(&mut on_tape),
                    s.clone(),
                    opts.progress.clone(),
                ));
            }
        }
        let walk_open = walking && (staging.is_some() || inflight.len() < jobs);
        let step = tokio::select! {
            biased;
            Some(done) = inflight.next(), if !inflight.is_empty() => Step::Done(done),
            e = entries.next(), if walk_open => match e {
                Some(e) => Step::Entry(Box::new(e)),
                None => Step::WalkEnd,
            },
            s = next_staged(&mut stager), if stager.is_some() => match s {
                Some(s) => Step::Staged(Box::new(s)),
                None => Step::StageEnd,
            },
            else => break,
        };
        match step {
            Step::WalkEnd => walking = false,
            Step::StageEnd => stager = None,
            Step::Staged(s) => match *s {
                Staged::Online(entry) => {
                    let rel = entry.path.strip_prefix(root).unwrap_or("").to_string();
                    match safe_local_join(local, &rel) {
                        Ok(target) => {
                            let parent = target.parent().filter(|p| !made.contains(*p));
                            let parent = parent.map(Path::to_path_buf);
                            ready.push_back((entry, target, parent));
                        }
                        Err(e) => summary.fail(entry.path.to_string(), rel, &e),
                    }
                }
                Staged::Failed(entry, e) => {
                    let rel = entry.path.strip_prefix(root).unwrap_or("").to_string();
                    let dst = safe_local_join(local, &rel).map(|t| at(&t)).unwrap_or(rel);
                    opts.progress.finished(
                        entry.path.as_str(),
                        &FileOutcome::Failed {
                            reason: e.to_string(),
                        },
                    );
                    summary.fail(entry.path.to_string(), dst, &e);
                }
            },
            Step::Entry(e) => match *e {
                Err(e) => {
                    summary.fail(root.to_string(), at(local), &e);
                }
                Ok(entry) => {
                    let rel = entry.path.strip_prefix(root).unwrap_or("").to_string();
                    if entry.is_dir() {
                        if !opts.filter.dir(&rel) {
                            continue;
                        }
                        match safe_local_join(local, &rel) {
                            Ok(t) if opts.dry_run => drop(t),
                            // Counted only when this run made it (a rerun makes none).
                            Ok(t) if t.is_dir() => {
                                made.insert(t);
                            }
                            Ok(t) => match tokio::fs::create_dir_all(&t).await {
                                Ok(()) => {
                                    summary.directories += 1;
                                    made.insert(t);
                                }
                                Err(e) => summary.fail(
                                    entry.path.to_string(),
                                    at(&t),
                                    &Error::local("create directory", &t, e),
                                ),
                            },
                            Err(e) => summary.fail(entry.path.to_string(), rel.clone(), &e),
                        }
                        continue;
                    }
                    if !opts.filter.file(&rel) {
                        continue;
                    }
                    let target = match safe_local_join(local, &rel) {
                        Ok(t) => t,
                        Err(e) => {
                            summary.fail(entry.path.to_string(), rel.clone(), &e);
                            continue;
                        }
                    };
                    opts.progress.discovered(1, entry.size.unwrap_or(0));
                    // Staged first: only a file that would be downloaded (not one already
                    // here, nor in a dry run).
                    if staging.is_some()
                        && needs_staging(&entry)
                        && !opts.dry_run
                        && skip_reason(&entry, std::fs::metadata(&target).ok().as_ref(), opts)
                            .is_none()
                    {
                        on_tape.push(entry);
                        continue;
                    }
                    // Directories arrive before their files: most parents exist already.
                    let parent = target.parent().filter(|p| !made.contains(*p));
                    let parent = parent.map(Path::to_path_buf);
                    ready.push_back((entry, target, parent));
                }
            },
            Step::Done((src, dst, size, Ok(outcome))) => summary.count(src, dst, size, &outcome),
            Step::Done((src, dst, _, Err(e))) => summary.fail(src, dst, &e),
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
    Staged(Box<Staged>),
    StageEnd,
    Done(T),
}

/// The next file of the staging, if staging is going on.
async fn next_staged(s: &mut Option<BoxStream<'static, Staged>>) -> Option<Staged> {
    match s {
        Some(s) => s.next().await,
        None => None,
    }
}
