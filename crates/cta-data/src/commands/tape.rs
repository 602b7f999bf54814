//! `stage` (with `status`, `cancel`), `release` and `archiveinfo`: the WLCG Tape REST API.

use std::sync::Arc;

use ctadata::{unsupported, ResolvedProfile, Result, StorageBackend};

use super::remote;
use crate::cli::Global;

/// `cta-data stage PATH...`.
pub(super) async fn stage(
    _g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    paths: &[String],
) -> Result<()> {
    let tape = backend
        .tape()
        .ok_or_else(|| unsupported("stage", backend.capabilities().backend))?;
    let paths = paths
        .iter()
        .map(|p| remote(r, p))
        .collect::<Result<Vec<_>>>()?;
    let id = tape.stage(&paths, None).await?;
    super::write_stdout(format!("{id}\n").as_bytes())
}
