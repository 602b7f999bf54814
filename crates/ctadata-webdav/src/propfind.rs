//! PROPFIND: the request body cta-data sends and a streaming parser of `207 Multi-Status`.
//!
//! Namespaces are matched by URI, never by prefix; of several `propstat` blocks only the
//! `200` one counts; each `<response>` is handed to the caller as soon as it ends, so a
//! listing of 100,000 entries never sits in memory as XML.

use std::time::SystemTime;

use ctadata_core::{Checksum, Locality};
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;
use tokio::io::AsyncBufRead;

use crate::digest::parse_digest;

const DAV: &[u8] = b"DAV:";
const DCACHE: &[u8] = b"http://www.dcache.org/2013/webdav";
const SRM: &[u8] = b"http://srm.lbl.gov/StorageResourceManager";

/// The PROPFIND body: exactly the properties cta-data uses (never `allprop`).
pub const PROPFIND_BODY: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<d:propfind xmlns:d="DAV:" xmlns:dc="http://www.dcache.org/2013/webdav" xmlns:srm="http://srm.lbl.gov/StorageResourceManager">"#,
    r#"<d:prop><d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/><dc:Checksums/><srm:FileLocality/></d:prop>"#,
    r#"</d:propfind>"#
);

/// One `<response>` of a multistatus answer, with the properties of its `200` propstat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawResponse {
    /// The href as sent (still percent-encoded).
    pub href: String,
    /// `resourcetype` holds `collection`.
    pub is_collection: bool,
    /// `getcontentlength`.
    pub size: Option<u64>,
    /// `getlastmodified`.
    pub mtime: Option<SystemTime>,
    /// `getetag`.
    pub etag: Option<String>,
    /// dCache's `Checksums`.
    pub checksums: Vec<Checksum>,
    /// SRM `FileLocality`.
    pub locality: Option<Locality>,
    /// A response-level status that is not 200 (the entry is then unusable).
    pub bad_status: bool,
}

/// Why a multistatus body could not be read.
#[derive(Debug)]
pub struct ParseError(pub String);

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum Field {
    #[default]
    None,
    Href,
    Status,
    ResponseStatus,
    Length,
    Modified,
    Etag,
    Checksums,
    Locality,
}

#[derive(Default)]
struct Props {
    is_collection: bool,
    size: Option<u64>,
    mtime: Option<SystemTime>,
    etag: Option<String>,
    checksums: Vec<Checksum>,
    locality: Option<Locality>,
}

fn status_ok(s: &str) -> bool {
    // "HTTP/1.1 200 OK"
    s.split_whitespace()
        .nth(1)
        .is_some_and(|code| code == "200")
}

/// Resolves the XML entities quick-xml reports separately.
fn resolve_entity(name: &str) -> Option<String> {
    Some(match name {
        "amp" => "&".into(),
        "lt" => "<".into(),
        "gt" => ">".into(),
        "quot" => "\"".into(),
        "apos" => "'".into(),
        n if n.starts_with("#x") || n.starts_with("#X") => {
            char::from_u32(u32::from_str_radix(&n[2..], 16).ok()?)?.to_string()
        }
        n if n.starts_with('#') => char::from_u32(n[1..].parse().ok()?)?.to_string(),
        _ => return None,
    })
}

/// The longest text one property (or href) may have: more is not a listing.
pub const MAX_FIELD_TEXT: usize = 64 * 1024;

/// The deepest element nesting accepted (a listing needs about 8).
pub const MAX_DEPTH: usize = 64;

/// The most bytes accepted between two `<`: bounds the size of any one XML event, so a
/// hostile answer (a gigabyte of text, a tag with endless attributes) cannot fill memory.
pub const MAX_TAG_GAP: usize = 1 << 20;

/// Reads a multistatus body one `<response>` at a time: the pull form of the parser, for
/// listings yielded as a stream.
pub struct MultistatusReader<R> {
    xml: NsReader<R>,
    buf: Vec<u8>,
    st: State,
}

/// Where the parser is in the document, apart from the bytes: shared by the async and the
/// blocking reader.
#[derive(Default)]
struct State {
    count: usize,
    depth: usize,
    saw_multistatus: bool,
    /// `</multistatus>` was read: the answer is complete.
    closed: bool,
    in_response: bool,
    in_propstat: bool,
    in_resourcetype: bool,
    field: Field,
    text: String,
    href: String,
    resp_bad: bool,
    good: Props,
    cur: Props,
    cur_status: String,
    finished: bool,
}

/// What one XML event meant.
enum Step {
    /// Nothing to hand out yet.
    More,
    /// A `<response>` ended.
    Response(RawResponse),
    /// The input ended.
    Eof,
}

impl State {
    fn push_text(&mut self, t: &str) -> Result<(), ParseError> {
        if self.text.len() + t.len() > MAX_FIELD_TEXT {
            return Err(ParseError(format!(
                "a property of more than {MAX_FIELD_TEXT} bytes"
            )));
        }
        self.text.push_str(t);
        Ok(())
    }

    /// Takes in one event, with its element's namespace.
    fn handle(&mut self, ns: ResolveResult<'_>, ev: Event<'_>) -> Result<Step, ParseError> {
        let ns = match ns {
            ResolveResult::Bound(Namespace(n)) if n == DAV => Ns::Dav,
            ResolveResult::Bound(Namespace(n)) if n == DCACHE => Ns::Dcache,
            ResolveResult::Bound(Namespace(n)) if n == SRM => Ns::Srm,
            _ => Ns::Other,
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                if !empty {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(ParseError(format!(
                            "elements nested more than {MAX_DEPTH} deep"
                        )));
                    }
                }
                let local = e.local_name();
                let local = local.as_ref();
                if ns == Ns::Dav {
                    match local {
                        b"multistatus" => self.saw_multistatus = true,
                        b"response" => {
                            self.in_response = true;
                            self.href.clear();
                            self.resp_bad = false;
                            self.good = Props::default();
                        }
                        b"href" if self.in_response && !self.in_propstat => {
                            self.field = Field::Href
                        }
                        b"propstat" if self.in_response => {
                            self.in_propstat = true;
                            self.cur = Props::default();
                            self.cur_status.clear();
                        }
                        b"status" if self.in_propstat => self.field = Field::Status,
                        b"status" if self.in_response => self.field = Field::ResponseStatus,
                        b"resourcetype" if self.in_propstat => self.in_resourcetype = !empty,
                        b"collection" if self.in_resourcetype => self.cur.is_collection = true,
                        b"getcontentlength" if self.in_propstat => self.field = Field::Length,
                        b"getlastmodified" if self.in_propstat => self.field = Field::Modified,
                        b"getetag" if self.in_propstat => self.field = Field::Etag,
                        _ => {}
                    }
                } else if ns == Ns::Dcache && local == b"Checksums" && self.in_propstat {
                    self.field = Field::Checksums;
                } else if ns == Ns::Srm && local == b"FileLocality" && self.in_propstat {
                    self.field = Field::Locality;
                }
                if empty {
                    // An empty element ends at once: nothing to collect.
                    if self.field != Field::None {
                        finish_field(
                            self.field,
                            "",
                            &mut self.href,
                            &mut self.cur,
                            &mut self.cur_status,
                            &mut self.resp_bad,
                        );
                        self.field = Field::None;
                    }
                } else {
                    self.text.clear();
                }
            }
            Event::Text(t) if self.field != Field::None => {
                let t = t
                    .decode()
                    .map_err(|e| ParseError(format!("bad text: {e}")))?;
                self.push_text(&t)?;
            }
            Event::CData(t) if self.field != Field::None => {
                self.push_text(&String::from_utf8_lossy(&t))?;
            }
            Event::GeneralRef(r) if self.field != Field::None => {
                let name = r
                    .decode()
                    .map_err(|e| ParseError(format!("bad entity: {e}")))?;
                match resolve_entity(&name) {
                    Some(s) => self.push_text(&s)?,
                    None => return Err(ParseError(format!("unknown entity &{name};"))),
                }
            }
            Event::End(ref e) => {
                self.depth = self.depth.saturating_sub(1);
                let local = e.local_name();
                let local = local.as_ref();
                if self.field != Field::None {
                    finish_field(
                        self.field,
                        &self.text,
                        &mut self.href,
                        &mut self.cur,
                        &mut self.cur_status,
                        &mut self.resp_bad,
                    );
                    self.field = Field::None;
                    self.text.clear();
                }
                if ns == Ns::Dav {
                    match local {
                        b"multistatus" => self.closed = true,
                        b"resourcetype" => self.in_resourcetype = false,
                        b"propstat" if self.in_propstat => {
                            self.in_propstat = false;
                            // A propstat without status is taken as 200 (lenient servers).
                            if self.cur_status.is_empty() || status_ok(&self.cur_status) {
                                merge(&mut self.good, std::mem::take(&mut self.cur));
                            }
                        }
                        b"response" if self.in_response => {
                            self.in_response = false;
                            let g = std::mem::take(&mut self.good);
                            self.count += 1;
                            return Ok(Step::Response(RawResponse {
                                href: std::mem::take(&mut self.href),
                                is_collection: g.is_collection,
                                size: g.size,
                                mtime: g.mtime,
                                etag: g.etag,
                                checksums: g.checksums,
                                locality: g.locality,
                                bad_status: self.resp_bad,
                            }));
                        }
                        _ => {}
                    }
                }
            }
            Event::Eof => return Ok(Step::Eof),
            _ => {}
        }
        Ok(Step::More)
    }

    /// Checks, at the end of the input, that the document was whole.
    fn finish(&mut self) -> Result<Option<RawResponse>, ParseError> {
        self.finished = true;
        if !self.saw_multistatus {
            return Err(ParseError(
                "the answer is not a WebDAV multistatus document".into(),
            ));
        }
        if self.in_response {
            return Err(ParseError(
                "the answer ended in the middle of a <response>".into(),
            ));
        }
        if !self.closed {
            // Cut between two responses: a shorter listing must never pass for the whole.
            return Err(ParseError(
                "the answer ended before </multistatus>: the listing is incomplete".into(),
            ));
        }
        Ok(None)
    }
}

impl<R> MultistatusReader<R> {
    /// A reader over a multistatus body.
    pub fn new(reader: R) -> Self {
        let mut xml = NsReader::from_reader(reader);
        xml.config_mut().trim_text(false);
        Self {
            xml,
            buf: Vec::with_capacity(4096),
            st: State::default(),
        }
    }

    /// How many `<response>` elements were read so far.
    pub fn count(&self) -> usize {
        self.st.count
    }

    fn malformed(&self, e: quick_xml::Error) -> ParseError {
        let at = self.xml.buffer_position();
        ParseError(format!("malformed XML at byte {at}: {e}"))
    }
}

impl<R: AsyncBufRead + Unpin> MultistatusReader<R> {
    /// The next `<response>`, or `None` at the end of a complete document.
    pub async fn next_response(&mut self) -> Result<Option<RawResponse>, ParseError> {
        if self.st.finished {
            return Ok(None);
        }
        loop {
            self.buf.clear();
            let (ns, ev) = match self.xml.read_resolved_event_into_async(&mut self.buf).await {
                Ok(x) => x,
                Err(e) => {
                    let at = self.xml.buffer_position();
                    return Err(ParseError(format!("malformed XML at byte {at}: {e}")));
                }
            };
            match self.st.handle(ns, ev)? {
                Step::More => {}
                Step::Response(r) => return Ok(Some(r)),
                Step::Eof => return self.st.finish(),
            }
        }
    }
}

impl<R: std::io::BufRead> MultistatusReader<R> {
    /// [`MultistatusReader::next_response`] from a blocking reader: the fast way for a
    /// large listing, parsed on a thread of its own.
    pub fn next_response_blocking(&mut self) -> Result<Option<RawResponse>, ParseError> {
        if self.st.finished {
            return Ok(None);
        }
        loop {
            self.buf.clear();
            let (ns, ev) = match self.xml.read_resolved_event_into(&mut self.buf) {
                Ok(x) => x,
                Err(e) => return Err(self.malformed(e)),
            };
            match self.st.handle(ns, ev)? {
                Step::More => {}
                Step::Response(r) => return Ok(Some(r)),
                Step::Eof => return self.st.finish(),
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ns {
    Dav,
    Dcache,
    Srm,
    Other,
}

/// Reads a multistatus body, calling `on_response` for each `<response>` in order; returns
/// how many there were.
pub async fn parse_multistatus<R, F>(reader: R, mut on_response: F) -> Result<usize, ParseError>
where
    R: AsyncBufRead + Unpin,
    F: FnMut(RawResponse),
{
    let mut r = MultistatusReader::new(reader);
    while let Some(resp) = r.next_response().await? {
        on_response(resp);
    }
    Ok(r.count())
}

/// Counts the bytes since the last `<` across the chunks of a body.
#[derive(Debug, Default, Clone)]
pub struct TagGap {
    gap: usize,
}

impl TagGap {
    /// Takes in the next chunk; false when more than [`MAX_TAG_GAP`] bytes went by without
    /// a `<`.
    pub fn accept(&mut self, chunk: &[u8]) -> bool {
        let mut at = 0usize;
        for i in memchr::memchr_iter(b'<', chunk) {
            if self.gap + (i - at) > MAX_TAG_GAP {
                return false;
            }
            self.gap = 0;
            at = i + 1;
        }
        self.gap += chunk.len() - at;
        self.gap <= MAX_TAG_GAP
    }
}

/// Passes a byte stream on, failing it when more than [`MAX_TAG_GAP`] bytes go by without
/// a `<`: no single XML event of a listing can then outgrow that bound.
pub fn limit_tag_gap<S, E>(stream: S) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use futures::StreamExt;
    let mut gap = TagGap::default();
    stream.map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        if gap.accept(&chunk) {
            Ok(chunk)
        } else {
            Err(too_long())
        }
    })
}

/// The error of a body with too much text between two tags.
pub fn too_long() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("more than {MAX_TAG_GAP} bytes without markup: not a listing"),
    )
}

fn finish_field(
    field: Field,
    text: &str,
    href: &mut String,
    cur: &mut Props,
    status: &mut String,
    resp_bad: &mut bool,
) {
    let t = text.trim();
    match field {
        Field::Href => *href = t.to_string(),
        Field::Status => *status = t.to_string(),
        Field::ResponseStatus => *resp_bad = !status_ok(t),
        Field::Length => cur.size = t.parse().ok(),
        Field::Modified => cur.mtime = httpdate::parse_http_date(t).ok(),
        Field::Etag => cur.etag = (!t.is_empty()).then(|| t.to_string()),
        Field::Checksums => cur.checksums = parse_digest(t),
        Field::Locality => cur.locality = Locality::parse(t),
        Field::None => {}
    }
}

fn merge(into: &mut Props, from: Props) {
    into.is_collection |= from.is_collection;
    if from.size.is_some() {
        into.size = from.size;
    }
    if from.mtime.is_some() {
        into.mtime = from.mtime;
    }
    if from.etag.is_some() {
        into.etag = from.etag;
    }
    if !from.checksums.is_empty() {
        into.checksums = from.checksums;
    }
    if from.locality.is_some() {
        into.locality = from.locality;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(xml: &str) -> Result<Vec<RawResponse>, ParseError> {
        let mut v = Vec::new();
        parse_multistatus(tokio::io::BufReader::new(xml.as_bytes()), |r| v.push(r)).await?;
        Ok(v)
    }

    #[tokio::test]
    async fn dcache_style_answer() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<d:multistatus xmlns:d="DAV:" xmlns:ns1="http://www.dcache.org/2013/webdav" xmlns:ns2="http://srm.lbl.gov/StorageResourceManager">
<d:response><d:href>/lst/DL1/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype>
<d:getlastmodified>Thu, 14 Nov 2024 10:00:00 GMT</d:getlastmodified></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/lst/DL1/run%201&amp;2.h5</d:href>
<d:propstat><d:prop><d:resourcetype/><d:getcontentlength>1234</d:getcontentlength><d:getetag>"0000A"</d:getetag>
<ns1:Checksums>adler32=0a1b2c3d</ns1:Checksums><ns2:FileLocality>NEARLINE</ns2:FileLocality></d:prop>
<d:status>HTTP/1.1 200 OK</d:status></d:propstat>
<d:propstat><d:prop><d:getcontentlength>999</d:getcontentlength></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
</d:response></d:multistatus>"#;
        let v = parse(xml).await.unwrap();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_collection);
        assert!(v[0].mtime.is_some());
        assert_eq!(v[1].href, "/lst/DL1/run%201&2.h5");
        assert!(!v[1].is_collection);
        assert_eq!(v[1].size, Some(1234), "only the 200 propstat counts");
        assert_eq!(v[1].etag.as_deref(), Some("\"0000A\""));
        assert_eq!(v[1].checksums[0].value, "0a1b2c3d");
        assert_eq!(v[1].locality, Some(Locality::Nearline));
    }

    #[tokio::test]
    async fn namespaces_by_uri_not_prefix() {
        // Default namespace and odd prefixes (as nginx and Apache write them).
        let xml = r#"<multistatus xmlns="DAV:"><response><href>/a/</href><propstat><prop>
<resourcetype><collection/></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat></response>
<response><href>/a/x</href><propstat><prop><lp1:getcontentlength xmlns:lp1="DAV:">7</lp1:getcontentlength>
<fake:getcontentlength xmlns:fake="urn:other">99</fake:getcontentlength></prop>
<status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;
        let v = parse(xml).await.unwrap();
        assert_eq!(v[1].size, Some(7));
    }

    #[tokio::test]
    async fn malformed_and_truncated_answers_are_errors() {
        assert!(
            parse("<d:multistatus xmlns:d=\"DAV:\"><d:response><d:href>/x</d:hr")
                .await
                .is_err()
        );
        assert!(parse("<html><body>login</body></html>").await.is_err());
        assert!(parse(
            "<d:multistatus xmlns:d=\"DAV:\"><d:response><d:href>/x</d:href></d:multistatus>"
        )
        .await
        .is_err());
    }

    #[tokio::test]
    async fn hostile_answers_are_bounded() {
        let big = format!(
            "<d:multistatus xmlns:d=\"DAV:\"><d:response><d:href>{}</d:href></d:response></d:multistatus>",
            "&amp;".repeat(MAX_FIELD_TEXT + 1)
        );
        let Err(e) = parse(&big).await else {
            panic!("a property over the limit was accepted")
        };
        assert!(e.0.contains("property of more than"), "{}", e.0);
        let deep = format!(
            "<d:multistatus xmlns:d=\"DAV:\">{}",
            "<x>".repeat(MAX_DEPTH + 1)
        );
        let Err(e) = parse(&deep).await else {
            panic!("nesting over the limit was accepted")
        };
        assert!(e.0.contains("nested"), "{}", e.0);
    }

    #[tokio::test]
    async fn text_without_markup_is_cut_off() {
        use futures::StreamExt;
        let ok: Vec<std::io::Result<bytes::Bytes>> =
            (0..3).map(|_| Ok(bytes::Bytes::from("<a>"))).collect();
        let n = limit_tag_gap(futures::stream::iter(ok)).count().await;
        assert_eq!(n, 3);
        // The gap spans chunks: two half-limit chunks pass, the third does not.
        let half = bytes::Bytes::from(vec![b'x'; MAX_TAG_GAP / 2 + 1]);
        let chunks = vec![
            Ok::<_, std::io::Error>(bytes::Bytes::from("<a>")),
            Ok(half.clone()),
            Ok(half),
        ];
        let out: Vec<_> = limit_tag_gap(futures::stream::iter(chunks)).collect().await;
        assert!(out[0].is_ok() && out[1].is_ok());
        assert!(out[2].is_err());
        // Inside one chunk too.
        let mut one = b"<a>".to_vec();
        one.extend(std::iter::repeat_n(b'x', MAX_TAG_GAP + 1));
        one.extend(b"<b>");
        let out: Vec<_> = limit_tag_gap(futures::stream::iter(vec![Ok::<_, std::io::Error>(
            bytes::Bytes::from(one),
        )]))
        .collect()
        .await;
        assert!(out[0].is_err());
    }

    #[tokio::test]
    async fn a_huge_listing_streams() {
        let mut xml = String::from("<d:multistatus xmlns:d=\"DAV:\">");
        for i in 0..20_000 {
            xml.push_str(&format!("<d:response><d:href>/d/f{i}</d:href><d:propstat><d:prop><d:getcontentlength>{i}</d:getcontentlength></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"));
        }
        xml.push_str("</d:multistatus>");
        let mut n = 0u64;
        let mut sum = 0u64;
        parse_multistatus(tokio::io::BufReader::new(xml.as_bytes()), |r| {
            n += 1;
            sum += r.size.unwrap();
        })
        .await
        .unwrap();
        assert_eq!(n, 20_000);
        assert_eq!(sum, (0..20_000u64).sum::<u64>());
    }
}
