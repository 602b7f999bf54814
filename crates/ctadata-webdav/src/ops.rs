//! The namespace operations: MKCOL (with parents), DELETE and MOVE.

use ctadata_core::{Entry, Error, RemotePath, Result};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;

use crate::backend::{ext_method, WebDav};
use crate::errors::status_error;

/// The outcome of one MKCOL.
enum Made {
    Created,
    /// `405`: something is there already (a parallel transfer made it, or a file).
    Exists,
}

impl WebDav {
    pub(crate) async fn exists(&self, path: &RemotePath) -> Result<Option<Entry>> {
        match self.op_stat(path).await {
            Ok(e) => Ok(Some(e)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn mkcol(&self, path: &RemotePath) -> Result<Made> {
        let resp = self.send(self.req(ext_method("MKCOL"), path, true)).await?;
        match resp.status().as_u16() {
            s if (200..300).contains(&s) => Ok(Made::Created),
            405 => Ok(Made::Exists),
            409 => Err(Error::NotFound {
                path: path.parent().unwrap_or_default().to_string(),
                detail: Some("the parent directory does not exist; use 'mkdir -p'".into()),
            }),
            _ => Err(status_error(resp, path, "create directory").await),
        }
    }

    pub(crate) async fn op_mkdir(&self, path: &RemotePath, parents: bool) -> Result<()> {
        if path.is_root() {
            return if parents {
                Ok(())
            } else {
                Err(Error::conflict(path, "the root exists", "use 'mkdir -p'"))
            };
        }
        if !parents {
            // Checked here rather than read from MKCOL's answer: some servers (XRootD
            // 5.5.3) answer `201` for an existing directory and create missing parents.
            if self.exists(path).await?.is_some() {
                return Err(Error::conflict(
                    path,
                    "it already exists",
                    "use 'mkdir -p' to accept an existing directory",
                ));
            }
            if let Some(parent) = path.parent().filter(|p| !p.is_root()) {
                match self.exists(&parent).await? {
                    Some(e) if e.is_dir() => {}
                    Some(_) => {
                        return Err(Error::conflict(
                            &parent,
                            "a file is in the way",
                            "choose another path",
                        ))
                    }
                    None => {
                        return Err(Error::NotFound {
                            path: parent.to_string(),
                            detail: Some(
                                "the parent directory does not exist; use 'mkdir -p'".into(),
                            ),
                        })
                    }
                }
            }
            return match self.mkcol(path).await? {
                Made::Created => Ok(()),
                Made::Exists => Err(Error::conflict(
                    path,
                    "it already exists",
                    "use 'mkdir -p' to accept an existing directory",
                )),
            };
        }
        match self.exists(path).await? {
            Some(e) if e.is_dir() => return Ok(()),
            Some(_) => {
                return Err(Error::conflict(
                    path,
                    "a file is there",
                    "choose another name",
                ))
            }
            None => {}
        }
        // Find the deepest existing ancestor, then create downwards.
        let ancestors = path.ancestors();
        let mut start = 0;
        for (i, a) in ancestors.iter().enumerate().rev() {
            match self.exists(a).await? {
                Some(e) if e.is_dir() => {
                    start = i + 1;
                    break;
                }
                Some(_) => {
                    return Err(Error::conflict(
                        a,
                        "a file is in the way",
                        "choose another path",
                    ))
                }
                None => {}
            }
        }
        for a in ancestors[start..].iter().chain(std::iter::once(path)) {
            // `Exists`: created meanwhile by a parallel transfer.
            self.mkcol(a).await?;
        }
        Ok(())
    }

    pub(crate) async fn op_delete(&self, path: &RemotePath, recursive: bool) -> Result<()> {
        if path.is_root() {
            return Err(Error::usage(
                "refusing to delete the storage root",
                "name a path below the root",
            ));
        }
        let e = self.op_stat(path).await?;
        if e.is_dir() && !recursive && self.op_list(path).await?.next().await.is_some() {
            return Err(Error::conflict(
                path,
                "the directory is not empty",
                "use 'rm -r' to delete it with its contents",
            ));
        }
        let resp = self
            .send(self.req(Method::DELETE, path, e.is_dir()))
            .await?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        if !(e.is_dir() && recursive && matches!(status, 409 | 500)) {
            return Err(status_error(resp, path, "delete").await);
        }
        // Some servers (XRootD 5.5.3) delete only empty directories: bottom-up, then again.
        let refused = status_error(resp, path, "delete").await;
        tracing::info!(path = %path, status, "the server refused to delete a non-empty directory at once: deleting its contents first");
        let children: Vec<Entry> = self.op_list(path).await?.try_collect().await?;
        if children.is_empty() {
            return Err(refused);
        }
        for child in children {
            Box::pin(self.op_delete(&child.path, true)).await?;
        }
        let resp = self.send(self.req(Method::DELETE, path, true)).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(status_error(resp, path, "delete").await)
        }
    }

    pub(crate) async fn op_rename(
        &self,
        from: &RemotePath,
        to: &RemotePath,
        overwrite: bool,
    ) -> Result<()> {
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
        let src = self.op_stat(from).await?;
        if let Some(dst) = self.exists(to).await? {
            if !overwrite || dst.is_dir() {
                return Err(Error::conflict(
                    to,
                    "the destination exists",
                    "pass --force to replace a file, or remove it first",
                ));
            }
        }
        let mut r = self.req(ext_method("MOVE"), from, src.is_dir());
        let dest = self.base.url_for(to, src.is_dir());
        r.headers.insert(
            HeaderName::from_static("destination"),
            HeaderValue::from_str(dest.as_str())
                .map_err(|e| Error::internal("a Destination header").with_source(e))?,
        );
        r.headers.insert(
            HeaderName::from_static("overwrite"),
            HeaderValue::from_static(if overwrite { "T" } else { "F" }),
        );
        r.follow = false;
        let resp = self.send(r).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(status_error(resp, to, "move").await)
        }
    }
}
