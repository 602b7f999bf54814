//! Listings and stat through `list/<path>`: the item that describes the path itself among
//! its children, and the parent's listing when `list/<file>` fails for the name (a `(`).

use ctadata_core::{Entry, EntryKind, EntryStream, Error, RemotePath, Result};
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::DownloadService;
use crate::client::content_type;
use crate::listing::{parse_list, ListItem};

impl DownloadService {
    /// `list/<path>`: the raw items, the queried one included.
    pub(super) async fn list_items(&self, abs: &RemotePath) -> Result<Vec<ListItem>> {
        let url = self.c.endpoint("list", abs);
        let (resp, token) = self
            .c
            .s
            .send(&url, |c| {
                c.get(url.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .header(ACCEPT, "application/json")
            })
            .await?;
        if resp.status().as_u16() != 200 {
            return Err(self.c.failure(resp, &token, abs, "list").await);
        }
        let ctype = content_type(&resp);
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.c.s.transport(&url, e))?;
        self.c.s.refuse_html(
            ctype.as_deref(),
            &body[..body.len().min(2048)],
            &format!("the listing of {abs}"),
            &token,
        )?;
        parse_list(&body).map_err(|e| {
            Error::protocol(
                abs.to_string(),
                Some(200),
                format!("the list answer cannot be used: {}", e.0),
            )
        })
    }

    /// The entry a listing item gives, named `path`.
    fn entry(path: RemotePath, item: &ListItem) -> Entry {
        let mut e = Entry::new(
            path,
            if item.is_dir {
                EntryKind::Directory
            } else {
                EntryKind::File
            },
        );
        e.size = item.size;
        e.mtime = item.mtime;
        e
    }

    /// The item describing `abs` itself: the one with its path, else the first one (the
    /// service puts the queried item first) when it is not one of the children.
    fn itself<'a>(abs: &RemotePath, items: &'a [ListItem]) -> Option<&'a ListItem> {
        items
            .iter()
            .find(|i| i.path.as_ref() == Some(abs))
            .or_else(|| {
                items
                    .first()
                    .filter(|i| i.path.as_ref().and_then(|p| p.parent()).as_ref() != Some(abs))
            })
    }

    /// The entry of `abs` (from the root), named `path` as the caller gave it.
    pub(super) async fn stat_abs(&self, path: &RemotePath, abs: &RemotePath) -> Result<Entry> {
        let items = match self.list_items(abs).await {
            Ok(items) => items,
            // `list/<file>` fails for some names (a `(`) while the parent's listing
            // describes the file: look there.
            Err(e @ Error::Unsupported { .. }) => {
                let Some(parent) = abs.parent() else {
                    return Err(e);
                };
                let Ok(siblings) = self.list_items(&parent).await else {
                    return Err(e);
                };
                return match siblings.iter().find(|i| i.path.as_ref() == Some(abs)) {
                    Some(i) => Ok(Self::entry(path.clone(), i)),
                    None => Err(Error::not_found(path)),
                };
            }
            Err(e) => return Err(e),
        };
        match Self::itself(abs, &items) {
            Some(i) => Ok(Self::entry(path.clone(), i)),
            None => Err(Error::protocol(
                abs.to_string(),
                Some(200),
                "the list answer does not describe the path asked for",
            )),
        }
    }

    /// The entry of `path`.
    pub(super) async fn op_stat(&self, path: &RemotePath) -> Result<Entry> {
        let abs = self.absolute(path).await?;
        self.stat_abs(path, &abs).await
    }

    /// The children of `dir`. The service answers one JSON array: read whole (it is bounded
    /// by the service's own buffering), handed on as a stream like every other listing.
    pub(super) async fn op_list(&self, dir: &RemotePath) -> Result<EntryStream> {
        let abs = self.absolute(dir).await?;
        let items = self.list_items(&abs).await?;
        let itself = Self::itself(&abs, &items);
        let mut out = Vec::new();
        for item in &items {
            if itself.is_some_and(|i| std::ptr::eq(i, item)) {
                continue;
            }
            let Some(p) = &item.path else {
                tracing::warn!(dir = %abs, href = %item.href, "ignoring a listing entry whose href is not a usable path");
                continue;
            };
            if p.parent().as_ref() != Some(&abs) {
                tracing::warn!(dir = %abs, href = %item.href, "ignoring a listing entry that is not a child of the listed directory");
                continue;
            }
            out.push(Self::entry(dir.join(p.name())?, item));
        }
        if itself.is_some_and(|i| !i.is_dir) && out.is_empty() {
            return Err(Error::conflict(
                &abs,
                "it is a file, not a directory",
                "use 'cta-data stat' for a file",
            ));
        }
        Ok(futures::stream::iter(out.into_iter().map(Ok)).boxed())
    }
}
