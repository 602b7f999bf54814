//! The `downloadservice` backend (the CTA JupyterHub's proxy in front of dCache,
//! authenticated by the hub token) and the certificateservice client.
#![warn(missing_docs)]

use std::sync::Arc;

use ctadata_core::config::{EnvSnapshot, ResolvedProfile};
use ctadata_core::{Error, Result, StorageBackend};

/// Options the program passes beyond the profile.
#[derive(Debug, Clone, Default)]
pub struct DownloadServiceOptions {
    /// `--insecure`.
    pub insecure: bool,
}

/// Opens the downloadservice backend of a resolved profile.
pub fn open(
    _profile: &ResolvedProfile,
    _env: &EnvSnapshot,
    _opts: &DownloadServiceOptions,
) -> Result<Arc<dyn StorageBackend>> {
    Err(Error::Unsupported {
        operation: "open".into(),
        backend: "downloadservice".into(),
        hint: "this build of cta-data does not include the downloadservice backend yet; use the cta profile".into(),
    })
}
