//! The WebDAV backend: the client's state and the `StorageBackend` operations, each
//! written in the module of its verb (`list`, `get`, `put`, `ops`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ctadata_core::{
    Capabilities, Checksum, ChecksumAlgorithm, Download, Entry, EntryStream, Error, GetOptions,
    PutOptions, PutOutcome, RemotePath, Result, ServerNotes, StorageBackend, Support, Upload,
};
use reqwest::{Method, Url};

use crate::config::{Auth, WebDavConfig};
use crate::learned::Learned;
use crate::list::HrefStyle;
use crate::names::{unprobed, Addressing};
use crate::send::http_client;
use crate::tls::client_config;
use crate::urls::Base;

/// A WebDAV server seen as a [`StorageBackend`].
#[derive(Debug)]
pub struct WebDav {
    pub(crate) cfg: WebDavConfig,
    pub(crate) base: Base,
    pub(crate) http: reqwest::Client,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// Learned: this server answers HEAD without a `Digest`.
    pub(crate) no_digest: AtomicBool,
    /// Learned: whether this server percent-encodes the paths of its hrefs.
    pub(crate) href_style: Arc<HrefStyle>,
    /// Learned on the first path holding a `?`: whether this server addresses such a name
    /// as written (see [`crate::names`]).
    pub(crate) question_mark: tokio::sync::OnceCell<Addressing>,
    /// Learned: what the server's answers carried (its name, ETags, checksums).
    pub(crate) learned: Arc<Learned>,
    /// Kept-alive PUT connections (door and pools), this backend's own.
    pub(crate) put_pool: crate::rawput::ConnPool,
    /// The tape REST API's endpoint, found by discovery once (issue 14, tape).
    pub(crate) tape_endpoint: tokio::sync::OnceCell<ctadata_core::tape::TapeEndpoint>,
}

/// A method of WebDAV's own (`PROPFIND`, `MKCOL`, `MOVE`).
pub(crate) fn ext_method(name: &'static str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap_or(Method::GET)
}

impl WebDav {
    /// Builds the client (TLS configuration is read and checked here).
    pub fn new(cfg: WebDavConfig) -> Result<Self> {
        let base = Base::new(&cfg.url)?;
        if base.is_insecure_remote() && matches!(cfg.auth, Auth::Bearer(_)) {
            return Err(Error::config(
                format!(
                    "refusing to send a bearer token over plain http to {}",
                    base.url()
                ),
                "use the https:// URL of the door",
            ));
        }
        let tls = client_config(&cfg.tls)?;
        let http = http_client(&tls, cfg.connect_timeout, cfg.read_timeout)?;
        Ok(Self {
            cfg,
            base,
            http,
            tls,
            no_digest: AtomicBool::new(false),
            href_style: Arc::default(),
            question_mark: unprobed(),
            learned: Arc::default(),
            put_pool: Default::default(),
            tape_endpoint: tokio::sync::OnceCell::new(),
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        self.base.url()
    }
}

#[async_trait]
impl StorageBackend for WebDav {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: self.cfg.backend_name,
            write: true,
            mkdir: true,
            delete: true,
            rename: true,
            ranged_reads: true,
            // What this client can use; whether this server gives them is in `server_notes`.
            etags: true,
            checksums: vec![ChecksumAlgorithm::Adler32, ChecksumAlgorithm::Md5],
            default_jobs: self.cfg.default_jobs,
            default_streams: 4,
        }
    }

    fn server_notes(&self) -> ServerNotes {
        let mut notes = self.learned.notes();
        // A PUT's verification found no `Digest` on this server's HEAD.
        if notes.checksums_on_head == Support::Unknown && self.no_digest.load(Ordering::Relaxed) {
            notes.checksums_on_head = Support::No;
        }
        notes
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.op_stat(path).await
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        use futures::StreamExt;
        let learned = self.learned.clone();
        let entries = self.op_list(dir).await?;
        Ok(entries
            .inspect(move |e| {
                if let Ok(e) = e {
                    learned.listed(e);
                }
            })
            .boxed())
    }

    async fn checksums(&self, path: &RemotePath) -> Result<Vec<Checksum>> {
        self.check_addressable(path).await?;
        let sums = self.head_digest(path).await?.1;
        self.learned.digest_head(!sums.is_empty());
        Ok(sums)
    }

    async fn get(&self, path: &RemotePath, opts: GetOptions) -> Result<Download> {
        self.op_get(path, opts).await
    }

    async fn put(&self, path: &RemotePath, body: Upload, opts: PutOptions) -> Result<PutOutcome> {
        self.op_put(path, body, opts).await
    }

    async fn mkdir(&self, path: &RemotePath, parents: bool) -> Result<()> {
        self.check_addressable(path).await?;
        self.op_mkdir(path, parents).await
    }

    async fn delete(&self, path: &RemotePath, recursive: bool) -> Result<()> {
        self.check_addressable(path).await?;
        self.op_delete(path, recursive).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath, overwrite: bool) -> Result<()> {
        self.check_addressable(from).await?;
        self.check_addressable(to).await?;
        self.op_rename(from, to, overwrite).await
    }

    fn tape(&self) -> Option<&dyn ctadata_core::TapeOps> {
        Some(self)
    }

    fn share_links(&self) -> Option<&dyn ctadata_core::ShareOps> {
        Some(self)
    }

    fn server_copy(&self) -> Option<&dyn ctadata_core::ServerCopyOps> {
        Some(self)
    }
}
