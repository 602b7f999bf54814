//! Walking a remote tree with several listings in flight.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{FutureExt, StreamExt};

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
    type Listing = BoxFuture<'static, (RemotePath, Result<Vec<Entry>>)>;
    struct State {
        backend: Arc<dyn StorageBackend>,
        pending: VecDeque<RemotePath>,
        inflight: FuturesUnordered<Listing>,
        ready: VecDeque<Result<Entry>>,
        concurrency: usize,
        descend: Arc<dyn Fn(&Entry) -> bool + Send + Sync>,
    }
    let state = State {
        descend: Arc::new(descend),
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
                        if e.is_dir() && (st.descend)(&e) {
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
