//! `ctadata`: one API over every way into the CTAO-CH data center storage.
//!
//! Resolve a profile with [`config::load`] (built-in profiles, config files, environment,
//! flags), then [`open`] it to get a [`StorageBackend`]. The same code then works whether
//! the profile speaks to dCache with a token, with a grid proxy, through the platform's
//! downloadservice, or to a local directory.
#![warn(missing_docs)]

use std::sync::Arc;

pub mod auth;
pub mod cert;
#[cfg(feature = "datafusion")]
pub mod datafusion;
pub mod porting;

pub use ctadata_core::config::{self, BackendKind, LoadOptions, ResolvedProfile};
pub use ctadata_core::{
    backend::unsupported, credentials, entry, retry, share, tape, tpc, transfer, AuthProblem,
    ByteRange, Capabilities, Checksum, Download, Entry, EntryKind, EntryStream, Error, GetOptions,
    PutOptions, PutOutcome, ReadSession, RemotePath, Result, RetryPolicy, Retrying, ServerCopyOps,
    ServerNotes, ShareOps, StorageBackend, Support, TapeOps, Upload,
};
pub use ctadata_local::LocalBackend;
pub use ctadata_object_store::{profile_url, split_url, CtaObjectStore, SCHEME};

/// Settings of the running program that are not part of a profile.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Skip TLS verification (never a default; the CLI warns each time).
    pub insecure: bool,
    /// How operations are tried again after temporary failures.
    pub retry: RetryPolicy,
}

impl OpenOptions {
    /// Skip TLS verification (or not).
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// Opens the backend a resolved profile names, behind the one retry layer
/// ([`Retrying`]) that every operation of every backend goes through.
pub fn open(profile: &ResolvedProfile, opts: &OpenOptions) -> Result<Arc<dyn StorageBackend>> {
    Ok(Retrying::wrap(
        open_bare(profile, opts)?,
        opts.retry.clone(),
    ))
}

/// The backend alone, without the retry layer (tests of a backend's own behaviour), in the
/// environment the profile was resolved in ([`ResolvedProfile::env`]): the snapshot given
/// to [`config::load`], not the process's.
pub fn open_bare(profile: &ResolvedProfile, opts: &OpenOptions) -> Result<Arc<dyn StorageBackend>> {
    let env = profile.env();
    match profile.backend() {
        BackendKind::Dcache => {
            let o = ctadata_dcache::DcacheOptions {
                insecure: opts.insecure,
            };
            Ok(Arc::new(ctadata_dcache::open(profile, env, &o)?))
        }
        BackendKind::Local => {
            let root = profile.profile.root.clone().ok_or_else(|| {
                Error::config(
                    format!("profile '{}' has no root", profile.name),
                    "set root",
                )
            })?;
            Ok(Arc::new(LocalBackend::new(root)?))
        }
        BackendKind::X509 => {
            let o = ctadata_x509::X509Options {
                insecure: opts.insecure,
            };
            Ok(Arc::new(ctadata_x509::open(profile, env, &o)?))
        }
        BackendKind::Downloadservice => {
            let o = ctadata_downloadservice::DownloadServiceOptions {
                insecure: opts.insecure,
            };
            ctadata_downloadservice::open(profile, env, &o)
        }
    }
}

/// Resolves a profile from the process environment and opens it: the one-liner for programs.
pub fn open_profile(name: Option<&str>) -> Result<Arc<dyn StorageBackend>> {
    let opts = LoadOptions::default().with_profile(name.map(str::to_string));
    let resolved = config::load(&opts, &config::EnvSnapshot::from_process())?;
    open(&resolved, &OpenOptions::default())
}

/// Opens a resolved profile as an `object_store::ObjectStore`, with the `cta://<profile>/`
/// URL to register it under (e.g. DataFusion's `register_object_store`).
pub fn object_store(
    profile: &ResolvedProfile,
    opts: &OpenOptions,
) -> Result<(url::Url, Arc<CtaObjectStore>)> {
    let url = ctadata_object_store::profile_url(&profile.name)?;
    let backend = open(profile, opts)?;
    Ok((
        url,
        Arc::new(CtaObjectStore::new(backend, profile.name.clone())),
    ))
}

/// Resolves a profile by name (`None`: the default one) from the process environment and
/// opens it as an `object_store::ObjectStore`, with the URL to register it under.
pub fn object_store_for_profile(name: Option<&str>) -> Result<(url::Url, Arc<CtaObjectStore>)> {
    let opts = LoadOptions::default().with_profile(name.map(str::to_string));
    let resolved = config::load(&opts, &config::EnvSnapshot::from_process())?;
    object_store(&resolved, &OpenOptions::default())
}

/// Formats a time for people: `2024-11-14 10:00:00` in UTC.
pub fn transfer_time(t: std::time::SystemTime) -> String {
    ctadata_core::entry::format_rfc3339(t)
        .replace('T', " ")
        .replace('Z', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid profile resolved in a snapshot whose `X509_USER_PROXY` the process lacks.
    fn grid_in_snapshot() -> ResolvedProfile {
        let env = config::EnvSnapshot::from_pairs([
            ("HOME", "/nonexistent-home"),
            ("X509_USER_PROXY", "/nonexistent/proxy-from-the-snapshot"),
        ]);
        config::load_from_map(Some("grid"), [("url", "https://door.invalid:2880")], &env).unwrap()
    }

    #[test]
    fn open_reads_the_snapshot_the_profile_was_loaded_with() {
        let r = grid_in_snapshot();
        let e = open(&r, &OpenOptions::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("/nonexistent/proxy-from-the-snapshot"),
            "{e}"
        );
    }

    #[test]
    fn cert_info_finds_the_credential_in_the_snapshot() {
        let r = grid_in_snapshot();
        assert_eq!(
            cert::default_info_file(&r).unwrap(),
            std::path::PathBuf::from("/nonexistent/proxy-from-the-snapshot")
        );
    }
}
