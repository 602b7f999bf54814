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
    let req = ctadata::share::ShareRequest::new(
        std::time::Duration::from_secs(12 * 3600),
        vec!["DOWNLOAD".into(), "LIST".into()],
    );
    let link = sharing.share(path, &req).await?;
    super::write_stdout(format!("{}\n", link.link.expose()).as_bytes())
}
