//! PROPFIND: `stat` (Depth 0) and `list` (Depth 1), the listing yielded entry by entry as
//! the answer is parsed, and hrefs that do not name a child of the listed collection on
//! the same server refused.

use bytes::Bytes;
use ctadata_core::{Entry, EntryKind, EntryStream, Error, RemotePath, Result};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};

use crate::backend::{ext_method, WebDav};
use crate::errors::status_error;
use crate::propfind::{limit_tag_gap, MultistatusReader, RawResponse, PROPFIND_BODY};
use crate::urls::Base;

/// How one `<response>` of a listing relates to the collection listed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Listed {
    /// The collection itself (with or without a trailing slash).
    Itself,
    /// A direct child.
    Child(RemotePath),
    /// Anything else: another origin, outside the collection, deeper, undecodable.
    Foreign,
}

/// Places the href of a listing's `<response>`: resolved against the request URL (RFC 3986),
/// percent-decoded once, on the request's origin, and directly below `dir`.
pub(crate) fn place(base: &Base, href: &str, request: &Url, dir: &RemotePath) -> Listed {
    let Some(url) = resolve(href, request) else {
        return Listed::Foreign;
    };
    if !same_origin(&url, request) {
        return Listed::Foreign;
    }
    match base.href_to_path(url.as_str(), request) {
        Some(p) if &p == dir => Listed::Itself,
        Some(p) if p.parent().as_ref() == Some(dir) => Listed::Child(p),
        _ => Listed::Foreign,
    }
}

fn resolve(href: &str, request: &Url) -> Option<Url> {
    let href = href.trim();
    match Url::parse(href) {
        Ok(u) => Some(u),
        Err(url::ParseError::RelativeUrlWithoutBase) => request.join(href).ok(),
        Err(_) => None,
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The entry a `<response>` describes.
pub(crate) fn entry(path: RemotePath, raw: RawResponse) -> Entry {
    let mut e = Entry::new(
        path,
        if raw.is_collection {
            EntryKind::Directory
        } else {
            EntryKind::File
        },
    );
    e.size = if raw.is_collection { None } else { raw.size };
    e.mtime = raw.mtime;
    e.etag = raw.etag;
    e.checksums = raw.checksums;
    e.locality = raw.locality;
    e
}

type Reader = MultistatusReader<
    tokio::io::BufReader<
        tokio_util::io::StreamReader<
            futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
            Bytes,
        >,
    >,
>;

fn reader(resp: reqwest::Response) -> Reader {
    let body = limit_tag_gap(resp.bytes_stream()).boxed();
    MultistatusReader::new(tokio::io::BufReader::with_capacity(
        64 * 1024,
        tokio_util::io::StreamReader::new(body),
    ))
}

fn parse_error(path: &RemotePath, e: crate::propfind::ParseError) -> Error {
    Error::protocol(path, Some(207), e.0)
}

impl WebDav {
    pub(crate) async fn propfind(
        &self,
        path: &RemotePath,
        depth: u8,
        collection: bool,
    ) -> Result<reqwest::Response> {
        let mut r = self.req(ext_method("PROPFIND"), path, collection);
        r.headers.insert(
            "depth",
            HeaderValue::from_static(if depth == 0 { "0" } else { "1" }),
        );
        r.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        );
        r.body = Some(Bytes::from_static(PROPFIND_BODY.as_bytes()));
        let resp = self.send(r).await?;
        if resp.status().as_u16() != 207 {
            let what = if depth == 0 { "look up" } else { "list" };
            return Err(status_error(resp, path, what).await);
        }
        Ok(resp)
    }

    pub(crate) async fn op_stat(&self, path: &RemotePath) -> Result<Entry> {
        let resp = self.propfind(path, 0, false).await?;
        let request = resp.url().clone();
        let mut rd = reader(resp);
        let mut found = None;
        while let Some(raw) = rd.next_response().await.map_err(|e| parse_error(path, e))? {
            if found.is_none()
                && !raw.bad_status
                && place(&self.base, &raw.href, &request, path) == Listed::Itself
            {
                found = Some(entry(path.clone(), raw));
            }
        }
        let mut found = found.ok_or_else(|| {
            Error::protocol(
                path,
                Some(207),
                "the server's answer does not describe the path asked for",
            )
        })?;
        // Some servers (nginx dav-ext) list no getetag; their HEAD has the ETag that
        // resumes and conditional reads need.
        if found.is_file() && found.etag.is_none() {
            let resp = self.send(self.req(Method::HEAD, path, false)).await?;
            if resp.status().is_success() {
                found.etag = resp
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
        }
        Ok(found)
    }

    pub(crate) async fn op_list(&self, dir: &RemotePath) -> Result<EntryStream> {
        let resp = self.propfind(dir, 1, true).await?;
        let request = resp.url().clone();
        let mut rd = reader(resp);
        // Read up to the first child, so that "not a directory" is the outer error.
        let mut first = Vec::new();
        let mut itself = None;
        let dir_c = dir.clone();
        let base = self.base.clone();
        loop {
            let Some(raw) = rd.next_response().await.map_err(|e| parse_error(dir, e))? else {
                break;
            };
            if let Some(e) = classify(&base, raw, &request, &dir_c, &mut itself) {
                first.push(e);
                break;
            }
            if itself.is_some() {
                // The collection came first, as servers send it: children follow.
                break;
            }
        }
        if itself == Some(false) {
            return Err(Error::conflict(
                dir,
                "it is a file, not a directory",
                "use 'cta-data stat' for a file",
            ));
        }
        struct St {
            rd: Reader,
            base: Base,
            request: Url,
            dir: RemotePath,
            itself: Option<bool>,
        }
        let st = St {
            rd,
            base,
            request,
            dir: dir_c,
            itself,
        };
        let rest = futures::stream::try_unfold(st, |mut st| async move {
            loop {
                let Some(raw) = st
                    .rd
                    .next_response()
                    .await
                    .map_err(|e| parse_error(&st.dir, e))?
                else {
                    return Ok(None);
                };
                if let Some(e) = classify(&st.base, raw, &st.request, &st.dir, &mut st.itself) {
                    return Ok(Some((e, st)));
                }
            }
        });
        Ok(futures::stream::iter(first.into_iter().map(Ok))
            .chain(rest.into_stream())
            .boxed())
    }
}

/// The entry a `<response>` adds to the listing of `dir`, if any; notes whether the
/// collection itself is a directory.
fn classify(
    base: &Base,
    raw: RawResponse,
    request: &Url,
    dir: &RemotePath,
    itself: &mut Option<bool>,
) -> Option<Entry> {
    if raw.bad_status {
        return None;
    }
    match place(base, &raw.href, request, dir) {
        Listed::Itself => {
            *itself = Some(raw.is_collection);
            None
        }
        Listed::Child(p) => Some(entry(p, raw)),
        Listed::Foreign => {
            tracing::warn!(dir = %dir, href = %raw.href, "ignoring a listing entry that is not a child of the listed directory on this server");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(s: &str) -> RemotePath {
        RemotePath::parse(s).unwrap()
    }

    #[test]
    fn only_children_on_the_same_origin_are_listed() {
        let base = Base::new("https://door:2880/pnfs/").unwrap();
        let dir = rp("a");
        let req = base.url_for(&dir, true);
        let child = |h: &str| place(&base, h, &req, &dir);
        assert_eq!(child("/pnfs/a/b%20c"), Listed::Child(rp("a/b c")));
        assert_eq!(child("b"), Listed::Child(rp("a/b")));
        assert_eq!(
            child("https://door:2880/pnfs/a/x"),
            Listed::Child(rp("a/x"))
        );
        // The collection itself, with and without its slash.
        assert_eq!(child("/pnfs/a/"), Listed::Itself);
        assert_eq!(child("/pnfs/a"), Listed::Itself);
        assert_eq!(child("https://door:2880/pnfs/a/"), Listed::Itself);
        // Another host, port or scheme: never a child, even with the right path.
        assert_eq!(child("https://evil:2880/pnfs/a/x"), Listed::Foreign);
        assert_eq!(child("https://door:2881/pnfs/a/x"), Listed::Foreign);
        assert_eq!(child("http://door:2880/pnfs/a/x"), Listed::Foreign);
        assert_eq!(child("//evil/pnfs/a/x"), Listed::Foreign);
        // Not directly below: deeper, a sibling, outside the base, climbing.
        assert_eq!(child("/pnfs/a/b/c"), Listed::Foreign);
        assert_eq!(child("/pnfs/b"), Listed::Foreign);
        assert_eq!(child("/etc/passwd"), Listed::Foreign);
        assert_eq!(child("/pnfs/a/../../etc/x"), Listed::Foreign);
        assert_eq!(child("/pnfs/a/%2E%2E/%2E%2E/x"), Listed::Foreign);
        // Encoded twice: decoded once, the name keeps its '%': a literal child, never `..`.
        assert_eq!(child("/pnfs/a/%252E%252E"), Listed::Child(rp("a/%2E%2E")));
        assert_eq!(
            child("/pnfs/a/%252E%252E%252Fx"),
            Listed::Child(rp("a/%2E%2E%2Fx"))
        );
        assert_eq!(child("/pnfs/a/x%252Fy"), Listed::Child(rp("a/x%2Fy")));
    }
}
