//! PROPFIND: `stat` (Depth 0) and `list` (Depth 1), the listing yielded entry by entry as
//! the answer is parsed, and hrefs that do not name a child of the listed collection on
//! the same server refused.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ctadata_core::{Entry, EntryKind, EntryStream, Error, RemotePath, Result};
use futures::{FutureExt, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet};
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};

use crate::backend::{ext_method, WebDav};
use crate::body::checked_body;
use crate::errors::status_error;
use crate::propfind::{
    limit_tag_gap, too_long, MultistatusReader, RawResponse, TagGap, PROPFIND_BODY,
};
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
    let href = href.trim();
    // The usual href, an absolute path (dCache, nginx, Apache): on the request's origin by
    // definition, so no URL needs building. Anything a URL parser would rewrite (dot
    // segments, `\\`, `?`, `#`, another authority) takes the full road below.
    let found = if is_plain_absolute_path(href) {
        base.raw_path_to_remote(href)
    } else {
        let Some(url) = resolve(href, request) else {
            return Listed::Foreign;
        };
        if !same_origin(&url, request) {
            return Listed::Foreign;
        }
        base.raw_path_to_remote(url.path())
    };
    match found {
        Some(p) if &p == dir => Listed::Itself,
        Some(p) if p.parent().as_ref() == Some(dir) => Listed::Child(p),
        _ => Listed::Foreign,
    }
}

/// What a server's hrefs have shown of how it writes paths (learned across its answers).
///
/// RFC 4918 hrefs are URIs, percent-encoded; some servers (XRootD 5.5.3) send paths only
/// XML-escaped, so `a#b.txt` arrives with a raw `#` and the file literally named `p%41.txt`
/// as `p%41.txt`. A raw space, `#`, `?` or non-ASCII character proves the raw style; an
/// escape of a character that needs one proves encoding (unless raw is proven too: a raw
/// name may hold `%20`). An href whose only escapes are of letters, digits or `-._~` reads
/// two ways until the style is known.
#[derive(Debug, Default)]
pub(crate) struct HrefStyle(AtomicU8);

const STYLE_UNKNOWN: u8 = 0;
const STYLE_ENCODED: u8 = 1;
const STYLE_RAW: u8 = 2;

impl HrefStyle {
    fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }

    /// Learns from one href; returns the style now known.
    fn learn(&self, href: &str) -> u8 {
        match evidence(href) {
            STYLE_RAW if self.0.swap(STYLE_RAW, Ordering::Relaxed) != STYLE_RAW => {
                tracing::debug!(
                    href,
                    "the server sends hrefs without percent-encoding: they are read literally"
                );
            }
            STYLE_ENCODED => {
                let _ = self.0.compare_exchange(
                    STYLE_UNKNOWN,
                    STYLE_ENCODED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            _ => {}
        }
        self.get()
    }
}

/// Where the path of an href starts (after `scheme://authority` when it has them).
fn path_start(href: &str) -> usize {
    let Some(colon) = href.find(':') else {
        return 0;
    };
    let scheme = &href[..colon];
    let is_scheme = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    match href[colon..].strip_prefix("://") {
        Some(rest) if is_scheme => colon + 3 + rest.find('/').unwrap_or(rest.len()),
        _ => 0,
    }
}

/// What one href shows of its server's style (see [`HrefStyle`]).
fn evidence(href: &str) -> u8 {
    let href = href.trim();
    let path = &href.as_bytes()[path_start(href)..];
    let mut encoded = false;
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            let hex = path.get(i + 1..i + 3).and_then(|h| {
                std::str::from_utf8(h)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            });
            match hex {
                None => return STYLE_RAW,
                Some(c) => {
                    encoded |=
                        !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
                }
            }
            i += 3;
            continue;
        }
        let needs_escape = matches!(
            b,
            b' ' | b'"'
                | b'#'
                | b'<'
                | b'>'
                | b'?'
                | b'`'
                | b'{'
                | b'}'
                | b'\\'
                | b'^'
                | b'|'
                | b'['
                | b']'
        );
        if b >= 0x80 || b.is_ascii_control() || needs_escape {
            return STYLE_RAW;
        }
        i += 1;
    }
    if encoded {
        STYLE_ENCODED
    } else {
        STYLE_UNKNOWN
    }
}

/// Characters a literal path is escaped in (a segment's set, but `/` stays).
const LITERAL: &AsciiSet = &crate::urls::SEGMENT.remove(b'/');

/// An href written literally, percent-encoded so that decoding it once gives it back.
fn literal(href: &str) -> String {
    let href = href.trim();
    let at = path_start(href);
    format!(
        "{}{}",
        &href[..at],
        utf8_percent_encode(&href[at..], LITERAL)
    )
}

/// Places an href the way its server writes them: literally once the server has shown
/// it does not percent-encode, else percent-decoded once (RFC 4918).
pub(crate) fn place_styled(
    base: &Base,
    href: &str,
    request: &Url,
    dir: &RemotePath,
    style: u8,
) -> Listed {
    if style == STYLE_RAW || evidence(href) == STYLE_RAW {
        place(base, &literal(href), request, dir)
    } else {
        place(base, href, request, dir)
    }
}

/// True when an href reads two ways (it holds escapes and the style is not known).
fn ambiguous(href: &str, style: u8) -> bool {
    style == STYLE_UNKNOWN && href.contains('%') && evidence(href) == STYLE_UNKNOWN
}

/// `/a/b%20c`: an absolute path with nothing a URL parser would change.
fn is_plain_absolute_path(href: &str) -> bool {
    href.starts_with('/')
        && !href.starts_with("//")
        && !href
            .bytes()
            .any(|b| matches!(b, b'\\' | b'?' | b'#') || b.is_ascii_control())
        && !href.split('/').any(|seg| {
            matches!(seg, "." | "..")
                || seg.eq_ignore_ascii_case("%2e")
                || seg.eq_ignore_ascii_case("%2e%2e")
                || seg.eq_ignore_ascii_case(".%2e")
                || seg.eq_ignore_ascii_case("%2e.")
        })
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
        // Also the way in of `exists`, so of every write's and delete's first look.
        self.check_addressable(path).await?;
        let resp = self.propfind(path, 0, false).await?;
        let request = resp.url().clone();
        let mut rd = reader(resp);
        let mut found = None;
        while let Some(raw) = rd.next_response().await.map_err(|e| parse_error(path, e))? {
            let style = self.href_style.learn(&raw.href);
            // The path asked for is known: either reading of an href may name it.
            let itself = |s| place_styled(&self.base, &raw.href, &request, path, s);
            if found.is_none()
                && !raw.bad_status
                && (itself(style) == Listed::Itself || itself(STYLE_RAW) == Listed::Itself)
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
        self.learned.listed(&found);
        if found.is_file() && found.etag.is_none() {
            let resp = self.send(self.req(Method::HEAD, path, false)).await?;
            if resp.status().is_success() {
                self.learned.head(resp.headers());
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
        self.check_addressable(dir).await?;
        let resp = match self.propfind(dir, 1, true).await {
            Ok(r) => r,
            // Some servers (XRootD 5.5.3) answer the collection form `FILE/` with an
            // error: asked without the slash, a file is a file.
            Err(e @ Error::Protocol { .. }) if !dir.is_root() => {
                return match self.op_stat(dir).await {
                    Ok(found) if found.is_file() => Err(Error::conflict(
                        dir,
                        "it is a file, not a directory",
                        "use 'cta-data stat' for a file",
                    )),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let request = resp.url().clone();
        // The body is parsed on a thread of its own, with the blocking XML reader (half
        // the CPU of the async one): a pump hands it the body's chunks, it hands back
        // entries in batches, and a batch goes out whenever the parser would wait for the
        // network, so the first entries never wait for the last ones.
        let body = checked_body(resp, dir, None, self.cfg.idle_timeout);
        let (chunk_tx, chunk_rx) = tokio::sync::mpsc::channel(16);
        let broke: Arc<Mutex<Option<Error>>> = Arc::default();
        tokio::spawn(pump(body, chunk_tx, broke.clone()));
        let (batch_tx, mut batch_rx) = tokio::sync::mpsc::channel(4);
        let done = Arc::new(AtomicBool::new(false));
        let job = ParseJob {
            base: self.base.clone(),
            style: self.href_style.clone(),
            request,
            dir: dir.clone(),
            broke,
            done: done.clone(),
        };
        tokio::task::spawn_blocking(move || job.run(chunk_rx, batch_tx));
        // The first batch says whether `dir` is a directory at all: that is the outer error.
        let mut first = batch_rx.recv().await.unwrap_or_default();
        if let Some(Err(_)) = first.first() {
            return Err(first
                .swap_remove(0)
                .expect_err("the first item is an error"));
        }
        let dir = dir.clone();
        let rest = futures::stream::unfold(Some(batch_rx), move |rx| {
            let done = done.clone();
            let dir = dir.clone();
            async move {
                let mut rx = rx?;
                match rx.recv().await {
                    Some(b) => Some((b, Some(rx))),
                    // The parser stopped without finishing (it panicked): never a short
                    // listing passed off as whole.
                    None if !done.load(Ordering::Acquire) => Some((
                        vec![Err(Error::internal(format!(
                            "the parser of the listing of {dir} stopped early"
                        )))],
                        None,
                    )),
                    None => None,
                }
            }
        })
        .flat_map(futures::stream::iter);
        Ok(futures::stream::iter(first).chain(rest).boxed())
    }
}

/// Hands the chunks of a listing's body to its parser, checking that no more than
/// [`crate::propfind::MAX_TAG_GAP`] bytes go by without markup; a failure of the body is
/// kept in `broke` (with its kind: a stall or a reset is temporary) for the parser to report.
async fn pump(
    body: ctadata_core::ByteStream,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    broke: Arc<Mutex<Option<Error>>>,
) {
    let mut body = body.fuse();
    let mut gap = TagGap::default();
    let mut next = body.next().await;
    while let Some(chunk) = next.take() {
        // Chunks that are already here travel together (fewer wake-ups of the parser);
        // none waits for the network.
        let chunk = chunk.map(|first| {
            let mut joined: Option<bytes::BytesMut> = None;
            while joined.as_ref().map_or(first.len(), |j| j.len()) < PUMP_BLOCK {
                match body.next().now_or_never() {
                    Some(Some(Ok(more))) => joined
                        .get_or_insert_with(|| bytes::BytesMut::from(&first[..]))
                        .extend_from_slice(&more),
                    // An error or the end: handled in the next round.
                    Some(other) => {
                        next = other;
                        break;
                    }
                    None => break,
                }
            }
            joined.map_or(first, bytes::BytesMut::freeze)
        });
        let item = match chunk {
            Ok(c) if gap.accept(&c) => Ok(c),
            Ok(_) => Err(too_long()),
            Err(e) => {
                let msg = e.to_string();
                if let Ok(mut b) = broke.lock() {
                    *b = Some(e);
                }
                Err(std::io::Error::other(msg))
            }
        };
        let stop = item.is_err();
        if tx.send(item).await.is_err() || stop {
            return;
        }
        if next.is_none() && !body.is_done() {
            next = body.next().await;
        }
    }
}

/// How many bytes the pump gathers into one hand-over when they are already there.
const PUMP_BLOCK: usize = 256 * 1024;

/// What the parsing thread of one listing needs.
struct ParseJob {
    base: Base,
    style: Arc<HrefStyle>,
    request: Url,
    dir: RemotePath,
    broke: Arc<Mutex<Option<Error>>>,
    /// Set when the parser has said all it will (the whole listing, or its error).
    done: Arc<AtomicBool>,
}

/// The most responses held back while their href reads two ways (more are read the
/// RFC's way, percent-decoded).
const MAX_HELD: usize = 10_000;

/// Entries handed on at once (fewer when the network keeps the parser waiting).
const BATCH: usize = 256;

type Batch = Vec<Result<Entry>>;

impl ParseJob {
    fn run(
        self,
        chunks: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
        out: tokio::sync::mpsc::Sender<Batch>,
    ) {
        let pending: Rc<RefCell<Batch>> = Rc::default();
        let feed = Feed {
            chunks,
            cur: Bytes::new(),
            pending: pending.clone(),
            out: out.clone(),
        };
        let mut rd = MultistatusReader::new(feed);
        let mut itself = None;
        let mut children = 0usize;
        // Responses whose href reads two ways, until the server's style is known.
        let mut held: Vec<RawResponse> = Vec::new();
        let mut ready: std::collections::VecDeque<RawResponse> = Default::default();
        let mut ended = false;
        loop {
            let next = match ready.pop_front() {
                Some(raw) => Ok(Some(raw)),
                None => rd.next_response_blocking(),
            };
            let next = match next {
                Ok(Some(raw)) => {
                    let style = self.style.learn(&raw.href);
                    if !ended && ambiguous(&raw.href, style) && held.len() < MAX_HELD {
                        held.push(raw);
                        continue;
                    }
                    if style != STYLE_UNKNOWN && !held.is_empty() {
                        ready.extend(held.drain(..));
                    }
                    Ok(Some((raw, style)))
                }
                Ok(None) if !held.is_empty() => {
                    ended = true;
                    // Still unknown at the end: an href that reads two ways is kept only
                    // where both readings agree.
                    for raw in held.drain(..) {
                        let encoded = place(&self.base, &raw.href, &self.request, &self.dir);
                        let literal =
                            place(&self.base, &literal(&raw.href), &self.request, &self.dir);
                        if encoded == literal {
                            ready.push_back(raw);
                        } else {
                            tracing::warn!(dir = %self.dir, href = %raw.href, "skipping a listing entry: the server's href names two different files (percent-decoded or as written) and nothing in its answer says which");
                        }
                    }
                    // Held ones are decided now: taken as encoded (both readings agree).
                    continue;
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let item = match next {
                Ok(Some((raw, style))) => {
                    match classify(
                        &self.base,
                        raw,
                        &self.request,
                        &self.dir,
                        &mut itself,
                        style,
                    ) {
                        Some(e) => {
                            children += 1;
                            Some(Ok(e))
                        }
                        // The collection itself is a file: not a directory (the outer error).
                        None if itself == Some(false) && children == 0 => {
                            Some(Err(Error::conflict(
                                &self.dir,
                                "it is a file, not a directory",
                                "use 'cta-data stat' for a file",
                            )))
                        }
                        None => None,
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // A broken body explains a parse error better than the parser can.
                    let broke = self.broke.lock().ok().and_then(|mut b| b.take());
                    Some(Err(broke.unwrap_or_else(|| parse_error(&self.dir, e))))
                }
            };
            let Some(item) = item else { continue };
            let last = item.is_err();
            let full = {
                let mut p = pending.borrow_mut();
                p.push(item);
                p.len() >= BATCH
            };
            if full || last {
                let batch = std::mem::take(&mut *pending.borrow_mut());
                if last {
                    self.done.store(true, Ordering::Release);
                }
                if out.blocking_send(batch).is_err() || last {
                    return;
                }
            }
        }
        let batch = std::mem::take(&mut *pending.borrow_mut());
        self.done.store(true, Ordering::Release);
        if !batch.is_empty() {
            let _ = out.blocking_send(batch);
        }
    }
}

/// A listing's body as a blocking reader for the parser: chunks from the pump, and before
/// each wait for the network, the entries parsed so far go out.
struct Feed {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
    pending: Rc<RefCell<Batch>>,
    out: tokio::sync::mpsc::Sender<Batch>,
}

impl std::io::Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let have = std::io::BufRead::fill_buf(self)?;
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        std::io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl std::io::BufRead for Feed {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.cur.is_empty() {
            let next = match self.chunks.try_recv() {
                Ok(c) => Some(c),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    let batch = std::mem::take(&mut *self.pending.borrow_mut());
                    if !batch.is_empty() && self.out.blocking_send(batch).is_err() {
                        return Err(std::io::Error::other("the listing was dropped"));
                    }
                    self.chunks.blocking_recv()
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => None,
            };
            match next {
                Some(Ok(c)) => self.cur = c,
                Some(Err(e)) => return Err(e),
                None => return Ok(&[]),
            }
        }
        Ok(&self.cur)
    }

    fn consume(&mut self, amt: usize) {
        bytes::Buf::advance(&mut self.cur, amt);
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
    style: u8,
) -> Option<Entry> {
    if raw.bad_status {
        return None;
    }
    match place_styled(base, &raw.href, request, dir, style) {
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
    fn raw_hrefs_are_told_apart_and_read_literally() {
        assert_eq!(evidence("/pnfs/a/a#b.txt"), STYLE_RAW);
        assert_eq!(evidence("/pnfs/a/q?x"), STYLE_RAW);
        assert_eq!(evidence("http://door:80/pnfs/a b"), STYLE_RAW);
        assert_eq!(evidence("/pnfs/\u{e9}"), STYLE_RAW);
        assert_eq!(evidence("/pnfs/100%"), STYLE_RAW);
        assert_eq!(evidence("/pnfs/a%20b"), STYLE_ENCODED);
        assert_eq!(evidence("https://[::1]:2880/pnfs/a%CE%B5"), STYLE_ENCODED);
        assert_eq!(evidence("/pnfs/p%41.txt"), STYLE_UNKNOWN);
        assert_eq!(evidence("/pnfs/plus+.txt"), STYLE_UNKNOWN);
        assert!(ambiguous("/pnfs/p%41.txt", STYLE_UNKNOWN));
        assert!(!ambiguous("/pnfs/p%41.txt", STYLE_RAW));
        assert_eq!(
            literal("https://door:2880/pnfs/a#b %41"),
            "https://door:2880/pnfs/a%23b%20%2541"
        );
        let base = Base::new("https://door:2880/pnfs/").unwrap();
        let dir = rp("a");
        let req = base.url_for(&dir, true);
        let at = |h: &str, s| place_styled(&base, h, &req, &dir, s);
        assert_eq!(
            at("/pnfs/a/a#b.txt", STYLE_UNKNOWN),
            Listed::Child(rp("a/a#b.txt"))
        );
        assert_eq!(at("/pnfs/a/q?x", STYLE_ENCODED), Listed::Child(rp("a/q?x")));
        assert_eq!(at("/pnfs/a/p%41", STYLE_RAW), Listed::Child(rp("a/p%41")));
        assert_eq!(at("/pnfs/a/p%41", STYLE_ENCODED), Listed::Child(rp("a/pA")));
        assert_eq!(at("/pnfs/a/../../x y", STYLE_RAW), Listed::Foreign);
        assert_eq!(
            at("http://door:2880/pnfs/a/x#y", STYLE_RAW),
            Listed::Foreign
        );
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
