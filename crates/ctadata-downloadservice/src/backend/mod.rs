//! The downloadservice as a [`StorageBackend`]: the backend's state, and the trait, each
//! verb handed to its own module.
//!
//! Reads go through `list/` (listings and stat) and `fetch/` (whole files, streamed; the
//! service answers `200` with an HTML page for a missing file, so the byte count is checked
//! against the listed size). Byte ranges go through the `webdav/` passthrough in bounded
//! pieces, because the service buffers each `webdav` answer whole. Writes go to `upload/`
//! (streamed from disk) and `webdav` `MKCOL`, only inside the user's folder
//! `<lst|cta>/users/<user>/`.
//!
//! Paths: a path whose first segment is a top-level folder of the storage (`lst`, `cta`,
//! ...) is taken from the storage root; any other path is taken inside the user's folder,
//! as the service itself does for uploads (`results/x.h5` is
//! `lst/users/<user>/results/x.h5`), for reads and writes alike.
//!
//! Layout, one idea a file: `core` (the session, the endpoints, the passthrough), `errors`
//! (answers into errors), `paths` (the user folder, where a path is), `list` (listings and
//! stat), `read` (`fetch/` and ranged pieces), `write` (`upload/` and `MKCOL`).

use std::sync::Arc;

use async_trait::async_trait;
use ctadata_core::{
    Capabilities, Download, Entry, EntryStream, Error, GetOptions, PutOptions, PutOutcome,
    RemotePath, Result, StorageBackend, Upload,
};
use ctadata_webdav::urls::Base;
use reqwest::Url;

use crate::client::Session;

mod core;
mod errors;
mod list;
mod paths;
mod read;
mod write;

use self::core::Core;
use self::errors::unsupported;
pub use self::paths::user_folder_name;
pub use self::read::RANGE_PIECE;

/// The downloadservice backend.
#[derive(Debug)]
pub struct DownloadService {
    c: Core,
    env_user: Option<String>,
    home: tokio::sync::OnceCell<RemotePath>,
    top: tokio::sync::OnceCell<Vec<String>>,
    jobs: usize,
}

impl DownloadService {
    /// A backend over a session with the service; `env_user` is `JUPYTERHUB_USER`.
    pub fn new(s: Session, env_user: Option<String>, jobs: usize) -> Result<Self> {
        let webdav = Base::new(
            s.base
                .join("webdav/")
                .map_err(|e| {
                    Error::config(format!("bad service URL: {e}"), "check the profile's url")
                })?
                .as_str(),
        )?;
        Ok(Self {
            c: Core {
                s: Arc::new(s),
                webdav,
            },
            env_user,
            home: tokio::sync::OnceCell::new(),
            top: tokio::sync::OnceCell::new(),
            jobs: jobs.max(1),
        })
    }

    /// The service URL.
    pub fn url(&self) -> &Url {
        &self.c.s.base
    }
}

#[async_trait]
impl StorageBackend for DownloadService {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: "downloadservice",
            write: true,
            mkdir: true,
            delete: false,
            rename: false,
            ranged_reads: true,
            etags: false,
            checksums: Vec::new(),
            default_jobs: self.jobs,
            default_streams: 4,
        }
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.op_stat(path).await
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        self.op_list(dir).await
    }

    async fn get(&self, path: &RemotePath, opts: GetOptions) -> Result<Download> {
        self.op_get(path, opts).await
    }

    async fn put(&self, path: &RemotePath, body: Upload, opts: PutOptions) -> Result<PutOutcome> {
        self.op_put(path, body, opts).await
    }

    async fn mkdir(&self, path: &RemotePath, parents: bool) -> Result<()> {
        self.op_mkdir(path, parents).await
    }

    async fn delete(&self, path: &RemotePath, recursive: bool) -> Result<()> {
        let how = if recursive {
            format!("rm -r {}", path.as_str())
        } else {
            format!("rm {}", path.as_str())
        };
        Err(unsupported("delete", &how))
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath, _overwrite: bool) -> Result<()> {
        Err(unsupported(
            "rename",
            &format!("mv {} {}", from.as_str(), to.as_str()),
        ))
    }
}
