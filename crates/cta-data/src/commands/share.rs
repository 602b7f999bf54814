//! `share`: a link that works without other credentials (a dCache macaroon).

use std::sync::Arc;

use ctadata::{unsupported, RemotePath, ResolvedProfile, Result, StorageBackend};

use crate::cli::Global;

/// `cta-data share PATH`.
pub(super) async fn share(
    _g: &Global,
    _r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    path: &RemotePath,
) -> Result<()> {
    let sharing = backend
        .share_links()
        .ok_or_else(|| unsupported("share", backend.capabilities().backend))?;
    let link = sharing.share(path).await?;
    super::write_stdout(format!("{link}\n").as_bytes())
}
