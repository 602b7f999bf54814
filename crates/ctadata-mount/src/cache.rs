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

/// A byte-bounded LRU cache of file blocks, with the fetches in flight.
pub struct BlockCache {
    max_bytes: u64,
    state: Mutex<State>,
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
        })
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
        match st.inflight.get(&key) {
            Some(rx) => Lookup::Wait(rx.clone()),
            None => Lookup::Missing,
        }
    }

    /// Claims a block that is neither cached nor being fetched; `None` when it is.
    pub fn claim(self: &Arc<Self>, key: Key) -> Option<Claim> {
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
        while st.bytes > self.max_bytes {
            let Some((&t, &k)) = st.order.iter().next() else {
                break;
            };
            st.order.remove(&t);
            if let Some((d, _)) = st.blocks.remove(&k) {
                st.bytes = st.bytes.saturating_sub(d.len() as u64);
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
