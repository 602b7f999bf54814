//! The `downloadservice` backend (the CTA JupyterHub's proxy in front of dCache,
//! authenticated by the hub token) and the certificateservice client.
//!
//! The hub token comes from, in order: the profile's `token_file` (or `--token-file`),
//! `CTADATA_TOKEN`, `JUPYTERHUB_API_TOKEN`. It is sent only as `Authorization: Bearer`,
//! never in a URL; API calls say `Content-Type: application/json` so that a refused token
//! is answered `401` instead of a redirect to the login page, and a redirect or an HTML page
//! where data was expected is reported as an authentication failure, never kept as data.
#![warn(missing_docs)]

use std::sync::Arc;

use ctadata_core::config::{EnvSnapshot, ResolvedProfile};
use ctadata_core::{Error, Result, StorageBackend};

mod backend;
pub mod certificateservice;
mod client;
pub mod listing;

pub use backend::{user_folder_name, DownloadService, RANGE_PIECE};
pub use certificateservice::CertificateService;

/// Options the program passes beyond the profile.
#[derive(Debug, Clone, Default)]
pub struct DownloadServiceOptions {
    /// `--insecure`.
    pub insecure: bool,
}

/// Opens the downloadservice backend of a resolved profile (as a concrete type).
pub fn open_service(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    opts: &DownloadServiceOptions,
) -> Result<DownloadService> {
    let url = profile.profile.url.clone().ok_or_else(|| {
        Error::config(
            format!("profile '{}' has no url", profile.name),
            "set url to the downloadservice, e.g. https://platform.cta.cscs.ch/services/downloadservice/ (or export CTADS_URL)",
        )
    })?;
    let session =
        client::Session::new(profile, env, opts.insecure, &url, "url", "downloadservice")?;
    DownloadService::new(
        session,
        env.get("JUPYTERHUB_USER").map(str::to_string),
        profile.profile.jobs.map(|j| j as usize).unwrap_or(4),
    )
}

/// Opens the downloadservice backend of a resolved profile.
pub fn open(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    opts: &DownloadServiceOptions,
) -> Result<Arc<dyn StorageBackend>> {
    Ok(Arc::new(open_service(profile, env, opts)?))
}
