//! One big file over several connections: disjoint byte ranges fetched at once and written
//! in place into the preallocated `<target>.part`.
//!
//! The file is cut into chunks, more chunks than streams, so a fast stream takes more of
//! them; each chunk is one ranged `GET` (a dCache door redirects each to a pool, and each
//! follows its own redirect). Every stream writes its chunk sequentially from the chunk's
//! start through a writer thread of its own, so memory is a few blocks per stream whatever
//! the file's size. How far each chunk got is kept in `.part.meta` (at most one second
//! behind what is on disk, never ahead), so a rerun fetches only what is missing. The
//! whole-file adler32 is joined from the chunks' sums without reading the file again; a
//! rerun reads back only what an earlier run wrote. Each answer is checked against the
//! file the download began with (size and entity tag): a file that changed between two
//! chunks is never mixed from two versions.

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lock::FileLock;
use super::{part_meta_path, pump, FileDone, ThreadWriter, TransferOptions};
use crate::backend::{ByteRange, GetOptions, StorageBackend, IO_BLOCK};
use crate::checksum::{Adler32, Checksum};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::path::RemotePath;

/// Chunks are at least this large (smaller ones cost more requests than they save).
const MIN_CHUNK: u64 = 8 << 20;
/// Chunks are at most this large, so the last ones of a long file are spread over all
/// streams.
const MAX_CHUNK: u64 = 256 << 20;
/// How often the chunks' progress is written to `.part.meta`.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// How a chunked `.part` is laid out and how far each chunk got.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Chunks {
    /// Bytes per chunk (the last one may be shorter).
    pub(super) size: u64,
    /// Bytes on disk from each chunk's start.
    pub(super) done: Vec<u64>,
}

/// The chunk size for `size` bytes over `streams` streams: about two chunks per stream,
/// within [`MIN_CHUNK`] and [`MAX_CHUNK`], in whole MiB.
pub(super) fn chunk_size(size: u64, streams: usize) -> u64 {
    let want = size.div_ceil(2 * streams.max(1) as u64);
    want.clamp(MIN_CHUNK, MAX_CHUNK).next_multiple_of(1 << 20)
}

/// How many streams a download of `entry` gets: the option, else the backend's default,
/// for files of known size at least `stream_cutoff` long on a backend that reads ranges;
/// otherwise one.
pub(super) fn streams_for(
    backend: &dyn StorageBackend,
    entry: &Entry,
    opts: &TransferOptions,
) -> usize {
    let caps = backend.capabilities();
    let Some(size) = entry.size else { return 1 };
    if !caps.ranged_reads || size < opts.stream_cutoff.max(2 * MIN_CHUNK) {
        return 1;
    }
    opts.streams.unwrap_or(caps.default_streams).max(1)
}

/// What a parallel attempt came to.
pub(super) enum Outcome {
    /// Downloaded and verified, still at the `.part` (the caller renames it).
    Done(FileDone),
    /// The server sent the whole file for a range: one stream must do.
    RangesIgnored,
}

/// Why one chunk stopped.
enum Stop {
    /// The server answered for another version of the file.
    Changed(String),
    /// The server ignores `Range`.
    RangesIgnored,
    /// Anything else (the retry layer has already tried again).
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        match e {
            // A 200 for a range (see the WebDAV body checks): the server ignored it.
            Error::Protocol {
                status: Some(200), ..
            } => Stop::RangesIgnored,
            // `If-Match` refused.
            Error::Conflict { message, .. } => Stop::Changed(message),
            e => Stop::Failed(e),
        }
    }
}

/// Writes at a moving offset of a file shared with other streams, and counts what is on
/// disk (only after the write returned). Once the download is called off, it writes
/// nothing more; `live` counts the writers not yet gone, so the `.part` is reused only
/// after the last stray write.
struct At {
    file: std::fs::File,
    pos: u64,
    written: Arc<AtomicU64>,
    off: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
}

impl Drop for At {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Write for At {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.off.load(Ordering::Acquire) {
            return Err(std::io::Error::other("the download was called off"));
        }
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        self.written.fetch_add(n as u64, Ordering::Release);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything the streams share.
struct Job<'a> {
    backend: &'a dyn StorageBackend,
    path: &'a RemotePath,
    entry: &'a Entry,
    name: String,
    part: PathBuf,
    file: std::fs::File,
    size: u64,
    chunk: u64,
    done: Vec<Arc<AtomicU64>>,
    /// Each finished chunk's adler32 (when one is wanted).
    sums: Mutex<Vec<Option<Adler32>>>,
    /// Whether the adler32 is computed: known once the first answer came (the server
    /// gives one in its listing or with that answer, or there is nothing to compare with).
    want_adler: tokio::sync::watch::Sender<Option<bool>>,
    queue: Mutex<VecDeque<usize>>,
    /// Checksums that came with an answer (asked for on the first request only).
    answered: Mutex<Vec<Checksum>>,
    asked_sums: AtomicBool,
    off: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
    /// The target keeps nothing (`/dev/null`).
    discard: bool,
    opts: &'a TransferOptions,
}

impl Job<'_> {
    fn span(&self, i: usize) -> (u64, u64) {
        let start = i as u64 * self.chunk;
        (start, (start + self.chunk).min(self.size))
    }

    fn layout(&self) -> Chunks {
        Chunks {
            size: self.chunk,
            done: self
                .done
                .iter()
                .map(|d| d.load(Ordering::Acquire))
                .collect(),
        }
    }

    /// Whether the adler32 is wanted; the first request decides, the others wait for it.
    async fn wants_adler(&self) -> bool {
        let mut rx = self.want_adler.subscribe();
        let known = rx.wait_for(Option::is_some).await.map(|v| *v);
        known.ok().flatten().unwrap_or(true)
    }

    /// Fetches what chunk `i` still lacks.
    async fn chunk(&self, i: usize) -> std::result::Result<(), Stop> {
        let (start, end) = self.span(i);
        let mut adler: Option<Adler32> = None;
        loop {
            let from = start + self.done[i].load(Ordering::Acquire);
            // The first request asks for the server's checksums; the others wait for it.
            let first = from < end && !self.asked_sums.swap(true, Ordering::AcqRel);
            if !first && adler.is_none() && self.wants_adler().await {
                adler = Some(self.seed(start, from).await?);
            }
            if from >= end {
                break;
            }
            let mut get = GetOptions::default()
                .with_known(self.entry.clone())
                .with_range(ByteRange::bounded(from, end)?)
                .with_checksums(first);
            if let Some(tag) = &self.entry.etag {
                get = get.with_if_match(tag.clone());
            }
            let got = self.backend.get(self.path, get).await;
            if first {
                let answered = got.as_ref().map(|d| d.checksums.as_slice()).unwrap_or(&[]);
                let want = super::download::has_adler(&self.entry.checksums)
                    || super::download::has_adler(answered);
                self.want_adler.send_replace(Some(want));
                if want {
                    adler = Some(self.seed(start, from).await?);
                }
            }
            let dl = got?;
            // The same file as when the download began: its size, its tag.
            if dl.size.is_some_and(|s| s != self.size) {
                return Err(Stop::Changed(format!(
                    "its size changed from {} to {} bytes",
                    self.size,
                    dl.size.unwrap_or_default()
                )));
            }
            if let (Some(was), Some(now)) = (&self.entry.etag, &dl.etag) {
                if was.trim_start_matches("W/") != now.trim_start_matches("W/") {
                    return Err(Stop::Changed(format!(
                        "its entity tag changed from {was} to {now}"
                    )));
                }
            }
            match &dl.range {
                Some(r) if r.start == from && r.end <= end && r.end > from => {}
                Some(r) if r.start == 0 && r.end == self.size && (from, end) != (0, self.size) => {
                    return Err(Stop::RangesIgnored)
                }
                r => {
                    return Err(Stop::Failed(Error::protocol(
                        &self.name,
                        Some(206),
                        format!("asked for bytes {from}-{}, got {r:?}", end - 1),
                    )))
                }
            }
            if !dl.checksums.is_empty() {
                self.answered
                    .lock()
                    .expect("answered")
                    .extend(dl.checksums.iter().cloned());
            }
            if self.discard {
                // `/dev/null` keeps nothing: the bytes are counted, not handed to a thread
                // (a wake-up per TLS record cost more CPU than the transfer).
                use futures::StreamExt;
                let mut stream = dl.stream;
                while let Some(c) = stream.next().await {
                    let c = c?;
                    if let Some(a) = adler.as_mut() {
                        a.update(&c);
                    }
                    self.done[i].fetch_add(c.len() as u64, Ordering::Release);
                    self.opts.progress.advanced(&self.name, c.len() as u64);
                }
                continue;
            }
            let file = self
                .file
                .try_clone()
                .map_err(|e| Error::local("write", &self.part, e))?;
            self.live.fetch_add(1, Ordering::AcqRel);
            let at = At {
                file,
                pos: from,
                written: self.done[i].clone(),
                off: self.off.clone(),
                live: self.live.clone(),
            };
            let mut out =
                ThreadWriter::new(at).map_err(|e| Error::local("write", &self.part, e))?;
            let mut stream = dl.stream;
            let failure = pump(&mut stream, &mut out, |c| {
                if let Some(a) = adler.as_mut() {
                    a.update(c);
                }
                self.opts.progress.advanced(&self.name, c.len() as u64);
            })
            .await;
            let written = out.finish().await;
            written.map_err(|e| super::space::full(&self.part, Some(self.size), e))?;
            if let Some(e) = failure {
                return Err(e.into());
            }
        }
        self.sums.lock().expect("sums")[i] = adler;
        Ok(())
    }

    /// The adler32 of what an earlier run wrote of a chunk: bytes `start..to` on disk.
    async fn seed(&self, start: u64, to: u64) -> Result<Adler32> {
        if to == start {
            return Ok(Adler32::new());
        }
        let f = self
            .file
            .try_clone()
            .map_err(|e| Error::local("read", &self.part, e))?;
        let part = self.part.clone();
        tokio::task::spawn_blocking(move || sum_of(&f, start, to - start))
            .await
            .map_err(|e| Error::local("read", &part, std::io::Error::other(e)))?
            .map_err(|e| Error::local("read", &self.part, e))
    }

    /// Takes chunks until none is left.
    async fn stream(&self) -> std::result::Result<(), Stop> {
        loop {
            let next = self.queue.lock().expect("queue").pop_front();
            let Some(i) = next else { return Ok(()) };
            self.chunk(i).await?;
        }
    }
}

/// Describes the chunks on disk in `.part.meta` when dropped (a download called off by
/// Ctrl-C, or failed), unless `meta_path` was taken away.
struct KeepProgress<'a, 'j> {
    job: &'a Job<'j>,
    meta_path: Option<PathBuf>,
    meta_of: &'a (dyn Fn(Chunks) -> super::download::PartMeta + Sync),
}

impl Drop for KeepProgress<'_, '_> {
    fn drop(&mut self) {
        let Some(path) = self.meta_path.take() else {
            return;
        };
        let mut meta = (self.meta_of)(self.job.layout());
        write_meta(&path, &meta);
        // Writer threads of dropped streams still write what they had queued: once they
        // are gone, say so too (if the process lives on, as a Python caller's does).
        if self.job.live.load(Ordering::Acquire) == 0 {
            return;
        }
        let live = self.job.live.clone();
        let done: Vec<Arc<AtomicU64>> = self.job.done.clone();
        let chunk = self.job.chunk;
        let _ = std::thread::Builder::new()
            .name("cta-data-part-meta".into())
            .spawn(move || {
                let until = std::time::Instant::now() + Duration::from_secs(10);
                while live.load(Ordering::Acquire) > 0 && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                meta.chunks = Some(Chunks {
                    size: chunk,
                    done: done.iter().map(|d| d.load(Ordering::Acquire)).collect(),
                });
                write_meta(&path, &meta);
            });
    }
}

/// Writes `meta` beside the `.part`, replacing the old one in one step (a small file:
/// written in place, not worth a thread hand-off).
fn write_meta(path: &Path, meta: &super::download::PartMeta) {
    let Ok(bytes) = serde_json::to_vec(meta) else {
        return;
    };
    let tmp = path.with_extension("meta.tmp");
    if std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// The adler32 of bytes `start..start+len` of `file`.
fn sum_of(file: &std::fs::File, start: u64, len: u64) -> std::io::Result<Adler32> {
    let mut adler = Adler32::new();
    let mut buf = vec![0u8; IO_BLOCK];
    let mut pos = start;
    while pos < start + len {
        let want = ((start + len - pos) as usize).min(IO_BLOCK);
        let n = file.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        adler.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(adler)
}

/// Where a parallel download writes.
pub(super) enum Target<'a> {
    /// `<target>.part`, owned by this run, resumable.
    Part(&'a FileLock),
    /// A sink that takes positioned writes and keeps nothing (`/dev/null`).
    Discard(std::fs::File),
}

/// One attempt at `entry` with `streams` streams. `earlier` is the `.part`'s layout from an
/// earlier run of the same remote file, if any (`done` from a one-stream run counts as the
/// chunks it covers).
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch_parallel(
    backend: &dyn StorageBackend,
    path: &RemotePath,
    entry: &Entry,
    target: &Path,
    sink: &Target<'_>,
    earlier: Option<Chunks>,
    streams: usize,
    opts: &TransferOptions,
    meta_of: &(dyn Fn(Chunks) -> super::download::PartMeta + Sync),
) -> Result<Outcome> {
    let name = path.to_string();
    let size = entry
        .size
        .ok_or_else(|| Error::internal("a parallel download of a file of unknown size"))?;
    let (file, part, resumable) = match sink {
        Target::Part(lock) => (
            lock.file()
                .try_clone()
                .map_err(|e| Error::local("write", lock.path(), e))?,
            lock.path().to_path_buf(),
            true,
        ),
        Target::Discard(f) => (
            f.try_clone()
                .map_err(|e| Error::local("write", target, e))?,
            target.to_path_buf(),
            false,
        ),
    };
    let meta_path = part_meta_path(target);
    let layout = earlier
        .filter(|c| c.size >= MIN_CHUNK && c.done.len() as u64 == size.div_ceil(c.size))
        .unwrap_or_else(|| {
            let chunk = chunk_size(size, streams);
            Chunks {
                size: chunk,
                done: vec![0; size.div_ceil(chunk) as usize],
            }
        });
    let chunk = layout.size;
    let done: Vec<u64> = layout
        .done
        .iter()
        .enumerate()
        .map(|(i, &d)| d.min(chunk.min(size - i as u64 * chunk)))
        .collect();
    if resumable {
        // Sparse: the blocks are allocated as the chunks arrive.
        file.set_len(size)
            .map_err(|e| super::space::full(&part, Some(size), e))?;
    }
    // What earlier runs wrote is read back for its checksum, chunk by chunk, if one is
    // wanted.
    let resumed: u64 = done.iter().sum();
    let count = done.len();
    if resumed > 0 {
        tracing::info!(path = %path, resumed, "resuming a partial download");
    }
    opts.progress.started(&name, Some(size), resumed);
    let job =
        Job {
            backend,
            path,
            entry,
            name: name.clone(),
            part: part.clone(),
            file,
            size,
            chunk,
            done: done.iter().map(|&d| Arc::new(AtomicU64::new(d))).collect(),
            sums: Mutex::new(vec![None; count]),
            // With nothing left to fetch, only the listing can have a checksum.
            want_adler: tokio::sync::watch::channel(
                (resumed >= size).then(|| super::download::has_adler(&entry.checksums)),
            )
            .0,
            // Unfinished chunks first, so the first request comes at once.
            queue: Mutex::new(
                (0..count)
                    .filter(|&i| i as u64 * chunk + done[i] < size.min((i as u64 + 1) * chunk))
                    .chain((0..count).filter(|&i| {
                        i as u64 * chunk + done[i] >= size.min((i as u64 + 1) * chunk)
                    }))
                    .collect(),
            ),
            answered: Mutex::new(Vec::new()),
            asked_sums: AtomicBool::new(false),
            discard: !resumable,
            off: Arc::new(AtomicBool::new(false)),
            live: Arc::new(AtomicUsize::new(0)),
            opts,
        };
    if resumable {
        write_meta(&meta_path, &meta_of(job.layout()));
    }
    tracing::debug!(path = %path, streams, chunk, chunks = count, "downloading in parallel");
    // Dropped (Ctrl-C) or failed: what is on disk is described for the rerun.
    let mut keep = KeepProgress {
        job: &job,
        meta_path: resumable.then(|| meta_path.clone()),
        meta_of,
    };
    let work = futures::future::try_join_all((0..streams.min(count)).map(|_| job.stream()));
    tokio::pin!(work);
    let mut tick = tokio::time::interval(SAVE_EVERY);
    tick.tick().await;
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick(), if resumable => write_meta(&meta_path, &meta_of(job.layout())),
        }
    };
    if result.is_err() {
        // The other streams were dropped; their writer threads stop at their next block.
        job.off.store(true, Ordering::Release);
        let mut waited = Duration::ZERO;
        while job.live.load(Ordering::Acquire) > 0 && waited < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(2)).await;
            waited += Duration::from_millis(2);
        }
    }
    if !matches!(result, Err(Stop::Failed(_))) {
        // Done, or its `.part` is of no use to a rerun.
        keep.meta_path = None;
    }
    drop(keep);
    match result {
        Ok(_) => {}
        Err(Stop::Failed(e)) => return Err(e),
        Err(Stop::RangesIgnored) => return Ok(Outcome::RangesIgnored),
        Err(Stop::Changed(why)) => {
            return Err(Error::conflict(
                &name,
                format!("the file changed on the server during the download ({why})"),
                "rerun once it is no longer being written; nothing was saved",
            ))
        }
    }
    // The whole file's adler32, joined from the chunks'.
    let sums = std::mem::take(&mut *job.sums.lock().expect("sums"));
    let mut whole = Adler32::new();
    for (i, s) in sums.iter().enumerate() {
        let (start, end) = job.span(i);
        let s = s.clone().unwrap_or_default();
        whole = whole.combine(&s, end - start);
    }
    let answered = std::mem::take(&mut *job.answered.lock().expect("answered"));
    let server_sums = super::download::merge_sums(&entry.checksums, &answered);
    let verified = super::download::verify_checked(
        backend,
        path,
        &name,
        Some(size),
        size,
        &server_sums,
        &answered,
        &whole,
    )
    .await?;
    Ok(Outcome::Done(FileDone {
        remote: name,
        local: target.to_path_buf(),
        bytes: size - resumed,
        size,
        resumed_from: resumed,
        verified,
        upload: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_about_two_per_stream_within_bounds() {
        assert_eq!(chunk_size(2 << 30, 4), 256 << 20);
        assert_eq!(chunk_size(1 << 30, 4), 128 << 20);
        assert_eq!(chunk_size(64 << 20, 4), MIN_CHUNK);
        assert_eq!(chunk_size(100 << 30, 4), MAX_CHUNK);
        // Whole MiB.
        assert_eq!(chunk_size((300 << 20) + 5, 4) % (1 << 20), 0);
    }
}
