//! Writes, only inside the user folder: files streamed to `upload/` and then checked
//! against what the storage lists, directories with `MKCOL` through the passthrough.

use ctadata_core::backend::check_put_target;
use ctadata_core::{Error, PutOptions, PutOutcome, RemotePath, Result, Upload};
use futures::StreamExt;
use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};

use super::errors::{dots, missing_parent};
use super::DownloadService;
use crate::client::{content_type, read_limited, short_text};

impl DownloadService {
    /// A file at `path` (in the user folder), its parents made first when asked.
    pub(super) async fn op_put(
        &self,
        path: &RemotePath,
        body: Upload,
        opts: PutOptions,
    ) -> Result<PutOutcome> {
        let (abs, rel) = self.write_target(path).await?;
        if rel.is_root() {
            return Err(Error::conflict(
                &abs,
                "this is your user folder, a directory",
                "give a file name",
            ));
        }
        if abs.as_str().contains("..") {
            return Err(dots(&abs));
        }
        if !opts.known_absent {
            let existing = match self.stat_abs(&abs, &abs).await {
                Ok(e) => Some(e),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            // The service replaces a file in place (204): no temporary name needed.
            check_put_target(&abs, existing.as_ref(), opts.overwrite)?;
        }
        if opts.create_parents {
            if let Some(parent) = rel.parent().filter(|p| !p.is_root()) {
                let home = self.home().await?;
                self.mkcols(&home, &parent).await?;
            }
        }
        self.upload(&abs, &rel, &body).await
    }

    /// A directory at `path` (in the user folder); with `parents`, an existing one is fine.
    pub(super) async fn op_mkdir(&self, path: &RemotePath, parents: bool) -> Result<()> {
        let (abs, rel) = self.write_target(path).await?;
        let home = self.home().await?;
        if parents {
            if !self.mkcols(&home, &rel).await? {
                // Already there: make sure it is a directory.
                let e = self.stat_abs(&abs, &abs).await?;
                if !e.is_dir() {
                    return Err(Error::conflict(
                        &abs,
                        "a file is there",
                        "choose another name",
                    ));
                }
            }
            return Ok(());
        }
        if self.mkcol(&abs).await? {
            Ok(())
        } else {
            Err(Error::conflict(
                &abs,
                "it already exists",
                "use 'mkdir -p' to accept an existing directory",
            ))
        }
    }

    /// `upload/<rel>`: the file streamed once, then where the service says it landed.
    async fn upload(
        &self,
        abs: &RemotePath,
        rel: &RemotePath,
        body: &Upload,
    ) -> Result<PutOutcome> {
        let url = self.c.endpoint("upload", rel);
        let len = body.len();
        let stream = body.open().await?;
        // Sent once: a failed upload is retried whole by the transfer engine.
        let cell = std::sync::Mutex::new(Some(stream));
        let (resp, token) = self
            .c
            .s
            .send(&url, |c| {
                let s = cell
                    .lock()
                    .ok()
                    .and_then(|mut g| g.take())
                    .unwrap_or_else(|| futures::stream::empty().boxed());
                c.post(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, HeaderValue::from(len))
                    .body(reqwest::Body::wrap_stream(s))
            })
            .await?;
        match resp.status().as_u16() {
            200 => {}
            // The service's answer to an overwrite: the file was replaced.
            204 => return self.stored(abs.clone(), len).await,
            405 => {
                return Err(Error::conflict(
                    abs,
                    "a directory is there",
                    "give the file's full path, or end the path with '/'",
                ))
            }
            409 => {
                return Err(missing_parent(
                    abs,
                    "parent directory",
                    "'put' creates it, or use 'mkdir -p'",
                ))
            }
            // 413 and 507 (no room) as for every WebDAV server.
            _ => return Err(self.c.failure(resp, &token, abs, "upload").await),
        }
        let ctype = content_type(&resp);
        let answer = read_limited(resp, 1 << 16).await;
        self.c.s.refuse_html(
            ctype.as_deref(),
            &answer,
            &format!("the upload of {abs}"),
            &token,
        )?;
        let v: serde_json::Value = serde_json::from_slice(&answer).map_err(|e| Error::protocol(abs.to_string(), Some(200), format!(
                "the upload answer is not JSON ({e}): '{}'; the file may have been stored: check with 'cta-data stat {}'",
                short_text(&String::from_utf8_lossy(&answer)),
                abs.as_str()
            )))?;
        let Some(landed) = v.get("path").and_then(|p| p.as_str()) else {
            return Err(Error::protocol(abs.to_string(), Some(200), format!(
                    "the upload answer has no 'path', so where the file landed is unknown ({}); it should be at {abs}: check with 'cta-data stat {}'",
                    short_text(&v.to_string()),
                    abs.as_str()
                )));
        };
        let landed = RemotePath::parse(landed).map_err(|e| {
            Error::protocol(
                abs.to_string(),
                Some(200),
                format!("the upload answer names an unusable path: {e}"),
            )
        })?;
        if let Some(w) = v.get("total_written").and_then(|w| w.as_u64()) {
            if w != len {
                return Err(Error::integrity(
                    landed.to_string(),
                    format!("sent {len} bytes but the service wrote {w}; upload the file again"),
                ));
            }
        }
        if landed != *abs {
            tracing::warn!(expected = %abs, landed = %landed, "the service put the file elsewhere than expected");
        }
        self.stored(landed, len).await
    }

    /// Checks that the storage lists `len` bytes at `landed`: the service counts what it
    /// received, not what the storage kept (it streams to dCache without Content-Length).
    async fn stored(&self, landed: RemotePath, len: u64) -> Result<PutOutcome> {
        let listed = match self.stat_abs(&landed, &landed).await {
            Ok(e) => e.size,
            Err(Error::NotFound { .. }) => {
                return Err(Error::integrity(landed.to_string(), format!(
                        "the downloadservice accepted {len} bytes but the storage has no file there; upload it again"
                    )))
            }
            Err(e) => return Err(e),
        };
        if let Some(s) = listed.filter(|&s| s != len) {
            return Err(Error::integrity(landed.to_string(), format!(
                    "sent {len} bytes but the storage lists {s}; upload the file again (with --force)"
                )));
        }
        Ok(PutOutcome {
            path: landed,
            size: len,
            checksums: Vec::new(),
        })
    }

    /// `MKCOL` through the passthrough: `Ok(true)` created, `Ok(false)` already there (405).
    async fn mkcol(&self, abs: &RemotePath) -> Result<bool> {
        let (resp, token, _) = self.c.passthrough("MKCOL", abs, true, |rb| rb).await?;
        match resp.status().as_u16() {
            200 | 201 => Ok(true),
            405 => Ok(false),
            409 => Err(missing_parent(abs, "parent", "use 'mkdir -p'")),
            _ => Err(self
                .c
                .failure(resp, &token, abs, "create the directory")
                .await),
        }
    }

    /// Creates `rel` (below the user folder) and every missing folder above it.
    async fn mkcols(&self, home: &RemotePath, rel: &RemotePath) -> Result<bool> {
        let mut created = self.mkcol(home).await?;
        let mut chain = rel.ancestors();
        if !rel.is_root() {
            chain.push(rel.clone());
        }
        for a in chain {
            created = self.mkcol(&home.join(a.as_str())?).await?;
        }
        Ok(created)
    }
}
