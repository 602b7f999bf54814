//! The `local` backend: a directory used as the storage root.
//!
//! It lets a newcomer try every verb without credentials or network, and serves sites
//! where dCache's namespace is mounted over NFS. Writes go to a temporary file beside
//! the target and are renamed into place, so a reader never sees half a file.
#![warn(missing_docs)]

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ctadata_core::backend::IO_BLOCK;
use ctadata_core::{
    Adler32, ByteRange, Capabilities, ChecksumAlgorithm, Download, Entry, EntryKind, EntryStream,
    Error, GetOptions, PutOptions, PutOutcome, RemotePath, Result, StorageBackend, Upload,
};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// A directory treated as a storage root.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// A backend rooted at `root`, created (mode 0700) when it does not exist yet.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.exists() {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(&root)
                .map_err(|e| Error::local("create the storage root", &root, e))?;
        }
        if !root.is_dir() {
            return Err(Error::config(
                format!("the local root {} is not a directory", root.display()),
                "set 'root' of the profile to a directory",
            ));
        }
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn fs_path(&self, p: &RemotePath) -> PathBuf {
        // RemotePath has no '..', no empty segments: joining cannot leave the root.
        let mut out = self.root.clone();
        for seg in p.segments() {
            out.push(seg);
        }
        out
    }

    fn entry_from(&self, path: RemotePath, md: &std::fs::Metadata) -> Entry {
        let kind = if md.is_dir() {
            EntryKind::Directory
        } else {
            EntryKind::File
        };
        let mut e = Entry::new(path, kind);
        if md.is_file() {
            e.size = Some(md.len());
        }
        e.mtime = md.modified().ok();
        e
    }

    fn map_io(&self, action: &str, path: &RemotePath, e: std::io::Error) -> Error {
        match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found(path),
            std::io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                path: path.to_string(),
                message: format!("cannot {action}: {e}"),
            },
            std::io::ErrorKind::AlreadyExists => Error::conflict(
                path,
                "it already exists",
                "choose another name, or remove it first",
            ),
            _ => Error::local(action, self.fs_path(path), e),
        }
    }

    async fn meta(&self, path: &RemotePath) -> Result<std::fs::Metadata> {
        tokio::fs::metadata(self.fs_path(path))
            .await
            .map_err(|e| self.map_io("stat", path, e))
    }
}

#[async_trait]
impl StorageBackend for LocalBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: "local",
            write: true,
            mkdir: true,
            delete: true,
            rename: true,
            ranged_reads: true,
            etags: false,
            checksums: vec![ChecksumAlgorithm::Adler32],
            default_jobs: 4,
            default_streams: 1,
        }
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        let md = self.meta(path).await?;
        Ok(self.entry_from(path.clone(), &md))
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        let md = self.meta(dir).await?;
        if !md.is_dir() {
            return Err(Error::conflict(
                dir,
                "it is a file, not a directory",
                "use 'cta-data stat' for a file",
            ));
        }
        let mut rd = tokio::fs::read_dir(self.fs_path(dir))
            .await
            .map_err(|e| self.map_io("list", dir, e))?;
        let mut out = Vec::new();
        while let Some(de) = rd
            .next_entry()
            .await
            .map_err(|e| self.map_io("list", dir, e))?
        {
            let Some(name) = de.file_name().to_str().map(str::to_string) else {
                tracing::warn!(dir = %dir, "skipping a name that is not valid UTF-8");
                continue;
            };
            if name.ends_with(".cta-data-tmp") {
                continue;
            }
            let Ok(path) = dir.join(&name) else { continue };
            // Follow symlinks for the metadata, as an NFS mount of dCache would show them.
            let md = match tokio::fs::metadata(de.path()).await {
                Ok(md) => md,
                Err(_) => continue,
            };
            out.push(self.entry_from(path, &md));
        }
        // A directory on disk is read whole and sorted: names in order, as `ls` shows them.
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(futures::stream::iter(out.into_iter().map(Ok)).boxed())
    }

    async fn get(&self, path: &RemotePath, opts: GetOptions) -> Result<Download> {
        let md = self.meta(path).await?;
        if md.is_dir() {
            return Err(Error::conflict(
                path,
                "it is a directory",
                "use 'get -r' to download a directory",
            ));
        }
        let size = md.len();
        let range = opts.range.map(|r| r.resolve(size)).unwrap_or(0..size);
        if let Some(ByteRange::Bounded { start, end, .. }) = opts.range {
            if start > end || start >= size && size > 0 {
                return Err(Error::protocol(
                    path.to_string(),
                    Some(416),
                    format!("range {start}..{end} is outside the file of {size} bytes"),
                ));
            }
        }
        let mut file = tokio::fs::File::open(self.fs_path(path))
            .await
            .map_err(|e| self.map_io("read", path, e))?;
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(|e| self.map_io("read", path, e))?;
        let p = path.clone();
        let reader = file.take(range.end - range.start);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, IO_BLOCK)
            .map(move |r| {
                r.map_err(|e| Error::transport(p.to_string(), format!("read failed: {e}")))
            })
            .boxed();
        Ok(Download {
            path: path.clone(),
            size: Some(size),
            range: Some(range),
            mtime: md.modified().ok(),
            etag: None,
            checksums: Vec::new(),
            stream,
        })
    }

    async fn put(&self, path: &RemotePath, body: Upload, opts: PutOptions) -> Result<PutOutcome> {
        if path.is_root() {
            return Err(Error::conflict(
                path,
                "the root is a directory",
                "give a file name",
            ));
        }
        let target = self.fs_path(path);
        if let Some(parent) = path.parent() {
            match self.meta(&parent).await {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    return Err(Error::conflict(
                        parent,
                        "a parent is a file",
                        "choose another path",
                    ))
                }
                Err(Error::NotFound { .. }) if opts.create_parents => {
                    self.mkdir(&parent, true).await?
                }
                Err(Error::NotFound { .. }) => return Err(Error::NotFound {
                    path: parent.to_string(),
                    detail: Some(
                        "the parent directory does not exist; create it with 'cta-data mkdir -p'"
                            .into(),
                    ),
                }),
                Err(e) => return Err(e),
            }
        }
        match tokio::fs::metadata(&target).await {
            Ok(md) if md.is_dir() => {
                return Err(Error::conflict(
                    path,
                    "a directory is there",
                    "give the file's full path, or end the path with '/'",
                ))
            }
            Ok(_) if !opts.overwrite => {
                return Err(Error::conflict(
                    path,
                    "a file is already there",
                    "pass --force to replace it",
                ))
            }
            _ => {}
        }
        let tmp = target.with_file_name(format!(
            ".{}.{}.cta-data-tmp",
            path.name(),
            std::process::id()
        ));
        let result = async {
            let file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| Error::local("create", &tmp, e))?;
            let mut out = tokio::io::BufWriter::with_capacity(IO_BLOCK, file);
            let mut adler = Adler32::new();
            let mut n = 0u64;
            let mut stream = body.open().await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                adler.update(&chunk);
                n += chunk.len() as u64;
                out.write_all(&chunk)
                    .await
                    .map_err(|e| Error::local("write", &tmp, e))?;
            }
            out.flush()
                .await
                .map_err(|e| Error::local("write", &tmp, e))?;
            if n != body.len() {
                return Err(Error::integrity(
                    path.to_string(),
                    format!(
                        "the body was announced as {} bytes but {n} were read",
                        body.len()
                    ),
                ));
            }
            if let Some(want) = &opts.checksum {
                if want.algorithm == ChecksumAlgorithm::Adler32
                    && want.value != adler.checksum().value
                {
                    return Err(Error::integrity(
                        path.to_string(),
                        format!(
                            "adler32 {} differs from the expected {}",
                            adler.checksum().value,
                            want.value
                        ),
                    ));
                }
            }
            if opts.overwrite {
                tokio::fs::rename(&tmp, &target)
                    .await
                    .map_err(|e| self.map_io("write", path, e))?;
            } else {
                // Never over a file that appeared meanwhile (another run): a link fails
                // when the name is taken, a rename would replace it.
                match tokio::fs::hard_link(&tmp, &target).await {
                    Ok(()) => {
                        let _ = tokio::fs::remove_file(&tmp).await;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(Error::conflict(
                            path,
                            "a file was written there meanwhile (another upload?)",
                            "pass --force to replace it",
                        ));
                    }
                    Err(e) => return Err(self.map_io("write", path, e)),
                }
            }
            Ok(PutOutcome {
                path: path.clone(),
                size: n,
                checksums: vec![adler.checksum()],
            })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn mkdir(&self, path: &RemotePath, parents: bool) -> Result<()> {
        let p = self.fs_path(path);
        if parents {
            if let Ok(md) = tokio::fs::metadata(&p).await {
                return if md.is_dir() {
                    Ok(())
                } else {
                    Err(Error::conflict(
                        path,
                        "a file is there",
                        "choose another name",
                    ))
                };
            }
            for a in path.ancestors() {
                if let Ok(md) = tokio::fs::metadata(self.fs_path(&a)).await {
                    if !md.is_dir() {
                        return Err(Error::conflict(
                            &a,
                            "a file is in the way",
                            "choose another path",
                        ));
                    }
                }
            }
            tokio::fs::create_dir_all(&p)
                .await
                .map_err(|e| self.map_io("create directory", path, e))
        } else {
            if let Some(parent) = path.parent() {
                if tokio::fs::metadata(self.fs_path(&parent)).await.is_err() {
                    return Err(Error::NotFound {
                        path: parent.to_string(),
                        detail: Some("the parent directory does not exist; use 'mkdir -p'".into()),
                    });
                }
            }
            tokio::fs::create_dir(&p)
                .await
                .map_err(|e| self.map_io("create directory", path, e))
        }
    }

    async fn delete(&self, path: &RemotePath, recursive: bool) -> Result<()> {
        if path.is_root() {
            return Err(Error::usage(
                "refusing to delete the storage root",
                "name a path below the root",
            ));
        }
        let md = tokio::fs::symlink_metadata(self.fs_path(path))
            .await
            .map_err(|e| self.map_io("delete", path, e))?;
        let p = self.fs_path(path);
        let r = if md.is_dir() {
            if recursive {
                tokio::fs::remove_dir_all(&p).await
            } else {
                match tokio::fs::remove_dir(&p).await {
                    Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                        return Err(Error::conflict(
                            path,
                            "the directory is not empty",
                            "use 'rm -r' to delete it with its contents",
                        ))
                    }
                    other => other,
                }
            }
        } else {
            tokio::fs::remove_file(&p).await
        };
        r.map_err(|e| self.map_io("delete", path, e))
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath, overwrite: bool) -> Result<()> {
        if from.is_root() || to.is_root() {
            return Err(Error::usage(
                "the storage root cannot be moved",
                "name paths below the root",
            ));
        }
        if to.starts_with(from) {
            return Err(Error::usage(
                format!("cannot move {from} into itself ({to})"),
                "choose a destination outside the source",
            ));
        }
        self.meta(from).await?;
        let dst = self.fs_path(to);
        if let Ok(md) = tokio::fs::metadata(&dst).await {
            if !overwrite || md.is_dir() {
                return Err(Error::conflict(
                    to,
                    "the destination exists",
                    "pass --force to replace a file, or remove it first",
                ));
            }
        }
        if let Some(parent) = to.parent() {
            if tokio::fs::metadata(self.fs_path(&parent)).await.is_err() {
                return Err(Error::NotFound {
                    path: parent.to_string(),
                    detail: Some("the destination's parent does not exist".into()),
                });
            }
        }
        tokio::fs::rename(self.fs_path(from), dst)
            .await
            .map_err(|e| self.map_io("rename", from, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn rp(s: &str) -> RemotePath {
        RemotePath::parse(s).unwrap()
    }

    async fn read_all(b: &LocalBackend, p: &str, range: Option<ByteRange>) -> Vec<u8> {
        let d = b
            .get(
                &rp(p),
                match range {
                    Some(r) => GetOptions::default().with_range(r),
                    None => GetOptions::default(),
                },
            )
            .await
            .unwrap();
        let chunks: Vec<bytes::Bytes> = d.stream.try_collect().await.unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn every_operation_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("root")).unwrap();
        b.mkdir(&rp("a/b"), true).await.unwrap();
        b.mkdir(&rp("a/b"), true).await.unwrap(); // idempotent with parents
        assert!(matches!(
            b.mkdir(&rp("a/b"), false).await,
            Err(Error::Conflict { .. })
        ));
        assert!(matches!(
            b.mkdir(&rp("x/y"), false).await,
            Err(Error::NotFound { .. })
        ));
        let out = b
            .put(
                &rp("a/b/f.txt"),
                Upload::from_bytes(&b"hello world"[..]),
                PutOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(out.size, 11);
        assert_eq!(out.checksums[0].value, "1a0b045d");
        assert!(matches!(
            b.put(
                &rp("a/b/f.txt"),
                Upload::from_bytes(&b"x"[..]),
                PutOptions::default()
            )
            .await,
            Err(Error::Conflict { .. })
        ));
        assert_eq!(read_all(&b, "a/b/f.txt", None).await, b"hello world");
        assert_eq!(
            read_all(&b, "a/b/f.txt", Some(ByteRange::bounded(6, 9).unwrap())).await,
            b"wor"
        );
        assert_eq!(
            read_all(&b, "a/b/f.txt", Some(ByteRange::Suffix(5))).await,
            b"world"
        );
        assert_eq!(
            read_all(&b, "a/b/f.txt", Some(ByteRange::From(6))).await,
            b"world"
        );
        let l = b.list_all(&rp("a/b")).await.unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "f.txt");
        assert_eq!(l[0].size, Some(11));
        assert!(matches!(
            b.list_all(&rp("a/b/f.txt")).await,
            Err(Error::Conflict { .. })
        ));
        b.rename(&rp("a/b/f.txt"), &rp("a/g.txt"), false)
            .await
            .unwrap();
        assert!(matches!(
            b.stat(&rp("a/b/f.txt")).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            b.delete(&rp("a"), false).await,
            Err(Error::Conflict { .. })
        ));
        b.delete(&rp("a"), true).await.unwrap();
        assert!(b.list_all(&RemotePath::root()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_short_body_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path()).unwrap();
        let factory: ctadata_core::backend::StreamFactory = std::sync::Arc::new(|| {
            Box::pin(async {
                Ok(futures::stream::once(async { Ok(bytes::Bytes::from_static(b"abc")) }).boxed())
            })
        });
        let e = b
            .put(
                &rp("f"),
                Upload::from_factory(10, factory),
                PutOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Integrity { .. }), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
