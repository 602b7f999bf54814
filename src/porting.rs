//! The old Python client's functions under their old names, for porting notebooks.
//!
//! | Python (`import ctadata`) | Rust (`ctadata::porting`) |
//! |---|---|
//! | `ctadata.list_dir(path)` | [`list_dir`]`(path)`: the children (the directory itself is left out); a file gives its own entry |
//! | `ctadata.fetch_and_save_file(path, save_to_fn=None)` | [`fetch_and_save_file`]`(path, None)`: the byte count |
//! | `ctadata.fetch_and_save_file_or_dir(path, recursive=True)` | [`fetch_and_save_file_or_dir`]`(path, true)`: saved under `./<path>` as before |
//! | `ctadata.upload_file(local_fn, path)` | [`upload_file`]`(local, path)`: where it landed ([`PutOutcome::path`]) |
//! | `ctadata.upload_dir(local_dir, path)` | [`upload_dir`]`(local_dir, path)` |
//! | `ctadata.upload_personal_certificate(file, key)` (older: `upload_certificate`) | [`upload_personal_certificate`]`(file, key, None)` |
//! | `ctadata.upload_shared_certificate(file)` | [`upload_shared_certificate`]`(file)` |
//! | `CTADS_URL`, `CTACS_URL`, `JUPYTERHUB_API_TOKEN` | read as before (the `platform` profile) |
//!
//! The free functions use the `platform` profile; [`Client`] takes another profile name or
//! any [`StorageBackend`]. Failures are errors (the old client printed and went on).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ctadata_core::config::{EnvSnapshot, LoadOptions, ResolvedProfile};
use ctadata_core::transfer::{self, FileOutcome, Progress, Summary, TransferOptions};
use ctadata_core::{Entry, Error, PutOptions, PutOutcome, RemotePath, Result, StorageBackend};

/// The certificateservice client and the local checks of certificate files.
pub use ctadata_downloadservice::certificateservice;
pub use ctadata_downloadservice::certificateservice::Stored;

/// The profile the old client's functions use.
pub const DEFAULT_PROFILE: &str = "platform";

/// A storage to call the old functions on: a profile, or any backend.
#[derive(Clone)]
pub struct Client {
    backend: Arc<dyn StorageBackend>,
    profile: Option<ResolvedProfile>,
    progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("backend", &self.backend)
            .field("profile", &self.profile)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Resolves `profile` from the process environment: the old functions' entry point.
fn load(profile: &str) -> Result<ResolvedProfile> {
    load_in(profile, &EnvSnapshot::from_process())
}

fn load_in(profile: &str, env: &EnvSnapshot) -> Result<ResolvedProfile> {
    let opts = LoadOptions::default().with_profile(Some(profile.to_string()));
    ctadata_core::config::load(&opts, env)
}

impl Client {
    /// The named profile (default `platform`), resolved from the config files and variables.
    pub fn open(profile: Option<&str>) -> Result<Self> {
        Self::from_profile(load(profile.unwrap_or(DEFAULT_PROFILE))?)
    }

    /// A profile resolved by the caller (e.g. with a `--config` file), opened.
    pub fn from_profile(resolved: ResolvedProfile) -> Result<Self> {
        let backend = crate::open(&resolved, &crate::OpenOptions::default())?;
        Ok(Self {
            backend,
            profile: Some(resolved),
            progress: None,
        })
    }

    /// The profile this client was opened on (`None` for [`Client::with_backend`]).
    pub fn profile(&self) -> Option<&ResolvedProfile> {
        self.profile.as_ref()
    }

    /// Any backend (certificates then go through the `platform` profile).
    pub fn with_backend(backend: Arc<dyn StorageBackend>) -> Self {
        Self {
            backend,
            profile: None,
            progress: None,
        }
    }

    /// The same client, telling `progress` how its transfers go.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The options of this client's transfers: the defaults, as many at once as `cta-data get`
    /// takes on this profile (its `jobs`, else the backend's default), its `streams` and
    /// `stream_cutoff`, and its progress sink.
    fn transfer_options(&self) -> TransferOptions {
        let mut opts = TransferOptions::default();
        opts.jobs = self
            .profile
            .as_ref()
            .and_then(|p| p.profile.jobs)
            .map(|j| j as usize)
            .unwrap_or_else(|| self.backend.capabilities().default_jobs)
            .max(1);
        if let Some(p) = self.profile.as_ref().map(|p| &p.profile) {
            opts.streams = p.streams.map(|n| n.clamp(1, 64) as usize);
            if let Some(cut) = p.stream_cutoff {
                opts.stream_cutoff = cut;
            }
        }
        if let Some(p) = &self.progress {
            opts.progress = p.clone();
        }
        opts
    }

    /// The backend behind this client.
    pub fn backend(&self) -> &Arc<dyn StorageBackend> {
        &self.backend
    }

    /// `list_dir(path)`: the entries of a directory (or the entry of a file).
    pub async fn list_dir(&self, path: &str) -> Result<Vec<Entry>> {
        let p = RemotePath::parse(path)?;
        match self.backend.list_all(&p).await {
            Err(Error::Conflict { .. }) => Ok(vec![self.backend.stat(&p).await?]),
            other => other,
        }
    }

    /// `fetch_and_save_file(path, save_to_fn)`: the file saved to `save_to` (default: its
    /// name in the current directory), checked and replaced only when complete; the size.
    pub async fn fetch_and_save_file(&self, path: &str, save_to: Option<&Path>) -> Result<u64> {
        let p = RemotePath::parse(path)?;
        let entry = self.backend.stat(&p).await?;
        if entry.is_dir() {
            return Err(Error::usage(
                format!("{p} is a directory"),
                format!("use fetch_and_save_file_or_dir(\"{path}\", true)"),
            ));
        }
        let target = save_to
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(p.name()));
        let opts = self.transfer_options();
        match transfer::download_file(self.backend.as_ref(), &p, Some(&entry), &target, &opts)
            .await?
        {
            FileOutcome::Done(d) => Ok(d.size),
            _ => Ok(entry.size.unwrap_or(0)),
        }
    }

    /// `fetch_and_save_file_or_dir(path, recursive)`: a file as [`Client::fetch_and_save_file`];
    /// with `recursive`, a directory saved under `./<path>` (the old client's layout).
    pub async fn fetch_and_save_file_or_dir(&self, path: &str, recursive: bool) -> Result<Summary> {
        let p = RemotePath::parse(path)?;
        let entry = self.backend.stat(&p).await?;
        if !entry.is_dir() || !recursive {
            let started = std::time::Instant::now();
            let size = self.fetch_and_save_file(path, None).await?;
            return Ok(Summary {
                transferred: 1,
                bytes: size,
                seconds: started.elapsed().as_secs_f64(),
                ..Summary::default()
            });
        }
        let local = PathBuf::from(p.as_str());
        transfer::download_tree(self.backend.clone(), &p, &local, &self.transfer_options())
            .await?
            .into_result()
    }

    /// `upload_file(local_fn, path)`: a path ending in `/` receives the local name; an
    /// existing file is replaced, as before. Returns where the file landed.
    pub async fn upload_file(&self, local: &Path, path: &str) -> Result<PutOutcome> {
        let mut remote = RemotePath::parse(path)?;
        if path.is_empty() || path.ends_with('/') {
            if let Some(name) = local.file_name().and_then(|n| n.to_str()) {
                remote = remote.join(name)?;
            }
        }
        let put = PutOptions::default()
            .with_overwrite(true)
            .with_create_parents(true);
        match transfer::upload_file(
            self.backend.as_ref(),
            local,
            &remote,
            put,
            &self.transfer_options(),
        )
        .await?
        {
            FileOutcome::Done(d) => Ok(PutOutcome {
                path: RemotePath::parse(&d.remote)?,
                size: d.size,
                checksums: Vec::new(),
            }),
            other => Err(Error::protocol(
                remote.to_string(),
                None,
                format!("the upload did not happen: {other:?}"),
            )),
        }
    }

    /// `upload_dir(local_dir, path)`: the tree below `local_dir` mirrored onto `path`,
    /// existing files replaced as before.
    pub async fn upload_dir(&self, local_dir: &Path, path: &str) -> Result<Summary> {
        let remote = RemotePath::parse(path)?;
        transfer::upload_tree(
            self.backend.clone(),
            local_dir,
            &remote,
            &self.transfer_options(),
        )
        .await?
        .into_result()
    }

    fn certificate_profile(&self) -> Result<ResolvedProfile> {
        match &self.profile {
            Some(p) if p.profile.certificateservice_url.is_some() => Ok(p.clone()),
            // The platform profile, in the environment this client's profile came from.
            Some(p) => load_in(DEFAULT_PROFILE, p.env()),
            None => load(DEFAULT_PROFILE),
        }
    }

    /// `upload_personal_certificate(file, key)`: checks the proxy file, then delegates it.
    pub async fn upload_personal_certificate(
        &self,
        file: &Path,
        key: &str,
        user: Option<&str>,
    ) -> Result<Stored> {
        personal_certificate(self.certificate_profile()?, file, key, user).await
    }

    /// `upload_shared_certificate(file)`: checks the file, then stores it (admins).
    pub async fn upload_shared_certificate(&self, file: &Path) -> Result<Stored> {
        shared_certificate(self.certificate_profile()?, file).await
    }
}

async fn personal_certificate(
    profile: ResolvedProfile,
    file: &Path,
    key: &str,
    user: Option<&str>,
) -> Result<Stored> {
    let env = profile.env();
    certificateservice::check_key(key, &certificateservice::allowed_keys(env))?;
    let checked = certificateservice::check_certificate_file(file, SystemTime::now())?;
    certificateservice::CertificateService::open(&profile, env, false)?
        .upload_personal(&checked, key, user)
        .await
}

async fn shared_certificate(profile: ResolvedProfile, file: &Path) -> Result<Stored> {
    let checked = certificateservice::check_certificate_file(file, SystemTime::now())?;
    certificateservice::CertificateService::open(&profile, profile.env(), false)?
        .upload_shared(&checked)
        .await
}

/// `ctadata.list_dir(path)` on the `platform` profile.
pub async fn list_dir(path: &str) -> Result<Vec<Entry>> {
    Client::open(None)?.list_dir(path).await
}

/// `ctadata.fetch_and_save_file(path, save_to_fn)` on the `platform` profile.
pub async fn fetch_and_save_file(path: &str, save_to: Option<&Path>) -> Result<u64> {
    Client::open(None)?.fetch_and_save_file(path, save_to).await
}

/// `ctadata.fetch_and_save_file_or_dir(path, recursive)` on the `platform` profile.
pub async fn fetch_and_save_file_or_dir(path: &str, recursive: bool) -> Result<Summary> {
    Client::open(None)?
        .fetch_and_save_file_or_dir(path, recursive)
        .await
}

/// `ctadata.upload_file(local_fn, path)` on the `platform` profile.
pub async fn upload_file(local: &Path, path: &str) -> Result<PutOutcome> {
    Client::open(None)?.upload_file(local, path).await
}

/// `ctadata.upload_dir(local_dir, path)` on the `platform` profile.
pub async fn upload_dir(local_dir: &Path, path: &str) -> Result<Summary> {
    Client::open(None)?.upload_dir(local_dir, path).await
}

/// `ctadata.upload_personal_certificate(file, key)` through the `platform` profile.
pub async fn upload_personal_certificate(
    file: &Path,
    key: &str,
    user: Option<&str>,
) -> Result<Stored> {
    personal_certificate(load(DEFAULT_PROFILE)?, file, key, user).await
}

/// `ctadata.upload_certificate(file, key)`: the older name of [`upload_personal_certificate`].
pub async fn upload_certificate(file: &Path, key: &str) -> Result<Stored> {
    upload_personal_certificate(file, key, None).await
}

/// `ctadata.upload_shared_certificate(file)` through the `platform` profile.
pub async fn upload_shared_certificate(file: &Path) -> Result<Stored> {
    shared_certificate(load(DEFAULT_PROFILE)?, file).await
}
