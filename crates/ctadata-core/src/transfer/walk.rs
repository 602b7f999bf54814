//! Walking a remote tree with several listings in flight.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};

use crate::backend::StorageBackend;
use crate::entry::Entry;
use crate::error::Result;
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
    walk_with(backend, root, concurrency, |_| true)
}

/// [`walk`], descending only into the directories `descend` accepts.
pub fn walk_with(
    backend: Arc<dyn StorageBackend>,
    root: RemotePath,
    concurrency: usize,
    descend: impl Fn(&Entry) -> bool + Send + Sync + 'static,
) -> BoxStream<'static, Result<Entry>> {
    // Each listing is a stream of (the directory listed, one of its entries): entries are
    // handed on as the server's answer is read, so a directory of a million files never
    // sits in memory; up to `concurrency` listings are read at once.
    type Listing = BoxStream<'static, (RemotePath, Result<Entry>)>;
    struct State {
        backend: Arc<dyn StorageBackend>,
        pending: VecDeque<RemotePath>,
        inflight: SelectAll<Listing>,
        concurrency: usize,
        descend: Arc<dyn Fn(&Entry) -> bool + Send + Sync>,
    }
    fn listing(b: Arc<dyn StorageBackend>, dir: RemotePath) -> Listing {
        let d = dir.clone();
        futures::stream::once(async move { b.list(&d).await })
            .try_flatten()
            .map(move |r| (dir.clone(), r))
            .boxed()
    }
    let state = State {
        descend: Arc::new(descend),
        backend,
        pending: VecDeque::from([root]),
        inflight: SelectAll::new(),
        concurrency: concurrency.max(1),
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            while st.inflight.len() < st.concurrency {
                let Some(dir) = st.pending.pop_front() else { break };
                st.inflight.push(listing(st.backend.clone(), dir));
            }
            match st.inflight.next().await {
                // The last listing in flight ended: go on with those waiting, if any.
                None if st.pending.is_empty() => return None,
                None => continue,
                Some((_, Err(e))) => return Some((Err(e), st)),
                Some((dir, Ok(e))) => {
                    if e.path.parent().as_ref() != Some(&dir) {
                        tracing::warn!(listed = %dir, entry = %e.path, "server listed an entry outside the directory; ignored");
                        continue;
                    }
                    if e.is_dir() && (st.descend)(&e) {
                        st.pending.push_back(e.path.clone());
                    }
                    return Some((Ok(e), st));
                }
            }
        }
    })
    .boxed()
}
