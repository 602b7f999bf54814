//! The FUSE filesystem: inodes, cached listings, reads through the block cache, write-once
//! uploads. Every request is answered from a task on the tokio runtime, so slow requests
//! never hold up the others.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use ctadata::{
    ByteRange, Entry, EntryKind, Error, GetOptions, PutOptions, ReadSession, RemotePath, Result,
    StorageBackend, Upload,
};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use futures::StreamExt;

use crate::cache::{BlockCache, Claim, Lookup, BLOCK};
use crate::{errno_of, MountOptions};

/// Read-ahead starts at this window once reads look sequential...
const MIN_WINDOW: u64 = 256 << 10;
/// ...and grows up to this (and to half the memory cache).
const MAX_WINDOW: u64 = 96 << 20;
/// The window is this fraction of the bytes read in sequence so far: a reader that stops
/// early has made the server send at most about 1/WINDOW_DIVISOR more than it read.
const WINDOW_DIVISOR: u64 = 5;
/// Up to this many bytes read in sequence, the window is all of them (it doubles every
/// round trip, as TCP's slow start): a stream reaches full speed over a long path within a
/// few round trips, while a reader that stops early still costs at most this much more.
const SLOW_START: u64 = 4 << 20;
/// The memory cache's bound when blocks are also cached on disk (--cache-dir).
const MEMORY_WITH_DISK: u64 = 192 << 20;
/// One ranged GET of read-ahead covers at most this much (several run at once).
const RUN_BYTES: u64 = 8 << 20;
/// ...and at least this much (smaller ones cost more round trips than they save).
const MIN_RUN_BYTES: u64 = 2 << 20;
/// Read-ahead is cut into this many ranged GETs in flight at once, so a long network path
/// (bandwidth-delay product) is filled by several connections, not one.
const RUNS_IN_WINDOW: u64 = 8;
/// A read this close to where the last one ended still counts as sequential (the kernel
/// sends its read-ahead in parallel, slightly out of order).
const SEQ_SLACK: u64 = 4 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Node {
    path: RemotePath,
    lookups: u64,
}

#[derive(Default)]
struct Nodes {
    by_ino: HashMap<u64, Node>,
    by_path: HashMap<RemotePath, u64>,
}

fn path_ino(path: &RemotePath) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    // Never 0 (invalid) or 1 (the root).
    h.finish() | (1 << 63)
}

impl Nodes {
    /// The inode of `path`, created if needed; `lookup` counts one kernel reference.
    fn ino(&mut self, path: &RemotePath, lookup: bool) -> u64 {
        let ino = match self.by_path.get(path) {
            Some(&i) => i,
            None => {
                let mut i = path_ino(path);
                while self.by_ino.contains_key(&i) {
                    i = i.wrapping_add(1) | (1 << 63);
                }
                self.by_ino.insert(
                    i,
                    Node {
                        path: path.clone(),
                        lookups: 0,
                    },
                );
                self.by_path.insert(path.clone(), i);
                i
            }
        };
        if lookup {
            if let Some(n) = self.by_ino.get_mut(&ino) {
                n.lookups += 1;
            }
        }
        ino
    }

    fn forget(&mut self, ino: u64, n: u64) {
        if ino == 1 {
            return;
        }
        let gone = match self.by_ino.get_mut(&ino) {
            Some(node) => {
                node.lookups = node.lookups.saturating_sub(n);
                node.lookups == 0
            }
            None => false,
        };
        if gone {
            if let Some(node) = self.by_ino.remove(&ino) {
                if self.by_path.get(&node.path) == Some(&ino) {
                    self.by_path.remove(&node.path);
                }
            }
        }
    }

    /// After a rename: `from` and everything below it now live under `to`.
    fn rename(&mut self, from: &RemotePath, to: &RemotePath) {
        let moved: Vec<(RemotePath, u64)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (old, ino) in moved {
            let rel = old.strip_prefix(from).unwrap_or("");
            let new = if rel.is_empty() {
                Ok(to.clone())
            } else {
                to.join(rel)
            };
            let Ok(new) = new else { continue };
            self.by_path.remove(&old);
            if let Some(n) = self.by_ino.get_mut(&ino) {
                n.path = new.clone();
            }
            self.by_path.insert(new, ino);
        }
    }
}

/// What `stat` shows: kind, size, time.
#[derive(Clone)]
struct Meta {
    kind: EntryKind,
    size: u64,
    mtime: SystemTime,
}

impl Meta {
    fn of(e: &Entry) -> Meta {
        Meta {
            kind: e.kind,
            size: e.size.unwrap_or(0),
            mtime: e.mtime.unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }
}

struct Listing {
    at: Instant,
    entries: Arc<Dir>,
}

/// A directory's entries in the server's order, with an index by name (a lookup in a
/// directory of 10,000 entries costs no scan).
struct Dir {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl Dir {
    fn new(entries: Vec<Entry>) -> Dir {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        Dir { entries, index }
    }

    fn get(&self, name: &str) -> Option<&Entry> {
        self.index.get(name).and_then(|&i| self.entries.get(i))
    }

    fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.entries.iter()
    }
}

struct ReadHandle {
    path: RemotePath,
    entry: Entry,
    size: u64,
    /// Which version of the file the cached blocks belong to.
    version: u64,
    /// Shared by this open file's reads (dCache: the pool's URL, one round trip per range).
    session: ReadSession,
    seq: Mutex<Seq>,
}

#[derive(Default)]
struct Seq {
    /// Where the last read ended.
    next: u64,
    /// The read-ahead window (0: reads look random).
    window: u64,
    /// Blocks before this one have been asked for already by read-ahead.
    ahead: u64,
    /// Bytes read in sequence so far.
    seq_bytes: u64,
}

struct WriteState {
    file: Option<std::fs::File>,
    len: u64,
    uploaded: bool,
    failed: Option<Errno>,
}

struct WriteHandle {
    path: RemotePath,
    ino: u64,
    spool: PathBuf,
    state: Mutex<WriteState>,
    /// Uploads run one at a time per handle (flush and fsync may race).
    upload: tokio::sync::Mutex<()>,
}

enum Handle {
    Read(Arc<ReadHandle>),
    Write(Arc<WriteHandle>),
    Dir(Arc<Dir>),
}

/// The bytes `offset..end` of a file that one read asks for.
#[derive(Clone, Copy)]
struct Span {
    offset: u64,
    end: u64,
    /// Part of a sequential stream: the blocks it reads to their end are not kept in
    /// memory once delivered (the reader has moved past them; the kernel's page cache has
    /// them), so a stream does not push everything else out of the cache.
    drop_behind: bool,
}

impl Span {
    /// The numbers of the blocks it touches.
    fn blocks(self) -> std::ops::RangeInclusive<u64> {
        self.offset / BLOCK..=(self.end - 1) / BLOCK
    }

    /// Its bytes out of its `blocks` (in order): a slice of the block when it lies within
    /// one (no copy), else one copy into a buffer of its size.
    fn assemble(self, blocks: Vec<Bytes>) -> std::result::Result<Bytes, Errno> {
        let first = self.offset / BLOCK;
        let one = blocks.len() == 1;
        let mut out = BytesMut::new();
        for (b, data) in (first..).zip(blocks) {
            let bstart = b * BLOCK;
            let from = self.offset.max(bstart) - bstart;
            let to = (self.end.min(bstart + data.len() as u64)).saturating_sub(bstart);
            if from >= to {
                return Err(Errno::EIO);
            }
            let part = data.slice(from as usize..to as usize);
            if one {
                return Ok(part);
            }
            if out.is_empty() {
                out.reserve((self.end - self.offset) as usize);
            }
            out.extend_from_slice(&part);
        }
        Ok(out.freeze())
    }
}

/// The state every request shares.
struct Inner {
    backend: Arc<dyn StorageBackend>,
    rt: tokio::runtime::Handle,
    opts: MountOptions,
    root_meta: Meta,
    uid: u32,
    gid: u32,
    nodes: Mutex<Nodes>,
    listings: Mutex<HashMap<RemotePath, Listing>>,
    listing_locks: Mutex<HashMap<RemotePath, Arc<tokio::sync::Mutex<()>>>>,
    /// Files created here and not uploaded yet: their size so far.
    pending: Mutex<HashMap<RemotePath, u64>>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    cache: Arc<BlockCache>,
    spool: SpoolDir,
}

enum SpoolDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl SpoolDir {
    fn path(&self) -> &std::path::Path {
        match self {
            SpoolDir::Temp(t) => t.path(),
            SpoolDir::Given(p) => p,
        }
    }
}

/// The filesystem handed to fuser.
pub(crate) struct MountFs {
    inner: Arc<Inner>,
}

impl MountFs {
    pub(crate) fn new(
        backend: Arc<dyn StorageBackend>,
        root: RemotePath,
        root_entry: Entry,
        opts: MountOptions,
        rt: tokio::runtime::Handle,
    ) -> Result<Self> {
        let spool = match &opts.cache_dir {
            Some(dir) => {
                let p = dir.join("spool");
                std::fs::create_dir_all(&p).map_err(|e| Error::local("create", &p, e))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::local("restrict", &p, e))?;
                SpoolDir::Given(p)
            }
            None => SpoolDir::Temp(
                tempfile::Builder::new()
                    .prefix("cta-data-mount-")
                    .tempdir()
                    .map_err(|e| Error::local("create", std::env::temp_dir(), e))?,
            ),
        };
        // Without --cache-dir, --cache-max-size bounds the process's memory: three quarters
        // for cached blocks, the rest for the process itself (FUSE buffers, blocks being
        // put together, the allocator's slack). With it, it bounds the disk cache, and
        // memory takes a quarter of it (at most MEMORY_WITH_DISK).
        let cache = match &opts.cache_dir {
            None => BlockCache::new(opts.cache_max_size / 4 * 3),
            Some(dir) => {
                let blocks = dir.join("blocks");
                BlockCache::with_disk(
                    (opts.cache_max_size / 4).min(MEMORY_WITH_DISK),
                    &blocks,
                    opts.cache_max_size,
                )
                .map_err(|e| Error::local("prepare the block cache in", &blocks, e))?
            }
        };
        // SAFETY: plain getters without arguments.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let mut nodes = Nodes::default();
        nodes.by_ino.insert(
            1,
            Node {
                path: root.clone(),
                lookups: 1,
            },
        );
        nodes.by_path.insert(root.clone(), 1);
        Ok(MountFs {
            inner: Arc::new(Inner {
                backend,
                rt,
                uid: opts.uid.unwrap_or(euid),
                gid: opts.gid.unwrap_or(egid),
                cache,
                opts,
                root_meta: Meta::of(&root_entry),
                nodes: Mutex::new(nodes),
                listings: Mutex::new(HashMap::new()),
                listing_locks: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                handles: Mutex::new(HashMap::new()),
                next_fh: AtomicU64::new(1),
                spool,
            }),
        })
    }

    fn spawn<F>(&self, f: impl FnOnce(Arc<Inner>) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.rt.spawn(f(self.inner.clone()));
    }
}

fn name_str(name: &OsStr) -> std::result::Result<&str, Errno> {
    name.to_str().ok_or(Errno::ENOENT)
}

impl Inner {
    fn ttl(&self) -> Duration {
        self.opts.dir_cache_time
    }

    fn path_of(&self, ino: INodeNo) -> std::result::Result<RemotePath, Errno> {
        lock(&self.nodes)
            .by_ino
            .get(&ino.0)
            .map(|n| n.path.clone())
            .ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> std::result::Result<RemotePath, Errno> {
        let p = self.path_of(parent)?;
        let name = name_str(name)?;
        p.join(name).map_err(|_| Errno::EINVAL)
    }

    fn attr(&self, ino: u64, m: &Meta) -> FileAttr {
        let (kind, base, nlink) = match m.kind {
            EntryKind::Directory => (FileType::Directory, 0o777, 2),
            EntryKind::File => (FileType::RegularFile, 0o666, 1),
        };
        let mut perm = base & !self.opts.umask;
        if !self.opts.write {
            perm &= !0o222;
        }
        FileAttr {
            ino: INodeNo(ino),
            size: m.size,
            blocks: m.size.div_ceil(512),
            atime: m.mtime,
            mtime: m.mtime,
            ctime: m.mtime,
            crtime: m.mtime,
            kind,
            perm: perm as u16,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        }
    }

    async fn deadline<T>(
        &self,
        what: &str,
        path: &RemotePath,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.opts.io_timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(Error::transport(
                path.to_string(),
                format!(
                    "{what}: no answer within {}s (--io-timeout)",
                    self.opts.io_timeout.as_secs()
                ),
            )),
        }
    }

    /// The listing of `dir`, from the cache while it is fresh.
    async fn listing(&self, dir: &RemotePath) -> Result<Arc<Dir>> {
        if let Some(l) = self.fresh_listing(dir) {
            return Ok(l);
        }
        let gate = lock(&self.listing_locks)
            .entry(dir.clone())
            .or_default()
            .clone();
        let _one = gate.lock().await;
        if let Some(l) = self.fresh_listing(dir) {
            return Ok(l);
        }
        let entries = self
            .deadline("list", dir, async {
                let mut s = self.backend.list(dir).await?;
                let mut v = Vec::new();
                while let Some(e) = s.next().await {
                    v.push(e?);
                }
                Ok(v)
            })
            .await?;
        let entries = Arc::new(Dir::new(entries));
        let ttl = self.ttl();
        let mut listings = lock(&self.listings);
        // Memory stays with what was listed within --dir-cache-time.
        listings.retain(|_, l| l.at.elapsed() < ttl);
        listings.insert(
            dir.clone(),
            Listing {
                at: Instant::now(),
                entries: entries.clone(),
            },
        );
        drop(listings);
        // Those waiting hold the gate still; newcomers find the fresh listing.
        lock(&self.listing_locks).remove(dir);
        Ok(entries)
    }

    fn fresh_listing(&self, dir: &RemotePath) -> Option<Arc<Dir>> {
        lock(&self.listings)
            .get(dir)
            .filter(|l| l.at.elapsed() < self.ttl())
            .map(|l| l.entries.clone())
    }

    /// Puts (or replaces) `e` in its parent's cached listing.
    fn listing_insert(&self, e: Entry) {
        let Some(parent) = e.path.parent() else {
            return;
        };
        let mut ls = lock(&self.listings);
        if let Some(l) = ls.get_mut(&parent) {
            let mut v: Vec<Entry> = l
                .entries
                .iter()
                .filter(|x| x.name != e.name)
                .cloned()
                .collect();
            v.push(e);
            l.entries = Arc::new(Dir::new(v));
        }
    }

    fn listing_remove(&self, path: &RemotePath) {
        let Some(parent) = path.parent() else { return };
        let mut ls = lock(&self.listings);
        if let Some(l) = ls.get_mut(&parent) {
            let v: Vec<Entry> = l
                .entries
                .iter()
                .filter(|x| x.name != path.name())
                .cloned()
                .collect();
            l.entries = Arc::new(Dir::new(v));
        }
        ls.retain(|p, _| !p.starts_with(path));
    }

    fn pending_meta(&self, path: &RemotePath) -> Option<Meta> {
        lock(&self.pending).get(path).map(|&size| Meta {
            kind: EntryKind::File,
            size,
            mtime: SystemTime::now(),
        })
    }

    /// The entry of `path`: from its parent's listing (fetched if needed) when `via_parent`,
    /// else from the parent's listing only while it is cached, else a `stat`.
    async fn entry(&self, path: &RemotePath, via_parent: bool) -> Result<Entry> {
        if let Some(parent) = path.parent() {
            let cached = self.fresh_listing(&parent);
            let listing = match cached {
                Some(l) => Some(l),
                None if via_parent => Some(self.listing(&parent).await?),
                None => None,
            };
            if let Some(l) = listing {
                return l
                    .get(path.name())
                    .cloned()
                    .ok_or_else(|| Error::not_found(path));
            }
        }
        self.deadline("stat", path, self.backend.stat(path)).await
    }

    fn new_fh(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, h);
        fh
    }

    fn read_handle(&self, fh: FileHandle) -> Option<Arc<ReadHandle>> {
        match lock(&self.handles).get(&fh.0) {
            Some(Handle::Read(h)) => Some(h.clone()),
            _ => None,
        }
    }

    fn write_handle(&self, fh: FileHandle) -> Option<Arc<WriteHandle>> {
        match lock(&self.handles).get(&fh.0) {
            Some(Handle::Write(h)) => Some(h.clone()),
            _ => None,
        }
    }

    fn refuse_write(&self, op: &str, path: &str) -> Errno {
        if !self.opts.write {
            tracing::debug!("{op} {path}: read-only mount");
            return Errno::EROFS;
        }
        Errno::EPERM
    }

    // ---- reading ----

    /// Notes a read of `size` bytes at `offset` in the handle's stream and starts the
    /// fetches of its blocks and of the read-ahead; `None` when it lies past the end.
    fn start_read(&self, h: &ReadHandle, offset: u64, size: u32) -> Option<Span> {
        let end = offset.saturating_add(u64::from(size)).min(h.size);
        if offset >= end {
            return None;
        }
        let first = offset / BLOCK;
        let last = (end - 1) / BLOCK;
        let blocks_total = h.size.div_ceil(BLOCK);
        // Sequential or random? Decide the blocks to ask for beyond this read. The window
        // is all the bytes read in sequence so far up to SLOW_START, then a fifth of them
        // (at least MIN_WINDOW, at most MAX_WINDOW and half the memory cache), so
        // read-ahead never fetches much more than a reader goes on to use; it is fetched in
        // RUNS_IN_WINDOW ranges at once.
        let (ahead_from, ahead_to, run, drop_behind) = {
            let mut s = lock(&h.seq);
            let sequential =
                offset + SEQ_SLACK >= s.next && offset <= s.next.saturating_add(SEQ_SLACK);
            if sequential {
                s.seq_bytes += end - offset;
                let max = MAX_WINDOW.min(self.cache.max_bytes() / 2);
                s.window = (s.seq_bytes / WINDOW_DIVISOR)
                    .max(s.seq_bytes.min(SLOW_START))
                    .clamp(MIN_WINDOW.min(max), max);
                s.next = s.next.max(end);
            } else {
                s.seq_bytes = 0;
                s.window = 0;
                s.ahead = 0;
                s.next = end;
            }
            // Topped up as soon as a whole run is missing from the window, so the runs in
            // flight stay near RUNS_IN_WINDOW while a stream is read.
            let run = run_bytes(s.window);
            let to = (end + s.window).div_ceil(BLOCK).min(blocks_total);
            let from = s.ahead.max(last + 1);
            let missing = to.saturating_sub(from) * BLOCK;
            if s.window > 0 && to > from && (missing >= run.min(s.window / 2) || to == blocks_total)
            {
                s.ahead = s.ahead.max(to);
                (from, to, run, sequential)
            } else {
                (0, 0, run, sequential && s.window > 0)
            }
        };
        // Start fetches: the blocks of this read first, then read-ahead.
        self.fetch_blocks(h, first, last + 1, RUN_BYTES);
        if ahead_to > ahead_from {
            self.fetch_blocks(h, ahead_from, ahead_to, run);
        }
        Some(Span {
            offset,
            end,
            drop_behind,
        })
    }

    /// After `span` was delivered: the blocks of a sequential stream that it read to their
    /// end leave memory (to the disk cache, if there is one).
    fn delivered(&self, h: &ReadHandle, span: Span) {
        if !span.drop_behind {
            return;
        }
        for b in span.blocks() {
            if ((b + 1) * BLOCK).min(h.size) <= span.end {
                self.cache.release((h.version, b));
            }
        }
    }

    /// The bytes of `span` if all its blocks are in memory now (no wait, no task).
    fn read_cached(&self, h: &ReadHandle, span: Span) -> Option<std::result::Result<Bytes, Errno>> {
        let mut blocks = Vec::new();
        for b in span.blocks() {
            match self.cache.lookup_memory((h.version, b)) {
                Some(d) => blocks.push(d),
                None => return None,
            }
        }
        Some(span.assemble(blocks))
    }

    /// The bytes of `span`, waiting for its blocks as needed.
    async fn read_span(&self, h: &ReadHandle, span: Span) -> std::result::Result<Bytes, Errno> {
        let mut blocks = Vec::new();
        for b in span.blocks() {
            blocks.push(self.block(h, b).await?);
        }
        span.assemble(blocks)
    }

    /// One block, from the cache, from a fetch in flight, or fetched now.
    async fn block(&self, h: &ReadHandle, b: u64) -> std::result::Result<Bytes, Errno> {
        let wait = self.opts.io_timeout * 4;
        for _ in 0..3 {
            match self.cache.lookup((h.version, b)) {
                Lookup::Ready(d) => return Ok(d),
                Lookup::Wait(rx) => {
                    return match tokio::time::timeout(wait, BlockCache::wait(rx)).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::warn!("read {}: block {b} not delivered in time", h.path);
                            Err(Errno::EIO)
                        }
                    }
                }
                Lookup::Missing => self.fetch_blocks(h, b, b + 1, RUN_BYTES),
            }
        }
        Err(Errno::EIO)
    }

    /// Claims the missing blocks of `from..to` and fetches them in runs (one ranged GET per
    /// run of at most `run_bytes`).
    fn fetch_blocks(&self, h: &ReadHandle, from: u64, to: u64, run_bytes: u64) {
        let per_run = (run_bytes / BLOCK).max(1);
        let mut run: Vec<(u64, Claim)> = Vec::new();
        let flush = |run: &mut Vec<(u64, Claim)>| {
            if run.is_empty() {
                return;
            }
            let claims = std::mem::take(run);
            let backend = self.backend.clone();
            let path = h.path.clone();
            let entry = h.entry.clone();
            let session = h.session.clone();
            let size = h.size;
            let timeout = self.opts.io_timeout;
            self.rt.spawn(fetch_run(
                backend, path, entry, session, size, claims, timeout,
            ));
        };
        for b in from..to {
            match self.cache.claim((h.version, b)) {
                Some(c) => {
                    if run.last().is_some_and(|(last, _)| *last + 1 != b)
                        || run.len() as u64 >= per_run
                    {
                        flush(&mut run);
                    }
                    run.push((b, c));
                }
                None => flush(&mut run),
            }
        }
        flush(&mut run);
    }

    // ---- writing ----

    async fn upload(&self, w: &WriteHandle) -> std::result::Result<(), Errno> {
        let _one = w.upload.lock().await;
        let len = {
            let mut st = lock(&w.state);
            if let Some(e) = st.failed {
                return Err(e);
            }
            if st.uploaded {
                return Ok(());
            }
            if let Some(f) = st.file.take() {
                if let Err(e) = f.sync_all() {
                    tracing::warn!("upload {}: cannot finish the spool file: {e}", w.path);
                    st.failed = Some(Errno::EIO);
                    return Err(Errno::EIO);
                }
            }
            st.len
        };
        let body = match Upload::from_file(&w.spool).await {
            Ok(b) => b,
            Err(e) => {
                let errno = errno_of("upload", &w.path, &e);
                lock(&w.state).failed = Some(errno);
                return Err(errno);
            }
        };
        let r = self
            .backend
            .put(&w.path, body, PutOptions::default().with_known_absent(true))
            .await;
        lock(&self.pending).remove(&w.path);
        match r {
            Ok(out) => {
                lock(&w.state).uploaded = true;
                let mut e = Entry::new(out.path.clone(), EntryKind::File);
                e.size = Some(len);
                e.mtime = Some(SystemTime::now());
                self.listing_insert(e);
                tracing::info!("uploaded {} ({len} bytes)", out.path);
                Ok(())
            }
            Err(err) => {
                let errno = match errno_of("upload", &w.path, &err) {
                    Errno::ENOSPC => Errno::ENOSPC,
                    Errno::EACCES => Errno::EACCES,
                    _ => Errno::EIO,
                };
                // Nothing partial stays: remove whatever the failed upload left.
                match self
                    .deadline("delete", &w.path, self.backend.delete(&w.path, false))
                    .await
                {
                    Ok(()) => tracing::info!("removed the partial upload of {}", w.path),
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => tracing::warn!(
                        "{}: the failed upload may have left a partial file, and removing it failed too: {e}",
                        w.path
                    ),
                }
                self.listing_remove(&w.path);
                lock(&self.nodes).forget(w.ino, 0);
                lock(&w.state).failed = Some(errno);
                Err(errno)
            }
        }
    }
}

/// The size of one ranged GET of read-ahead for `window`: a window is fetched as about
/// [`RUNS_IN_WINDOW`] GETs at once, each [`MIN_RUN_BYTES`] to [`RUN_BYTES`].
fn run_bytes(window: u64) -> u64 {
    (window / RUNS_IN_WINDOW).clamp(MIN_RUN_BYTES, RUN_BYTES)
}

/// Fetches one run of blocks with one ranged GET, publishing each block as it completes.
async fn fetch_run(
    backend: Arc<dyn StorageBackend>,
    path: RemotePath,
    entry: Entry,
    session: ReadSession,
    size: u64,
    claims: Vec<(u64, Claim)>,
    timeout: Duration,
) {
    let Some(&(first, _)) = claims.first() else {
        return;
    };
    let last = claims.last().map(|(b, _)| *b).unwrap_or(first);
    let start = first * BLOCK;
    let end = ((last + 1) * BLOCK).min(size);
    let mut claims = claims.into_iter();
    let fail = |claims: std::vec::IntoIter<(u64, Claim)>, errno: Errno| {
        for (_, c) in claims {
            c.fill(Err(errno));
        }
    };
    let Ok(range) = ByteRange::bounded(start, end) else {
        return fail(claims, Errno::EIO);
    };
    let opts = GetOptions::default()
        .with_range(range)
        .with_known(entry)
        .with_session(session);
    let dl = match tokio::time::timeout(timeout, backend.get(&path, opts)).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            let errno = errno_of("read", &path, &e);
            return fail(claims, errno);
        }
        Err(_) => {
            tracing::warn!(
                "read {path} (bytes {start}..{end}): no answer within {}s (--io-timeout)",
                timeout.as_secs()
            );
            return fail(claims, Errno::EIO);
        }
    };
    let mut stream = dl.stream;
    // Bytes received and not yet given to a block. Every block is copied into a buffer of
    // its own size: a slice of the answer's chunks would keep the HTTP client's whole read
    // buffer alive (several times the block) for as long as the block stays cached, and the
    // cache's byte bound would no longer bound memory.
    let mut pending = Bytes::new();
    let mut buf = BytesMut::new();
    let mut current = claims.next();
    while let Some((b, _)) = &current {
        let want = (size.min((b + 1) * BLOCK) - b * BLOCK) as usize;
        let data = if pending.is_empty() {
            None
        } else {
            if buf.is_empty() {
                buf.reserve(want);
            }
            let take = (want - buf.len()).min(pending.len());
            buf.extend_from_slice(&pending.split_to(take));
            (buf.len() == want).then(|| buf.split().freeze())
        };
        if let Some(data) = data {
            if let Some((_, c)) = current.take() {
                c.fill(Ok(data));
            }
            current = claims.next();
            continue;
        }
        match tokio::time::timeout(timeout, stream.next()).await {
            Ok(Some(Ok(chunk))) => pending = chunk,
            Ok(Some(Err(e))) => {
                let errno = errno_of("read", &path, &e);
                if let Some((_, c)) = current.take() {
                    c.fill(Err(errno));
                }
                return fail(claims, errno);
            }
            Ok(None) => {
                tracing::warn!(
                    "read {path}: the server ended the answer early (bytes {start}..{end})"
                );
                if let Some((_, c)) = current.take() {
                    c.fill(Err(Errno::EIO));
                }
                return fail(claims, Errno::EIO);
            }
            Err(_) => {
                tracing::warn!(
                    "read {path}: the server stopped sending (no bytes for {}s, --io-timeout)",
                    timeout.as_secs()
                );
                if let Some((_, c)) = current.take() {
                    c.fill(Err(Errno::EIO));
                }
                return fail(claims, Errno::EIO);
            }
        }
    }
}

fn version_of(e: &Entry) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    e.path.hash(&mut h);
    e.size.hash(&mut h);
    e.mtime.hash(&mut h);
    e.etag.hash(&mut h);
    h.finish()
}

impl Filesystem for MountFs {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // Larger kernel read-ahead means fewer, larger read requests. The kernel offers its
        // default (128 KiB) and refuses more, so reads arrive as 128 KiB requests; raising
        // /sys/class/bdi/MAJ:MIN/read_ahead_kb to 1024 (1 MiB requests) was measured to make
        // no difference to `dd` (the cost is in copying bytes, not in requests).
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let path = match self.inner.child(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|fs| async move {
            if let Some(m) = fs.pending_meta(&path) {
                let ino = lock(&fs.nodes).ino(&path, true);
                return reply.entry(&fs.ttl(), &fs.attr(ino, &m), Generation(0));
            }
            match fs.entry(&path, true).await {
                Ok(e) => {
                    let ino = lock(&fs.nodes).ino(&path, true);
                    reply.entry(&fs.ttl(), &fs.attr(ino, &Meta::of(&e)), Generation(0));
                }
                Err(e) => reply.error(errno_of("lookup", &path, &e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.inner.nodes).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino.0 == 1 {
            return reply.attr(
                &self.inner.ttl(),
                &self.inner.attr(1, &self.inner.root_meta),
            );
        }
        let path = match self.inner.path_of(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|fs| async move {
            if let Some(m) = fs.pending_meta(&path) {
                return reply.attr(&fs.ttl(), &fs.attr(ino.0, &m));
            }
            match fs.entry(&path, false).await {
                Ok(e) => reply.attr(&fs.ttl(), &fs.attr(ino.0, &Meta::of(&e))),
                Err(e) => reply.error(errno_of("stat", &path, &e)),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let path = match self.inner.path_of(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if let Some(size) = size {
            // Only a new, still empty file may be "truncated" (to 0): files are write-once.
            let pending = self.inner.pending_meta(&path);
            match pending {
                Some(m) if m.size == size => {
                    return reply.attr(&self.inner.ttl(), &self.inner.attr(ino.0, &m))
                }
                _ => {
                    if self.inner.opts.write {
                        tracing::warn!(
                            "truncate {path}: refused, files on the storage are write-once (delete it and write it anew)"
                        );
                    }
                    return reply.error(self.inner.refuse_write("truncate", path.as_str()));
                }
            }
        }
        // Modes, owners and times are not stored: answer with what is there.
        self.getattr(_req, ino, None, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let path = match self.inner.child(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if !self.inner.opts.write {
            return reply.error(Errno::EROFS);
        }
        self.spawn(|fs| async move {
            match fs
                .deadline("mkdir", &path, fs.backend.mkdir(&path, false))
                .await
            {
                Ok(()) => {
                    let mut e = Entry::new(path.clone(), EntryKind::Directory);
                    e.mtime = Some(SystemTime::now());
                    let m = Meta::of(&e);
                    fs.listing_insert(e);
                    lock(&fs.listings).insert(
                        path.clone(),
                        Listing {
                            at: Instant::now(),
                            entries: Arc::new(Dir::new(Vec::new())),
                        },
                    );
                    let ino = lock(&fs.nodes).ino(&path, true);
                    reply.entry(&fs.ttl(), &fs.attr(ino, &m), Generation(0));
                }
                Err(e) => reply.error(errno_of("mkdir", &path, &e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, "unlink");
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, "rmdir");
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (from, to) = match (
            self.inner.child(parent, name),
            self.inner.child(newparent, newname),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        if !self.inner.opts.write {
            return reply.error(Errno::EROFS);
        }
        self.spawn(|fs| async move {
            match fs.entry(&to, true).await {
                Ok(_) => {
                    tracing::warn!("rename {from} -> {to}: refused, {to} exists (files are write-once; delete it first)");
                    return reply.error(Errno::EEXIST);
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => return reply.error(errno_of("rename", &to, &e)),
            }
            let moved = fs.entry(&from, true).await;
            match fs
                .deadline("rename", &from, fs.backend.rename(&from, &to, false))
                .await
            {
                Ok(()) => {
                    fs.listing_remove(&from);
                    if let Ok(mut e) = moved {
                        e.name = to.name().to_string();
                        e.path = to.clone();
                        fs.listing_insert(e);
                    }
                    lock(&fs.nodes).rename(&from, &to);
                    reply.ok();
                }
                Err(e) => reply.error(errno_of("rename", &from, &e)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let path = match self.inner.path_of(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let raw = flags.0;
        if raw & libc::O_ACCMODE != libc::O_RDONLY || raw & libc::O_TRUNC != 0 {
            if self.inner.opts.write {
                tracing::warn!(
                    "open {path} for writing: refused, files on the storage are write-once (write a new file, or delete this one first)"
                );
            }
            return reply.error(self.inner.refuse_write("open for writing", path.as_str()));
        }
        self.spawn(|fs| async move {
            let entry = match fs.entry(&path, false).await {
                Ok(e) => e,
                Err(e) => return reply.error(errno_of("open", &path, &e)),
            };
            if entry.is_dir() {
                return reply.error(Errno::EISDIR);
            }
            let entry = if entry.locality == Some(ctadata::entry::Locality::Nearline) {
                match stage(&fs, &path).await {
                    Ok(e) => e,
                    Err(errno) => return reply.error(errno),
                }
            } else {
                entry
            };
            let h = ReadHandle {
                path,
                size: entry.size.unwrap_or(0),
                version: version_of(&entry),
                session: ReadSession::new(),
                entry,
                seq: Mutex::new(Seq::default()),
            };
            let fh = fs.new_fh(Handle::Read(Arc::new(h)));
            reply.opened(FileHandle(fh), FopenFlags::empty());
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let Some(h) = self.inner.read_handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        // The fetches start here; data already in memory is answered on this thread, the
        // rest from a task once its blocks arrive.
        let Some(span) = self.inner.start_read(&h, offset, size) else {
            return reply.data(&[]);
        };
        if let Some(r) = self.inner.read_cached(&h, span) {
            return match r {
                Ok(data) => {
                    reply.data(&data);
                    self.inner.delivered(&h, span);
                }
                Err(e) => reply.error(e),
            };
        }
        self.spawn(|fs| async move {
            match fs.read_span(&h, span).await {
                Ok(data) => {
                    reply.data(&data);
                    fs.delivered(&h, span);
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(w) = self.inner.write_handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let mut st = lock(&w.state);
        if st.uploaded || st.failed.is_some() {
            tracing::warn!(
                "write {}: refused, the file was closed and uploaded already (write-once)",
                w.path
            );
            return reply.error(Errno::EPERM);
        }
        if offset != st.len {
            tracing::warn!(
                "write {} at offset {offset}: refused, new files are written sequentially (at {}), random writes are not supported",
                w.path,
                st.len
            );
            return reply.error(Errno::EPERM);
        }
        let Some(f) = st.file.as_mut() else {
            return reply.error(Errno::EBADF);
        };
        if let Err(e) = f.write_all(data) {
            tracing::warn!(
                "write {}: cannot spool to {}: {e}",
                w.path,
                w.spool.display()
            );
            return reply.error(Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        st.len += data.len() as u64;
        let len = st.len;
        drop(st);
        lock(&self.inner.pending).insert(w.path.clone(), len);
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        let Some(w) = self.inner.write_handle(fh) else {
            return reply.ok();
        };
        self.spawn(|fs| async move {
            match fs.upload(&w).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.flush(req, ino, fh, fuser::LockOwner(0), reply);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let h = lock(&self.inner.handles).remove(&fh.0);
        if let Some(Handle::Write(w)) = h {
            let uploaded = lock(&w.state).uploaded;
            if !uploaded {
                // Closed without a successful upload: the file does not exist.
                lock(&self.inner.pending).remove(&w.path);
            }
            let _ = std::fs::remove_file(&w.spool);
        }
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let path = match self.inner.path_of(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|fs| async move {
            match fs.listing(&path).await {
                Ok(l) => {
                    let fh = fs.new_fh(Handle::Dir(l));
                    reply.opened(FileHandle(fh), FopenFlags::empty());
                }
                Err(e) => reply.error(errno_of("list", &path, &e)),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match lock(&self.inner.handles).get(&fh.0) {
            Some(Handle::Dir(l)) => l.clone(),
            _ => return reply.error(Errno::EBADF),
        };
        let parent_ino = match self.inner.path_of(ino) {
            Ok(p) => p
                .parent()
                .and_then(|pp| lock(&self.inner.nodes).by_path.get(&pp).copied())
                .unwrap_or(1),
            Err(e) => return reply.error(e),
        };
        let mut i = offset;
        if i == 0 {
            if reply.add(ino, 1, FileType::Directory, ".") {
                return reply.ok();
            }
            i = 1;
        }
        if i == 1 {
            if reply.add(INodeNo(parent_ino), 2, FileType::Directory, "..") {
                return reply.ok();
            }
            i = 2;
        }
        let nodes = lock(&self.inner.nodes);
        for (k, e) in entries.iter().enumerate().skip((i - 2) as usize) {
            let child_ino = nodes
                .by_path
                .get(&e.path)
                .copied()
                .unwrap_or_else(|| path_ino(&e.path));
            let kind = if e.is_dir() {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(child_ino), k as u64 + 3, kind, &e.name) {
                break;
            }
        }
        drop(nodes);
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.inner.handles).remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // The storage does not say how full it is: show plenty of room.
        let blocks = 1u64 << 40;
        reply.statfs(blocks, blocks, blocks, 1 << 30, 1 << 30, 4096, 255, 4096);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        reply.error(Errno::ENODATA);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: fuser::ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let path = match self.inner.child(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if !self.inner.opts.write {
            return reply.error(Errno::EROFS);
        }
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            return reply.error(Errno::EINVAL);
        }
        self.spawn(|fs| async move {
            if fs.pending_meta(&path).is_some() {
                return reply.error(Errno::EEXIST);
            }
            match fs.entry(&path, true).await {
                Ok(_) => {
                    tracing::warn!(
                        "create {path}: refused, it exists (files are write-once; delete it first)"
                    );
                    return reply.error(Errno::EEXIST);
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => return reply.error(errno_of("create", &path, &e)),
            }
            let spool = match tempfile::Builder::new()
                .prefix("upload-")
                .tempfile_in(fs.spool.path())
                .and_then(|t| t.keep().map_err(|e| e.error))
            {
                Ok((file, p)) => (file, p),
                Err(e) => {
                    tracing::warn!(
                        "create {path}: cannot make a spool file in {}: {e}",
                        fs.spool.path().display()
                    );
                    return reply.error(Errno::EIO);
                }
            };
            let ino = lock(&fs.nodes).ino(&path, true);
            lock(&fs.pending).insert(path.clone(), 0);
            let w = WriteHandle {
                path: path.clone(),
                ino,
                spool: spool.1,
                state: Mutex::new(WriteState {
                    file: Some(spool.0),
                    len: 0,
                    uploaded: false,
                    failed: None,
                }),
                upload: tokio::sync::Mutex::new(()),
            };
            let fh = fs.new_fh(Handle::Write(Arc::new(w)));
            let m = Meta {
                kind: EntryKind::File,
                size: 0,
                mtime: SystemTime::now(),
            };
            reply.created(
                &fs.ttl(),
                &fs.attr(ino, &m),
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            );
        });
    }
}

impl MountFs {
    fn remove(&self, parent: INodeNo, name: &OsStr, reply: ReplyEmpty, op: &'static str) {
        let path = match self.inner.child(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if !self.inner.opts.write {
            return reply.error(Errno::EROFS);
        }
        self.spawn(|fs| async move {
            match fs
                .deadline(op, &path, fs.backend.delete(&path, false))
                .await
            {
                Ok(()) => {
                    fs.listing_remove(&path);
                    reply.ok();
                }
                Err(e) => reply.error(errno_of(op, &path, &e)),
            }
        });
    }
}

/// A file on tape only: staged and waited for with `--stage-on-open`, else `ENODATA` and a
/// log line naming `cta-data stage`.
async fn stage(fs: &Inner, path: &RemotePath) -> std::result::Result<Entry, Errno> {
    if !fs.opts.stage_on_open {
        tracing::warn!(
            "open {path}: the file is on tape only (NEARLINE); stage it first with 'cta-data stage {path}', or mount with --stage-on-open"
        );
        return Err(Errno::ENODATA);
    }
    let Some(tape) = fs.backend.tape() else {
        tracing::warn!(
            "open {path}: on tape only, and this backend cannot stage (use a dcache profile)"
        );
        return Err(Errno::ENODATA);
    };
    tracing::info!("open {path}: on tape only, staging it (--stage-on-open)");
    let id = match tape.stage(std::slice::from_ref(path), None).await {
        Ok(id) => id,
        Err(e) => return Err(errno_of("stage", path, &e)),
    };
    loop {
        match tape.status(&id).await {
            Ok(s) if s.online() > 0 => break,
            Ok(s) if s.is_done() => {
                tracing::warn!("open {path}: staging failed (request {id})");
                return Err(Errno::EIO);
            }
            Ok(s) => {
                tokio::time::sleep(
                    s.retry_after
                        .unwrap_or(Duration::from_secs(2))
                        .min(Duration::from_secs(30)),
                )
                .await
            }
            Err(e) => return Err(errno_of("stage status", path, &e)),
        }
    }
    lock(&fs.listings).remove(&path.parent().unwrap_or_else(RemotePath::root));
    match fs.deadline("stat", path, fs.backend.stat(path)).await {
        Ok(e) => Ok(e),
        Err(e) => Err(errno_of("stat", path, &e)),
    }
}
