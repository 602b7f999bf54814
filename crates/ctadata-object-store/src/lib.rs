//! `object_store::ObjectStore` over any cta-data backend, so Arrow, Parquet and DataFusion
//! read (and write) CTA storage directly, with every backend's auth: token refresh, grid
//! proxies, the platform's hub token.
//!
//! - Listings walk `Depth: 1` directories (several in flight) instead of `Depth: infinity`.
//! - Reads are ranged GETs; `get_ranges` coalesces nearby ranges (object_store's rule).
//! - `PutMode::Create` and `CopyMode::Create` never replace an existing object: the adapter
//!   checks that the target is absent before it uploads (to a temporary name beside it), and
//!   the backend checks again before it MOVEs the upload there with `Overwrite: F`. That is
//!   atomic only where the server itself refuses an existing target: dCache does; XRootD
//!   5.5.3 ignores `Overwrite: F`, and a server not known to honour it is not trusted to. On
//!   such a server a writer racing between the check and the MOVE can still be replaced:
//!   [`CtaObjectStore::create_is_atomic`] tells which, and a refused create says so.
//!   `PutMode::Update` (compare-and-swap on an ETag) is `NotImplemented`: WebDAV servers
//!   here cannot promise it.
//! - Multipart uploads spool their parts to local temporary files (bounded memory) and
//!   send one verified upload at `complete`.
#![warn(missing_docs)]

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use ctadata_core::backend::StreamFactory;
use ctadata_core::{
    ByteRange, Entry, Error as CtaError, GetOptions as CtaGet, PutOptions as CtaPut, RemotePath,
    StorageBackend, Support, Upload,
};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attributes, CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RenameOptions, RenameTargetMode, Result, UploadPart,
};

/// The object_store crate this adapter implements, for callers that do not depend on it.
pub use object_store;

const STORE: &str = "cta-data";

/// An [`ObjectStore`] over a cta-data [`StorageBackend`].
#[derive(Clone)]
pub struct CtaObjectStore {
    backend: Arc<dyn StorageBackend>,
    name: String,
    jobs: usize,
}

impl fmt::Debug for CtaObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CtaObjectStore")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .finish()
    }
}

impl fmt::Display for CtaObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CtaObjectStore({})", self.name)
    }
}

/// The URL scheme of cta-data stores: `cta://<profile>/<path>`.
pub const SCHEME: &str = "cta";

/// The URL under which a profile's store is registered in DataFusion: `cta://<profile>/`.
///
/// Fails (a usage error) for a profile name that cannot be a URL host.
pub fn profile_url(profile: &str) -> std::result::Result<url::Url, CtaError> {
    let bad = || {
        CtaError::usage(
            format!("profile name '{profile}' cannot be used in a {SCHEME}:// URL"),
            "use a profile name of letters, digits, '-', '_' and '.'",
        )
    };
    if profile.is_empty()
        || !profile
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad());
    }
    let url = url::Url::parse(&format!("{SCHEME}://{profile}/")).map_err(|_| bad())?;
    if url.host_str() != Some(profile) {
        return Err(bad());
    }
    Ok(url)
}

/// Splits a `cta://<profile>/<path>` URL into the profile's name and the path in its store.
///
/// `None` for another scheme or a URL without a profile.
pub fn split_url(url: &url::Url) -> Option<(String, Path)> {
    if url.scheme() != SCHEME {
        return None;
    }
    let profile = url.host_str().filter(|h| !h.is_empty())?.to_string();
    let path = Path::from_url_path(url.path()).ok()?;
    Some((profile, path))
}

impl CtaObjectStore {
    /// A store over `backend`; `name` appears in messages (e.g. the profile's name).
    pub fn new(backend: Arc<dyn StorageBackend>, name: impl Into<String>) -> Self {
        let jobs = backend.capabilities().default_jobs.max(2);
        Self {
            backend,
            name: name.into(),
            jobs,
        }
    }

    /// The backend underneath.
    pub fn backend(&self) -> &Arc<dyn StorageBackend> {
        &self.backend
    }

    /// Whether `PutMode::Create` and `CopyMode::Create` are atomic on this server, as far as
    /// its answers so far have shown: `true` only once the server is known to refuse an
    /// existing target itself (dCache). Otherwise the adapter checks that the target is
    /// absent first, so an existing object is never replaced, but a writer racing in
    /// between the check and the write can be. (`false` before the first request: nothing
    /// is known yet.)
    pub fn create_is_atomic(&self) -> bool {
        self.backend.server_notes().atomic_create == Support::Yes
    }

    /// Why a create-if-absent was refused, with what the server does not promise.
    fn exists_note(&self) -> &'static str {
        match self.backend.server_notes().atomic_create {
            Support::Yes => "the object exists",
            Support::No => {
                "the object exists (checked by the client: create-if-absent is not atomic on this \
                 server, which ignores 'Overwrite: F'; a writer racing with this one could still \
                 have replaced it)"
            }
            _ => {
                "the object exists (checked by the client: create-if-absent is not atomic on this \
                 server, which is not known to honour 'Overwrite: F'; a writer racing with this \
                 one could still have replaced it)"
            }
        }
    }
}

/// object_store's path as a cta-data path (object_store has already refused `..`).
fn remote(p: &Path) -> Result<RemotePath> {
    RemotePath::parse(p.as_ref()).map_err(|e| err(p.as_ref(), e))
}

fn os_path(p: &RemotePath) -> Path {
    Path::parse(p.as_str()).unwrap_or_else(|_| Path::from_iter(p.segments()))
}

fn time(t: Option<SystemTime>) -> DateTime<Utc> {
    t.map(DateTime::<Utc>::from)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn meta(e: &Entry) -> ObjectMeta {
    ObjectMeta {
        location: os_path(&e.path),
        last_modified: time(e.mtime),
        size: e.size.unwrap_or(0),
        e_tag: e.etag.clone(),
        version: None,
    }
}

/// A cta-data error as object_store's, with the message kept.
fn err(path: &str, e: CtaError) -> object_store::Error {
    use object_store::Error as E;
    let path = path.to_string();
    match e {
        CtaError::NotFound { .. } => E::NotFound {
            path,
            source: Box::new(e),
        },
        CtaError::Conflict { .. } => E::AlreadyExists {
            path,
            source: Box::new(e),
        },
        CtaError::PermissionDenied { .. } => E::PermissionDenied {
            path,
            source: Box::new(e),
        },
        CtaError::Auth { .. } => E::Unauthenticated {
            path,
            source: Box::new(e),
        },
        CtaError::Unsupported { .. } => E::NotSupported {
            source: Box::new(e),
        },
        other => E::Generic {
            store: STORE,
            source: Box::new(other),
        },
    }
}

fn precondition(path: &Path, msg: String) -> object_store::Error {
    object_store::Error::Precondition {
        path: path.to_string(),
        source: msg.into(),
    }
}

impl CtaObjectStore {
    async fn head_entry(&self, location: &Path) -> Result<Entry> {
        let p = remote(location)?;
        let e = self
            .backend
            .stat(&p)
            .await
            .map_err(|e| err(location.as_ref(), e))?;
        if e.is_dir() {
            return Err(object_store::Error::NotFound {
                path: location.to_string(),
                source: "it is a directory".into(),
            });
        }
        Ok(e)
    }

    /// Uploads `body` to `to`; with `create_only`, never over an existing object (atomically
    /// only where the server refuses an existing target itself: see the crate docs).
    async fn put_body(
        &self,
        location: &Path,
        body: Upload,
        create_only: bool,
    ) -> Result<PutResult> {
        let to = remote(location)?;
        if !create_only {
            let opts = CtaPut::default()
                .with_overwrite(true)
                .with_create_parents(true);
            self.backend
                .put(&to, body, opts)
                .await
                .map_err(|e| err(location.as_ref(), e))?;
        } else {
            // Checked before anything is sent: the only guard on a server that ignores
            // `Overwrite: F` (with the backend's own check before its MOVE), and no upload
            // wasted on one that honours it.
            match self.backend.stat(&to).await {
                Ok(_) => return Err(self.already_exists(location, None)),
                Err(CtaError::NotFound { .. }) => {}
                Err(e) => return Err(err(location.as_ref(), e)),
            }
            // Upload beside the target, then MOVE with Overwrite: F.
            let parent = to.parent().unwrap_or_default();
            let tmp = parent
                .join(&format!(".{}.cta-os-{:016x}", to.name(), rand_u64()))
                .map_err(|e| err(location.as_ref(), e))?;
            let opts = CtaPut::default().with_create_parents(true);
            self.backend
                .put(&tmp, body, opts)
                .await
                .map_err(|e| err(location.as_ref(), e))?;
            if let Err(e) = self.backend.rename(&tmp, &to, false).await {
                let _ = self.backend.delete(&tmp, false).await;
                return Err(match e {
                    CtaError::Conflict { .. } => self.already_exists(location, Some(e)),
                    e => err(location.as_ref(), e),
                });
            }
        }
        let e = self.backend.stat(&to).await.ok();
        Ok(PutResult {
            e_tag: e.and_then(|e| e.etag),
            version: None,
        })
    }
}

impl CtaObjectStore {
    /// A refused create-if-absent, saying whether the server or only the client refused it.
    fn already_exists(&self, location: &Path, cause: Option<CtaError>) -> object_store::Error {
        let note = self.exists_note();
        object_store::Error::AlreadyExists {
            path: location.to_string(),
            source: match cause {
                Some(e) => format!("{note}: {e}").into(),
                None => note.into(),
            },
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn payload_upload(payload: PutPayload) -> Upload {
    let len = payload.content_length() as u64;
    let chunks: Vec<Bytes> = payload.into_iter().collect();
    let factory: StreamFactory = Arc::new(move || {
        let chunks = chunks.clone();
        async move { Ok(futures::stream::iter(chunks.into_iter().map(Ok)).boxed()) }.boxed()
    });
    Upload::from_factory(len, factory)
}

#[async_trait]
impl ObjectStore for CtaObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        match opts.mode {
            PutMode::Overwrite => {
                self.put_body(location, payload_upload(payload), false)
                    .await
            }
            PutMode::Create => self.put_body(location, payload_upload(payload), true).await,
            PutMode::Update(_) => Err(object_store::Error::NotImplemented {
                operation: "put_opts with PutMode::Update (a conditional overwrite on an ETag)"
                    .into(),
                implementer: format!("{self}: WebDAV servers here cannot promise it"),
            }),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let spool = tempfile::Builder::new()
            .prefix("cta-data-multipart-")
            .tempdir()
            .map_err(|e| object_store::Error::Generic {
                store: STORE,
                source: Box::new(e),
            })?;
        Ok(Box::new(Multipart {
            store: self.clone(),
            location: location.clone(),
            spool: Arc::new(spool),
            parts: Vec::new(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let entry = self.head_entry(location).await?;
        let m = meta(&entry);
        // Conditions, checked against the server's current metadata.
        if let Some(tag) = &options.if_match {
            if tag != "*" && m.e_tag.as_deref() != Some(tag.as_str()) {
                return Err(precondition(
                    location,
                    format!("ETag {:?} does not match {tag}", m.e_tag),
                ));
            }
        }
        if let Some(tag) = &options.if_none_match {
            if tag == "*" || m.e_tag.as_deref() == Some(tag.as_str()) {
                return Err(object_store::Error::NotModified {
                    path: location.to_string(),
                    source: format!("ETag matches {tag}").into(),
                });
            }
        }
        if let Some(t) = options.if_unmodified_since {
            if m.last_modified > t {
                return Err(precondition(
                    location,
                    format!("modified at {} after {t}", m.last_modified),
                ));
            }
        }
        if let Some(t) = options.if_modified_since {
            if m.last_modified <= t {
                return Err(object_store::Error::NotModified {
                    path: location.to_string(),
                    source: format!("not modified since {t}").into(),
                });
            }
        }
        if options.version.is_some() {
            return Err(object_store::Error::NotImplemented {
                operation: "get_opts with a version".into(),
                implementer: self.to_string(),
            });
        }
        let range = match &options.range {
            Some(r) => r
                .as_range(m.size)
                .map_err(|e| object_store::Error::Generic {
                    store: STORE,
                    source: Box::new(e),
                })?,
            None => 0..m.size,
        };
        if options.head {
            return Ok(GetResult {
                payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
                meta: m,
                range,
                attributes: Attributes::default(),
            });
        }
        let stream: BoxStream<'static, Result<Bytes>> = if range.is_empty() {
            futures::stream::empty().boxed()
        } else {
            let whole = range.start == 0 && range.end == m.size;
            let mut get = CtaGet::default().with_known(entry.clone());
            if !whole {
                get = get.with_range(
                    ByteRange::bounded(range.start, range.end)
                        .map_err(|e| err(location.as_ref(), e))?,
                );
            }
            if let Some(tag) = m.e_tag.clone().filter(|_| options.if_match.is_some()) {
                get = get.with_if_match(tag);
            }
            let loc = location.to_string();
            let dl = self
                .backend
                .get(&entry.path, get)
                .await
                .map_err(|e| err(&loc, e))?;
            dl.stream.map_err(move |e| err(&loc, e)).boxed()
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            meta: m,
            range,
            attributes: Attributes::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let backend = self.backend.clone();
        locations
            .map(move |loc| {
                let backend = backend.clone();
                async move {
                    let loc = loc?;
                    let p = remote(&loc)?;
                    match backend.delete(&p, false).await {
                        // Deleting what is not there succeeds, as in every object store.
                        Ok(()) | Err(CtaError::NotFound { .. }) => Ok(loc),
                        Err(e) => Err(err(loc.as_ref(), e)),
                    }
                }
            })
            .buffered(self.jobs)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let root = match prefix.map(remote).transpose() {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let loc = root.to_string();
        ctadata_core::transfer::walk(self.backend.clone(), root, self.jobs.clamp(2, 8))
            .try_filter_map(|e| async move { Ok(e.is_file().then(|| meta(&e))) })
            .or_else(move |e| {
                let loc = loc.clone();
                // A prefix that does not exist lists nothing.
                async move {
                    match e {
                        CtaError::NotFound { .. } | CtaError::Conflict { .. } => Err(None),
                        e => Err(Some(err(&loc, e))),
                    }
                }
            })
            .filter_map(|r| async move {
                match r {
                    Ok(m) => Some(Ok(m)),
                    Err(None) => None,
                    Err(Some(e)) => Some(Err(e)),
                }
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let root = prefix.map(remote).transpose()?.unwrap_or_default();
        let entries = match self.backend.list_all(&root).await {
            Ok(v) => v,
            Err(CtaError::NotFound { .. }) | Err(CtaError::Conflict { .. }) => Vec::new(),
            Err(e) => return Err(err(&root.to_string(), e)),
        };
        let mut out = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        for e in entries {
            if e.is_dir() {
                out.common_prefixes.push(os_path(&e.path));
            } else {
                out.objects.push(meta(&e));
            }
        }
        out.common_prefixes.sort();
        out.objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let src = self.head_entry(from).await?;
        // Streamed through this process: re-read from the source each time it is sent.
        let backend = self.backend.clone();
        let path = src.path.clone();
        let factory: StreamFactory = Arc::new(move || {
            let backend = backend.clone();
            let path = path.clone();
            async move { Ok(backend.get(&path, CtaGet::default()).await?.stream) }.boxed()
        });
        let body = Upload::from_factory(src.size.unwrap_or(0), factory);
        let create_only = matches!(options.mode, CopyMode::Create);
        match self.put_body(to, body, create_only).await {
            Err(object_store::Error::AlreadyExists { path, source }) if create_only => {
                Err(object_store::Error::AlreadyExists { path, source })
            }
            other => other.map(|_| ()),
        }
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let f = remote(from)?;
        let t = remote(to)?;
        self.head_entry(from).await?;
        if let Some(parent) = t.parent() {
            self.backend
                .mkdir(&parent, true)
                .await
                .map_err(|e| err(to.as_ref(), e))?;
        }
        let overwrite = matches!(options.target_mode, RenameTargetMode::Overwrite);
        self.backend
            .rename(&f, &t, overwrite)
            .await
            .map_err(|e| err(to.as_ref(), e))
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        object_store::coalesce_ranges(
            ranges,
            |r| self.get_range_bytes(location, r),
            object_store::OBJECT_STORE_COALESCE_DEFAULT,
        )
        .await
    }
}

impl CtaObjectStore {
    async fn get_range_bytes(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
        let opts = GetOptions {
            range: Some(range.into()),
            ..Default::default()
        };
        self.get_opts(location, opts).await?.bytes().await
    }
}

/// A multipart upload spooled to local temporary files, one per part, sent as one upload.
struct Multipart {
    store: CtaObjectStore,
    location: Path,
    spool: Arc<tempfile::TempDir>,
    parts: Vec<(std::path::PathBuf, u64)>,
}

impl fmt::Debug for Multipart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multipart")
            .field("location", &self.location)
            .field("parts", &self.parts.len())
            .finish()
    }
}

#[async_trait]
impl MultipartUpload for Multipart {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let file = self
            .spool
            .path()
            .join(format!("part-{:08}", self.parts.len()));
        self.parts
            .push((file.clone(), data.content_length() as u64));
        let spool = self.spool.clone();
        async move {
            let _keep = spool;
            let mut f =
                tokio::fs::File::create(&file)
                    .await
                    .map_err(|e| object_store::Error::Generic {
                        store: STORE,
                        source: Box::new(e),
                    })?;
            for chunk in data.iter() {
                tokio::io::AsyncWriteExt::write_all(&mut f, chunk)
                    .await
                    .map_err(|e| object_store::Error::Generic {
                        store: STORE,
                        source: Box::new(e),
                    })?;
            }
            Ok(())
        }
        .boxed()
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let parts = self.parts.clone();
        let total = parts.iter().map(|(_, n)| n).sum();
        let spool = self.spool.clone();
        let factory: StreamFactory = Arc::new(move || {
            let parts = parts.clone();
            let spool = spool.clone();
            async move {
                let _keep = spool;
                let streams = futures::stream::iter(parts.into_iter().map(|(p, _)| p))
                    .then(|p| async move {
                        let f = tokio::fs::File::open(&p)
                            .await
                            .map_err(|e| CtaError::local("read", &p, e))?;
                        Ok::<_, CtaError>(
                            tokio_stream_reader(f).map_err(move |e| CtaError::local("read", &p, e)),
                        )
                    })
                    .try_flatten();
                Ok(streams.boxed())
            }
            .boxed()
        });
        self.store
            .put_body(&self.location, Upload::from_factory(total, factory), false)
            .await
    }

    async fn abort(&mut self) -> Result<()> {
        self.parts.clear();
        Ok(())
    }
}

fn tokio_stream_reader(f: tokio::fs::File) -> BoxStream<'static, std::io::Result<Bytes>> {
    futures::stream::unfold(f, |mut f| async move {
        let mut buf = vec![0u8; 1 << 20];
        match tokio::io::AsyncReadExt::read(&mut f, &mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_urls_round_trip() {
        let u = profile_url("cta-dev").unwrap();
        assert_eq!(u.as_str(), "cta://cta-dev/");
        let (p, path) = split_url(&u.join("lst/DL2/run%201/a.parquet").unwrap()).unwrap();
        assert_eq!(p, "cta-dev");
        assert_eq!(path.as_ref(), "lst/DL2/run 1/a.parquet");
        assert_eq!(split_url(&u).unwrap().1.as_ref(), "");
    }

    #[test]
    fn names_that_cannot_be_hosts_are_refused_not_replaced() {
        for bad in ["", "a b", "a/b", "a:1", "a@b", "ü"] {
            let e = profile_url(bad).unwrap_err();
            assert!(e.to_string().contains("cannot be used"), "{bad}: {e}");
        }
        let other = url::Url::parse("s3://bucket/x").unwrap();
        assert!(split_url(&other).is_none());
    }
}
