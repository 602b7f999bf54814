//! `cp SRC DST`: copies done by the servers (WebDAV `COPY` on one door, HTTP third-party
//! copy between doors), streaming through the client only when the servers refuse.

use std::sync::Arc;

use ctadata::{unsupported, ResolvedProfile, Result, StorageBackend};

use super::remote;
use crate::cli::Global;

/// `cta-data cp SRC DST`.
pub(super) async fn cp(
    _g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    from: &str,
    to: &str,
) -> Result<()> {
    let copier = backend
        .server_copy()
        .ok_or_else(|| unsupported("cp", backend.capabilities().backend))?;
    copier
        .copy_within(&remote(r, from)?, &remote(r, to)?, false)
        .await
}
