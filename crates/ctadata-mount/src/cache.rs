//! The block cache of a mount: fixed-size blocks of files, byte-bounded (LRU), shared by
//! every open handle; blocks being fetched are shared too, so two readers of one block wait
//! for one GET.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use fuser::Errno;
use tokio::sync::watch;

/// Size of one cached block: small enough that a random read of an HDF5 chunk fetches
/// little more than it needs.
pub const BLOCK: u64 = 128 * 1024;

/// A block: which file version (a hash of path, size, mtime and ETag) and which block.
pub type Key = (u64, u64);

/// What a block being fetched turns into.
type Slot = Option<Result<Bytes, Errno>>;

#[derive(Default)]
struct State {
    blocks: HashMap<Key, (Bytes, u64)>,
    order: BTreeMap<u64, Key>,
    bytes: u64,
    tick: u64,
    inflight: HashMap<Key, watch::Receiver<Slot>>,
}

/// A byte-bounded LRU cache of file blocks, with the fetches in flight; with a disk tier,
/// blocks pushed out of memory are kept on disk (bounded too) and come back from there.
pub struct BlockCache {
    max_bytes: u64,
    state: Mutex<State>,
    disk: Option<DiskTier>,
}

/// Blocks on local disk, one file each, byte-bounded (LRU).
struct DiskTier {
    dir: std::path::PathBuf,
    max_bytes: u64,
    state: Mutex<DiskState>,
}

#[derive(Default)]
struct DiskState {
    index: HashMap<Key, (u64, u64)>,
    order: BTreeMap<u64, Key>,
    bytes: u64,
    tick: u64,
}

impl DiskTier {
    fn file(&self, key: Key) -> std::path::PathBuf {
        self.dir.join(format!("{:016x}-{}", key.0, key.1))
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put(&self, key: Key, data: &Bytes) {
        let len = data.len() as u64;
        if len > self.max_bytes || self.lock().index.contains_key(&key) {
            return;
        }
        if let Err(e) = std::fs::write(self.file(key), data) {
            tracing::debug!("cache: cannot write a block to {}: {e}", self.dir.display());
            return;
        }
        let mut drop_files = Vec::new();
        {
            let mut st = self.lock();
            st.tick += 1;
            let tick = st.tick;
            st.index.insert(key, (len, tick));
            st.order.insert(tick, key);
            st.bytes += len;
            while st.bytes > self.max_bytes {
                let Some((&t, &k)) = st.order.iter().next() else {
                    break;
                };
                st.order.remove(&t);
                if let Some((l, _)) = st.index.remove(&k) {
                    st.bytes = st.bytes.saturating_sub(l);
                    drop_files.push(k);
                }
            }
        }
        for k in drop_files {
            let _ = std::fs::remove_file(self.file(k));
        }
    }

    fn get(&self, key: Key) -> Option<Bytes> {
        {
            let mut st = self.lock();
            st.tick += 1;
            let tick = st.tick;
            let (_, old) = st
                .index
                .get_mut(&key)
                .map(|(l, t)| (*l, std::mem::replace(t, tick)))?;
            st.order.remove(&old);
            st.order.insert(tick, key);
        }
        match std::fs::read(self.file(key)) {
            Ok(d) => Some(Bytes::from(d)),
            Err(_) => {
                let mut st = self.lock();
                if let Some((l, t)) = st.index.remove(&key) {
                    st.order.remove(&t);
                    st.bytes = st.bytes.saturating_sub(l);
                }
                None
            }
        }
    }
}

/// How a caller gets a block: at once, by waiting on a fetch, or by fetching it itself.
pub enum Lookup {
    /// In the cache.
    Ready(Bytes),
    /// Someone fetches it: wait on this.
    Wait(watch::Receiver<Slot>),
    /// Nobody has it: the caller must fetch it and [`Claim::fill`] the claim.
    Missing,
}

/// The right (and duty) to fetch one block: dropping it unfilled fails the waiters with EIO.
pub struct Claim {
    cache: Arc<BlockCache>,
    key: Key,
    tx: Option<watch::Sender<Slot>>,
}

impl Claim {
    /// Publishes the block to the cache and to everyone waiting for it.
    pub fn fill(mut self, data: Result<Bytes, Errno>) {
        if let Ok(b) = &data {
            self.cache.insert(self.key, b.clone());
        }
        self.cache.lock().inflight.remove(&self.key);
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Some(data));
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.cache.lock().inflight.remove(&self.key);
            let _ = tx.send(Some(Err(Errno::EIO)));
        }
    }
}

impl BlockCache {
    /// A cache holding at most `max_bytes` of blocks.
    pub fn new(max_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            max_bytes: max_bytes.max(4 * BLOCK),
            state: Mutex::new(State::default()),
            disk: None,
        })
    }

    /// A cache of at most `max_bytes` in memory, backed by at most `disk_bytes` of block
    /// files in `dir` (emptied first: blocks of an earlier mount are not trusted).
    pub fn with_disk(
        max_bytes: u64,
        dir: &std::path::Path,
        disk_bytes: u64,
    ) -> std::io::Result<Arc<Self>> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Arc::new(Self {
            max_bytes: max_bytes.max(4 * BLOCK),
            state: Mutex::new(State::default()),
            disk: Some(DiskTier {
                dir: dir.to_path_buf(),
                max_bytes: disk_bytes,
                state: Mutex::new(DiskState::default()),
            }),
        }))
    }

    /// The bound given.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The block if cached (and marks it recently used), the fetch if one runs.
    pub fn lookup(&self, key: Key) -> Lookup {
        let mut st = self.lock();
        st.tick += 1;
        let tick = st.tick;
        if let Some((data, old)) = st.blocks.get_mut(&key) {
            let data = data.clone();
            let old = std::mem::replace(old, tick);
            st.order.remove(&old);
            st.order.insert(tick, key);
            return Lookup::Ready(data);
        }
        if let Some(rx) = st.inflight.get(&key) {
            return Lookup::Wait(rx.clone());
        }
        drop(st);
        if let Some(data) = self.disk.as_ref().and_then(|d| d.get(key)) {
            self.insert(key, data.clone());
            return Lookup::Ready(data);
        }
        Lookup::Missing
    }

    /// The block if it is in memory now (and marks it recently used); nothing else is
    /// looked at (no fetch in flight, no disk).
    pub fn lookup_memory(&self, key: Key) -> Option<Bytes> {
        let mut st = self.lock();
        st.tick += 1;
        let tick = st.tick;
        let (data, old) = st.blocks.get_mut(&key)?;
        let data = data.clone();
        let old = std::mem::replace(old, tick);
        st.order.remove(&old);
        st.order.insert(tick, key);
        Some(data)
    }

    /// Takes a block out of memory (to the disk tier, if there is one), for blocks that
    /// will not be read again soon.
    pub fn release(&self, key: Key) {
        let mut st = self.lock();
        let Some((d, tick)) = st.blocks.remove(&key) else {
            return;
        };
        st.order.remove(&tick);
        st.bytes = st.bytes.saturating_sub(d.len() as u64);
        drop(st);
        if let Some(disk) = &self.disk {
            disk.put(key, &d);
        }
    }

    /// Claims a block that is neither cached (in memory or on disk) nor being fetched; `None`
    /// when it is.
    pub fn claim(self: &Arc<Self>, key: Key) -> Option<Claim> {
        if self
            .disk
            .as_ref()
            .is_some_and(|d| d.lock().index.contains_key(&key))
        {
            return None;
        }
        let mut st = self.lock();
        if st.blocks.contains_key(&key) || st.inflight.contains_key(&key) {
            return None;
        }
        let (tx, rx) = watch::channel(None);
        st.inflight.insert(key, rx);
        Some(Claim {
            cache: self.clone(),
            key,
            tx: Some(tx),
        })
    }

    fn insert(&self, key: Key, data: Bytes) {
        let mut st = self.lock();
        st.tick += 1;
        let tick = st.tick;
        let len = data.len() as u64;
        if let Some((_, old)) = st.blocks.insert(key, (data, tick)) {
            st.order.remove(&old);
            st.bytes = st.bytes.saturating_sub(len);
        }
        st.order.insert(tick, key);
        st.bytes += len;
        let mut evicted = Vec::new();
        while st.bytes > self.max_bytes {
            let Some((&t, &k)) = st.order.iter().next() else {
                break;
            };
            st.order.remove(&t);
            if let Some((d, _)) = st.blocks.remove(&k) {
                st.bytes = st.bytes.saturating_sub(d.len() as u64);
                evicted.push((k, d));
            }
        }
        drop(st);
        if let Some(disk) = &self.disk {
            for (k, d) in evicted {
                disk.put(k, &d);
            }
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Waits for a block fetched by someone else.
    pub async fn wait(mut rx: watch::Receiver<Slot>) -> Result<Bytes, Errno> {
        match rx.wait_for(|v| v.is_some()).await {
            Ok(v) => v.clone().unwrap_or(Err(Errno::EIO)),
            Err(_) => Err(Errno::EIO),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_bound_and_evicts_the_oldest() {
        let c = BlockCache::new(4 * BLOCK);
        for i in 0..10u64 {
            let claim = c.claim((1, i)).unwrap();
            claim.fill(Ok(Bytes::from(vec![0u8; BLOCK as usize])));
        }
        assert!(c.bytes() <= 4 * BLOCK);
        assert!(matches!(c.lookup((1, 9)), Lookup::Ready(_)));
        assert!(matches!(c.lookup((1, 0)), Lookup::Missing));
    }

    #[test]
    fn blocks_pushed_out_of_memory_come_back_from_disk_within_its_bound() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("blocks");
        let c = BlockCache::with_disk(4 * BLOCK, &dir, 8 * BLOCK).unwrap();
        for i in 0..20u64 {
            let claim = c.claim((3, i)).unwrap();
            claim.fill(Ok(Bytes::from(vec![i as u8; BLOCK as usize])));
        }
        let on_disk: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(on_disk <= 8 * BLOCK, "{on_disk}");
        // Block 14 left memory (which holds the last 4) but is among the last 8 on disk.
        match c.lookup((3, 14)) {
            Lookup::Ready(b) => assert_eq!(b[0], 14),
            _ => panic!("block 14 should come from disk"),
        }
        assert!(matches!(c.lookup((3, 0)), Lookup::Missing));
    }

    #[test]
    fn released_blocks_leave_memory_for_the_disk_tier() {
        let c = BlockCache::new(16 * BLOCK);
        c.claim((4, 0)).unwrap().fill(Ok(Bytes::from_static(b"x")));
        assert_eq!(c.lookup_memory((4, 0)), Some(Bytes::from_static(b"x")));
        c.release((4, 0));
        assert_eq!(c.bytes(), 0);
        assert_eq!(c.lookup_memory((4, 0)), None);
        assert!(matches!(c.lookup((4, 0)), Lookup::Missing));

        let d = tempfile::tempdir().unwrap();
        let c = BlockCache::with_disk(16 * BLOCK, &d.path().join("blocks"), 16 * BLOCK).unwrap();
        c.claim((5, 0)).unwrap().fill(Ok(Bytes::from_static(b"y")));
        c.release((5, 0));
        assert_eq!(c.lookup_memory((5, 0)), None);
        match c.lookup((5, 0)) {
            Lookup::Ready(b) => assert_eq!(b, Bytes::from_static(b"y")),
            _ => panic!("a released block should come back from disk"),
        }
    }

    #[tokio::test]
    async fn waiters_get_the_block_or_an_error() {
        let c = BlockCache::new(16 * BLOCK);
        let claim = c.claim((2, 0)).unwrap();
        assert!(c.claim((2, 0)).is_none());
        let Lookup::Wait(rx) = c.lookup((2, 0)) else {
            panic!("expected a fetch in flight")
        };
        claim.fill(Ok(Bytes::from_static(b"abc")));
        assert_eq!(
            BlockCache::wait(rx).await.unwrap(),
            Bytes::from_static(b"abc")
        );
        let claim = c.claim((2, 1)).unwrap();
        let Lookup::Wait(rx) = c.lookup((2, 1)) else {
            panic!("expected a fetch in flight")
        };
        drop(claim);
        assert_eq!(BlockCache::wait(rx).await.unwrap_err(), Errno::EIO);
    }
}
