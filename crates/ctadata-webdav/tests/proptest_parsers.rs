//! Property tests of the parsers of what a WebDAV server sends: the PROPFIND multistatus
//! parser (`propfind::parse_multistatus`, its pull form `MultistatusReader`, its limits
//! `MAX_FIELD_TEXT`, `MAX_DEPTH` and `limit_tag_gap`) and the `Digest` header parser
//! (`digest::parse_digest`).
//!
//! Each property runs 256 cases by default (`PROPTEST_CASES` changes that); failures are
//! not persisted to files. Memory is measured with a counting allocator that keeps one tally
//! per thread, so tests running in parallel do not disturb each other's numbers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::io;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use ctadata_core::{Checksum, ChecksumAlgorithm, Locality, RemotePath};
use ctadata_webdav::digest::parse_digest;
use ctadata_webdav::propfind::{
    limit_tag_gap, parse_multistatus, MultistatusReader, RawResponse, MAX_DEPTH, MAX_FIELD_TEXT,
    MAX_TAG_GAP,
};
use ctadata_webdav::urls::Base;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as ProptestConfig;
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

// ----- harness -----------------------------------------------------------------------------

/// `cases` cases unless `PROPTEST_CASES` says otherwise; nothing written to the source tree.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// How long one parse of a few KiB may take, even in a debug build on a busy machine.
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Runs `f` on its own thread: its value, or why not (a panic, or no answer in time).
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIME_LIMIT) {
        Ok(v) => {
            let _ = handle.join();
            Ok(v)
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("did not finish within {} s", TIME_LIMIT.as_secs()))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let payload = handle.join().err();
            let msg = payload
                .as_ref()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        }
    }
}

/// What one parse gave: the responses and the count the parser returned, or its error.
type Parsed = Result<(Vec<RawResponse>, usize), String>;

fn parse_reader<R: AsyncBufRead + Unpin>(reader: R) -> Parsed {
    let mut out = Vec::new();
    let n =
        futures::executor::block_on(parse_multistatus(reader, |r| out.push(r))).map_err(|e| e.0)?;
    Ok((out, n))
}

fn parse(doc: &[u8]) -> Parsed {
    parse_reader(doc)
}

/// Parses with the pull form, one `next_response` at a time.
fn parse_pull(doc: &[u8]) -> Parsed {
    futures::executor::block_on(async {
        let mut r = MultistatusReader::new(doc);
        let mut out = Vec::new();
        while let Some(resp) = r.next_response().await.map_err(|e| e.0)? {
            out.push(resp);
        }
        Ok((out, r.count()))
    })
}

/// Parses a body arriving as these chunks the way the client reads listings: the tag-gap
/// limit on the byte stream, a 64 KiB buffer, the pull form.
fn parse_as_client<I>(chunks: I) -> Parsed
where
    I: IntoIterator<Item = Bytes>,
{
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<Bytes, io::Error>));
    let body = tokio_util::io::StreamReader::new(limit_tag_gap(stream));
    let reader = tokio::io::BufReader::with_capacity(64 * 1024, body);
    futures::executor::block_on(async {
        let mut r = MultistatusReader::new(reader);
        let mut out = Vec::new();
        while let Some(resp) = r.next_response().await.map_err(|e| e.0)? {
            out.push(resp);
        }
        Ok((out, r.count()))
    })
}

/// `doc` cut into chunks of the given sizes (used in turn).
fn chunked(doc: &[u8], sizes: &[usize]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < doc.len() {
        let n = sizes[i % sizes.len()].max(1).min(doc.len() - at);
        out.push(Bytes::copy_from_slice(&doc[at..at + n]));
        at += n;
        i += 1;
    }
    out
}

/// Parses on another thread: no panic and an answer within [`TIME_LIMIT`], or a message.
fn parse_bounded(doc: Vec<u8>) -> Result<Parsed, String> {
    bounded(move || parse(&doc))
}

// ----- a counting allocator (per thread) -----------------------------------------------------

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now)
            }
        });
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are noted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most memory this thread held at once while `f` ran, above what it held before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let v = f();
    let peak = PEAK.with(Cell::get);
    (v, (peak - start).max(0) as usize)
}

/// A body made on the fly from pieces, each repeated: a document of many MiB that never
/// sits in memory, so the parser's own memory is what the allocator sees.
struct Pieces {
    pieces: Vec<(Vec<u8>, u64)>,
    at: usize,
    done_reps: u64,
    off: usize,
    /// At most this many bytes per `fill_buf` (a network read).
    chunk: usize,
    /// Bytes consumed so far.
    consumed: std::rc::Rc<Cell<u64>>,
}

impl Pieces {
    fn new(pieces: Vec<(Vec<u8>, u64)>) -> Self {
        Self {
            pieces,
            at: 0,
            done_reps: 0,
            off: 0,
            chunk: 16 * 1024,
            consumed: Default::default(),
        }
    }

    fn advance(&mut self) {
        while self.at < self.pieces.len() {
            let (bytes, reps) = &self.pieces[self.at];
            if self.off < bytes.len() && self.done_reps < *reps {
                return;
            }
            if self.off >= bytes.len() {
                self.off = 0;
                self.done_reps += 1;
            }
            if self.done_reps >= *reps || bytes.is_empty() {
                self.at += 1;
                self.done_reps = 0;
                self.off = 0;
            }
        }
    }
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.advance();
        if let Some((bytes, _)) = this.pieces.get(this.at) {
            let n = (bytes.len() - this.off)
                .min(buf.remaining())
                .min(this.chunk);
            buf.put_slice(&bytes[this.off..this.off + n]);
            this.off += n;
            this.consumed.set(this.consumed.get() + n as u64);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for Pieces {
    fn poll_fill_buf(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        this.advance();
        match this.pieces.get(this.at) {
            Some((bytes, _)) => {
                let end = (this.off + this.chunk).min(bytes.len());
                Poll::Ready(Ok(&bytes[this.off..end]))
            }
            None => Poll::Ready(Ok(&[])),
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.off += amt;
        this.consumed.set(this.consumed.get() + amt as u64);
    }
}

// ----- generated listings ------------------------------------------------------------------

const DAV_PREFIXES: &[&str] = &["d", "D", "lp1", "a"];
const DC_PREFIXES: &[&str] = &["ns1", "dc", "x", "DC"];
const SRM_PREFIXES: &[&str] = &["ns2", "srm", "s"];
const DCACHE_NS: &str = "http://www.dcache.org/2013/webdav";
const SRM_NS: &str = "http://srm.lbl.gov/StorageResourceManager";

/// The door, its storage root below a path with a space, and the listed directory.
const DOOR: &str = "https://door.example:2880/pnfs/cta.cscs.ch/data%20dir/";
const DIR: &str = "lst/DL1 run";
const DIR_HREF: &str = "/pnfs/cta.cscs.ch/data%20dir/lst/DL1%20run/";

/// How hrefs are percent-encoded: every server does it a little differently.
#[derive(Debug, Clone, Copy)]
enum Enc {
    /// Everything but unreserved characters, upper-case hex.
    Strict,
    /// As cta-data's own `SEGMENT` set, lower-case hex.
    Client,
    /// Only what must be (controls, space, `#`, `%`, `?`, `\`, non-ASCII): `&`, `<`, `"`
    /// stay and are XML-escaped (dCache's `run%201&amp;2.h5`).
    Lenient,
}

fn encode(s: &str, enc: Enc) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let keep = match enc {
            Enc::Strict => c.is_ascii_alphanumeric() || "-._~".contains(c),
            Enc::Client => {
                c.is_ascii() && !c.is_ascii_control() && !" \"#%<>?`{}/\\^|[]".contains(c)
            }
            Enc::Lenient => c.is_ascii() && !c.is_ascii_control() && !" #%?/\\".contains(c),
        };
        if keep {
            out.push(c);
        } else {
            for b in c.encode_utf8(&mut [0; 4]).bytes() {
                match enc {
                    Enc::Client => write!(out, "%{b:02x}").unwrap(),
                    _ => write!(out, "%{b:02X}").unwrap(),
                }
            }
        }
    }
    out
}

/// How text is written into XML. The parser must give back the same text for all of them.
fn xml_text(s: &str, style: u8) -> String {
    let mut out = String::new();
    match style % 4 {
        0 => {
            for c in s.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    c => out.push(c),
                }
            }
        }
        1 => {
            for c in s.chars() {
                match c {
                    '&' => out.push_str("&#38;"),
                    '<' => out.push_str("&#x3C;"),
                    '"' => out.push_str("&#34;"),
                    '\'' => out.push_str("&#x27;"),
                    '>' => out.push('>'),
                    c => out.push(c),
                }
            }
        }
        2 => {
            out.push_str("<![CDATA[");
            out.push_str(&s.replace("]]>", "]]]]><![CDATA[>"));
            out.push_str("]]>");
        }
        _ => {
            for c in s.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&apos;"),
                    c => out.push(c),
                }
            }
        }
    }
    out
}

/// How a document names its namespaces.
#[derive(Debug, Clone)]
struct Style {
    /// `None`: DAV: is the default namespace.
    dav: Option<&'static str>,
    /// `None`: declared on the element itself as its default namespace.
    dc: Option<&'static str>,
    srm: Option<&'static str>,
    xml_decl: bool,
    /// White space between elements.
    ws: &'static str,
    enc: Enc,
    /// hrefs as full URLs rather than absolute paths.
    full_urls: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (
        prop::option::weighted(0.75, prop::sample::select(DAV_PREFIXES)),
        prop::option::of(prop::sample::select(DC_PREFIXES)),
        prop::option::of(prop::sample::select(SRM_PREFIXES)),
        any::<bool>(),
        prop::sample::select(vec!["", "\n", "\n  ", " ", "\r\n\t"]),
        prop_oneof![Just(Enc::Strict), Just(Enc::Client), Just(Enc::Lenient)],
        prop::bool::weighted(0.2),
    )
        .prop_map(|(dav, dc, srm, xml_decl, ws, enc, full_urls)| Style {
            dav,
            dc,
            srm,
            xml_decl,
            ws,
            enc,
            full_urls,
        })
}

/// How one checksum is written in the `Checksums` property (or a `Digest` header).
#[derive(Debug, Clone)]
enum Sum {
    /// Value, upper-case hex, leading zeros dropped, name spelling.
    Adler32(u32, bool, bool, &'static str),
    /// Value, as hex rather than base64, unpadded base64.
    Md5([u8; 16], bool, bool),
    Sha256([u8; 32], bool, bool),
    /// Another algorithm: name and value, kept as sent (lower-cased).
    Other(String, String),
}

impl Sum {
    fn text(&self) -> String {
        let b64 = |bytes: &[u8], unpadded: bool| {
            if unpadded {
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
            } else {
                base64::engine::general_purpose::STANDARD.encode(bytes)
            }
        };
        match self {
            Sum::Adler32(v, upper, strip, name) => {
                let mut hex = format!("{v:08x}");
                if *strip {
                    hex = hex.trim_start_matches('0').to_string();
                    if hex.is_empty() {
                        hex.push('0');
                    }
                }
                if *upper {
                    hex = hex.to_ascii_uppercase();
                }
                format!("{name}={hex}")
            }
            Sum::Md5(v, hex, unpadded) => {
                let val = if *hex {
                    v.iter().map(|b| format!("{b:02X}")).collect()
                } else {
                    b64(v, *unpadded)
                };
                format!("MD5={val}")
            }
            Sum::Sha256(v, hex, unpadded) => {
                let val = if *hex {
                    v.iter().map(|b| format!("{b:02x}")).collect()
                } else {
                    b64(v, *unpadded)
                };
                format!("sha-256={val}")
            }
            Sum::Other(name, val) => format!("{name}={val}"),
        }
    }

    fn expected(&self) -> Checksum {
        let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
        match self {
            Sum::Adler32(v, ..) => Checksum {
                algorithm: ChecksumAlgorithm::Adler32,
                value: format!("{v:08x}"),
            },
            Sum::Md5(v, ..) => Checksum {
                algorithm: ChecksumAlgorithm::Md5,
                value: hex(v),
            },
            Sum::Sha256(v, ..) => Checksum {
                algorithm: ChecksumAlgorithm::Sha256,
                value: hex(v),
            },
            Sum::Other(name, val) => Checksum {
                algorithm: ChecksumAlgorithm::Other(name.to_ascii_lowercase()),
                value: val.to_ascii_lowercase(),
            },
        }
    }

    fn algorithm(&self) -> ChecksumAlgorithm {
        self.expected().algorithm
    }
}

fn sum() -> impl Strategy<Value = Sum> {
    prop_oneof![
        3 => (
            any::<u32>(),
            any::<bool>(),
            any::<bool>(),
            prop::sample::select(vec!["adler32", "ADLER32", "Adler-32", "adc"])
        )
            .prop_map(|(v, u, s, n)| Sum::Adler32(v, u, s, n)),
        2 => (any::<[u8; 16]>(), any::<bool>(), any::<bool>())
            .prop_map(|(v, h, u)| Sum::Md5(v, h, u)),
        2 => (any::<[u8; 32]>(), any::<bool>(), any::<bool>())
            .prop_map(|(v, h, u)| Sum::Sha256(v, h, u)),
        1 => (
            prop::sample::select(vec!["crc32c", "UNIXSUM", "sha-512", "x-custom"]),
            "[A-Za-z0-9+/][A-Za-z0-9+/=]{0,30}"
        )
            .prop_map(|(n, v)| Sum::Other(n.to_string(), v)),
    ]
}

/// Checksums with distinct algorithms, in the order they are written.
fn sums() -> impl Strategy<Value = Vec<Sum>> {
    prop::collection::vec(sum(), 0..4).prop_map(|v| {
        let mut out: Vec<Sum> = Vec::new();
        for s in v {
            if !out.iter().any(|o| o.algorithm() == s.algorithm()) {
                out.push(s);
            }
        }
        out
    })
}

fn name_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
                ' ', '#', '?', '%', '&', '<', '>', '"', '\'', '+', ';', '=', '\\', '[', ']', '{',
                '}', '|', '^', '`', '~', '@', ':', ',', '!', '$', '*', '(', ')', '.', '-', '_',
            ]
        ),
        3 => prop::char::range('a', 'z'),
        2 => any::<char>(),
        1 => prop::sample::select(vec![
                'é', 'ε', '漢', '🦀', '\u{00A0}', '\u{2028}', '\u{FEFF}', '\u{200B}', '\u{0301}',
                '\u{FFFD}', '\u{FFFF}',
            ]
        ),
    ]
    .prop_filter("a name holds no '/' and no control character", |c| {
        *c != '/' && !c.is_control()
    })
}

/// A file or directory name as a user may choose it.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(name_char(), 1..14)
        .prop_map(|v| v.into_iter().collect::<String>())
        .prop_filter("not a dot segment", |s| s != "." && s != "..")
}

/// An etag: printable, no white space at either end (the parser trims).
fn etag() -> impl Strategy<Value = String> {
    prop_oneof![
        r#""[0-9A-F_]{1,24}""#,
        r#"W/"[!-~]{1,10}""#,
        prop::collection::vec(
            any::<char>().prop_filter("printable", |c| !c.is_control()),
            1..12
        )
        .prop_map(|v| v.into_iter().collect::<String>().trim().to_string()),
    ]
    .prop_filter("not empty", |s| !s.is_empty())
}

fn locality() -> impl Strategy<Value = (Locality, String)> {
    (
        prop::sample::select(vec![
            Locality::Online,
            Locality::Nearline,
            Locality::OnlineAndNearline,
            Locality::Unavailable,
        ]),
        0u8..4,
    )
        .prop_map(|(l, spelling)| {
            let s = match (l, spelling) {
                (Locality::Unavailable, 0) => "LOST".to_string(),
                (_, 1) => l.as_str().to_ascii_lowercase(),
                (_, 2) => format!(" {} ", l.as_str()),
                _ => l.as_str().to_string(),
            };
            (l, s)
        })
}

/// Seconds since 1970 up to the end of year 9999 (what an HTTP date can say).
const LAST_HTTP_DATE: u64 = 253_402_300_799;

#[derive(Debug, Clone)]
struct Props {
    is_collection: bool,
    size: Option<u64>,
    mtime: Option<u64>,
    etag: Option<String>,
    sums: Vec<Sum>,
    locality: Option<(Locality, String)>,
    /// Write absent properties as empty elements rather than leaving them out.
    empties: bool,
    /// The order the properties are written in (a permutation of 0..6).
    order: Vec<usize>,
    /// Leave the `200` propstat without a `<status>` (lenient servers).
    no_status: bool,
    /// A `404` propstat with other values: before (`Some(true)`) or after the `200` one.
    decoy_propstat: Option<bool>,
    /// Elements of other namespaces with the names of properties.
    decoy_elements: bool,
    text_style: u8,
    /// White space around values (trimmed by the parser).
    pad: bool,
}

#[derive(Debug, Clone)]
struct GenEntry {
    name: String,
    /// `None`: a response with a response-level `404` status and no propstat.
    props: Option<Props>,
}

fn props() -> impl Strategy<Value = Props> {
    (
        (
            any::<bool>(),
            prop::option::of(any::<u64>()),
            prop::option::of(0..=LAST_HTTP_DATE),
            prop::option::of(etag()),
            sums(),
            prop::option::of(locality()),
        ),
        (
            any::<bool>(),
            Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
            prop::bool::weighted(0.2),
            prop::option::weighted(0.3, any::<bool>()),
            prop::bool::weighted(0.3),
            any::<u8>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (is_collection, size, mtime, etag, sums, locality),
                (empties, order, no_status, decoy_propstat, decoy_elements, text_style, pad),
            )| Props {
                is_collection,
                size,
                mtime,
                etag,
                sums,
                locality,
                empties,
                order,
                no_status,
                decoy_propstat,
                decoy_elements,
                text_style,
                pad,
            },
        )
}

fn entry() -> impl Strategy<Value = GenEntry> {
    (name(), prop::option::weighted(0.9, props()))
        .prop_map(|(name, props)| GenEntry { name, props })
}

fn listing() -> impl Strategy<Value = (Style, Vec<GenEntry>)> {
    (style(), prop::collection::vec(entry(), 0..8))
}

struct Writer<'a> {
    s: &'a Style,
    out: String,
}

impl Writer<'_> {
    fn dav(&self, local: &str) -> String {
        match self.s.dav {
            Some(p) => format!("{p}:{local}"),
            None => local.to_string(),
        }
    }

    fn open(&mut self, local: &str) {
        let n = self.dav(local);
        write!(self.out, "<{n}>").unwrap();
    }

    fn close(&mut self, local: &str) {
        let n = self.dav(local);
        write!(self.out, "</{n}>{}", self.s.ws).unwrap();
    }

    fn empty(&mut self, local: &str) {
        let n = self.dav(local);
        write!(self.out, "<{n}/>{}", self.s.ws).unwrap();
    }

    /// A DAV: element holding text (`None`: an empty element).
    fn text(&mut self, local: &str, text: Option<&str>, style: u8, pad: bool) {
        match text {
            None => self.empty(local),
            Some(t) => {
                self.open(local);
                self.value(t, style, pad);
                self.close(local);
            }
        }
    }

    fn value(&mut self, t: &str, style: u8, pad: bool) {
        if pad {
            self.out.push_str("\n  ");
        }
        self.out.push_str(&xml_text(t, style));
        if pad {
            self.out.push_str(" \t\n");
        }
    }

    /// An element of another namespace: with the document's prefix, or as its default.
    fn foreign(
        &mut self,
        prefix: Option<&str>,
        ns: &str,
        local: &str,
        text: Option<&str>,
        style: u8,
        pad: bool,
    ) {
        let (open, name) = match prefix {
            Some(p) => (format!("<{p}:{local}"), format!("{p}:{local}")),
            None => (format!("<{local} xmlns=\"{ns}\""), local.to_string()),
        };
        match text {
            None => write!(self.out, "{open}/>{}", self.s.ws).unwrap(),
            Some(t) => {
                write!(self.out, "{open}>").unwrap();
                self.value(t, style, pad);
                write!(self.out, "</{name}>{}", self.s.ws).unwrap();
            }
        }
    }

    fn decoys(&mut self) {
        let ws = self.s.ws;
        write!(
            self.out,
            "<o:getcontentlength xmlns:o=\"urn:other\">77</o:getcontentlength>{ws}"
        )
        .unwrap();
        write!(
            self.out,
            "<getetag xmlns=\"urn:not-dav\">\"decoy\"</getetag>{ws}"
        )
        .unwrap();
        if let Some(p) = self.s.dav {
            // The document's own DAV: prefix, bound here to something else.
            write!(
                self.out,
                "<{p}:getlastmodified xmlns:{p}=\"urn:not-dav\">Thu, 01 Jan 1970 00:00:00 GMT</{p}:getlastmodified>{ws}"
            )
            .unwrap();
        }
        write!(
            self.out,
            "<c:Checksums xmlns:c=\"http://www.dcache.org/2013/webdav/x\">adler32=deadbeef</c:Checksums>{ws}"
        )
        .unwrap();
        write!(
            self.out,
            "<FileLocality xmlns=\"urn:srm\">LOST</FileLocality>{ws}"
        )
        .unwrap();
    }

    fn propstat(&mut self, p: &Props, status: Option<&str>) {
        self.open("propstat");
        self.out.push_str(self.s.ws);
        self.open("prop");
        self.out.push_str(self.s.ws);
        let (st, pad) = (p.text_style, p.pad);
        for &i in &p.order {
            match i {
                0 => {
                    if p.is_collection {
                        self.open("resourcetype");
                        self.empty("collection");
                        self.close("resourcetype");
                    } else if p.empties || p.pad {
                        self.empty("resourcetype");
                    }
                }
                1 => match p.size {
                    Some(n) => self.text("getcontentlength", Some(&n.to_string()), st, pad),
                    None if p.empties => self.text("getcontentlength", None, st, pad),
                    None => {}
                },
                2 => match p.mtime {
                    Some(t) => {
                        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t));
                        self.text("getlastmodified", Some(&date), st, pad)
                    }
                    None if p.empties => self.text("getlastmodified", None, st, pad),
                    None => {}
                },
                3 => match &p.etag {
                    Some(e) => self.text("getetag", Some(e), st.wrapping_add(1), pad),
                    None if p.empties => self.text("getetag", None, st, pad),
                    None => {}
                },
                4 => {
                    if !p.sums.is_empty() || p.empties {
                        let text = p.sums.iter().map(Sum::text).collect::<Vec<_>>().join(",");
                        let text = (!text.is_empty()).then_some(text);
                        self.foreign(self.s.dc, DCACHE_NS, "Checksums", text.as_deref(), st, pad);
                    }
                }
                _ => match &p.locality {
                    Some((_, spelling)) => {
                        self.foreign(self.s.srm, SRM_NS, "FileLocality", Some(spelling), st, pad)
                    }
                    None if p.empties => {
                        self.foreign(self.s.srm, SRM_NS, "FileLocality", None, st, pad)
                    }
                    None => {}
                },
            }
        }
        if p.decoy_elements {
            self.decoys();
        }
        self.close("prop");
        if let Some(s) = status {
            self.text("status", Some(s), 0, false);
        }
        self.close("propstat");
    }

    fn decoy_propstat(&mut self) {
        let decoy = Props {
            is_collection: true,
            size: Some(999),
            mtime: Some(0),
            etag: Some("\"decoy\"".into()),
            sums: vec![Sum::Adler32(0xdeadbeef, false, false, "adler32")],
            locality: Some((Locality::Unavailable, "LOST".into())),
            empties: false,
            order: (0..6).collect(),
            no_status: false,
            decoy_propstat: None,
            decoy_elements: false,
            text_style: 0,
            pad: false,
        };
        self.propstat(&decoy, Some("HTTP/1.1 404 Not Found"));
    }
}

fn href_of(s: &Style, e: &GenEntry) -> String {
    let mut h = String::new();
    if s.full_urls {
        h.push_str("https://door.example:2880");
    }
    h.push_str(DIR_HREF);
    h.push_str(&encode(&e.name, s.enc));
    if e.props.as_ref().is_some_and(|p| p.is_collection) {
        h.push('/');
    }
    h
}

/// The multistatus document a server would send for `entries`.
fn write_doc(s: &Style, entries: &[GenEntry]) -> String {
    let mut w = Writer {
        s,
        out: String::new(),
    };
    if s.xml_decl {
        w.out
            .push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    }
    let mut decls = match s.dav {
        Some(p) => format!(" xmlns:{p}=\"DAV:\""),
        None => " xmlns=\"DAV:\"".to_string(),
    };
    if let Some(p) = s.dc {
        write!(decls, " xmlns:{p}=\"{DCACHE_NS}\"").unwrap();
    }
    if let Some(p) = s.srm {
        write!(decls, " xmlns:{p}=\"{SRM_NS}\"").unwrap();
    }
    let root = w.dav("multistatus");
    write!(w.out, "<{root}{decls}>{}", s.ws).unwrap();
    for e in entries {
        w.open("response");
        w.out.push_str(s.ws);
        let href = href_of(s, e);
        let style = e.props.as_ref().map_or(0, |p| p.text_style);
        w.text("href", Some(&href), style.wrapping_add(2), false);
        match &e.props {
            None => w.text("status", Some("HTTP/1.1 404 Not Found"), 0, false),
            Some(p) => {
                if p.decoy_propstat == Some(true) {
                    w.decoy_propstat();
                }
                w.propstat(p, (!p.no_status).then_some("HTTP/1.1 200 OK"));
                if p.decoy_propstat == Some(false) {
                    w.decoy_propstat();
                }
            }
        }
        w.close("response");
    }
    writeln!(w.out, "</{root}>").unwrap();
    w.out
}

/// What the parser must give back for `entries`.
fn expected(s: &Style, entries: &[GenEntry]) -> Vec<RawResponse> {
    entries
        .iter()
        .map(|e| {
            let href = href_of(s, e);
            match &e.props {
                None => RawResponse {
                    href,
                    bad_status: true,
                    ..Default::default()
                },
                Some(p) => RawResponse {
                    href,
                    is_collection: p.is_collection,
                    size: p.size,
                    mtime: p.mtime.map(|t| UNIX_EPOCH + Duration::from_secs(t)),
                    etag: p.etag.clone(),
                    checksums: p.sums.iter().map(Sum::expected).collect(),
                    locality: p.locality.as_ref().map(|(l, _)| *l),
                    bad_status: false,
                },
            }
        })
        .collect()
}

// ----- mutations ---------------------------------------------------------------------------

/// Pieces of XML (and not quite XML) that mutations insert.
const TOKENS: &[&str] = &[
    "<",
    ">",
    "</",
    "/>",
    "&",
    "&amp;",
    "&#x0;",
    "&#xD800;",
    "&#1114111;",
    "&#1114112;",
    "&#99999999999999999999;",
    "&#x;",
    "&#;",
    "&unknown;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version=\"1.0\"?>",
    "<!DOCTYPE d:multistatus [<!ENTITY e \"x\">]>",
    "&e;",
    " xmlns:d=\"DAV:\"",
    " xmlns=\"DAV:\"",
    " xmlns:d=\"\"",
    " xmlns:d=\"urn:x\"",
    "<d:multistatus xmlns:d=\"DAV:\">",
    "</d:multistatus>",
    "<d:response>",
    "</d:response>",
    "<d:href>",
    "</d:href>",
    "<d:propstat>",
    "</d:propstat>",
    "<d:prop>",
    "<d:status>HTTP/1.1 200 OK</d:status>",
    "<d:status>HTTP/1.1</d:status>",
    "<d:status/>",
    "<d:resourcetype><d:collection/></d:resourcetype>",
    "<d:getcontentlength>18446744073709551616</d:getcontentlength>",
    "<d:getcontentlength>-1</d:getcontentlength>",
    "<d:getlastmodified>Sun, 31 Dec 9999 23:59:60 GMT</d:getlastmodified>",
    "<x:Checksums xmlns:x=\"http://www.dcache.org/2013/webdav\">adler32=,md5==,=,,sha-256=%%</x:Checksums>",
    "\u{0}",
    "\u{FEFF}",
    "\u{10FFFF}",
    "\"",
    "'",
    "=",
    ":",
    "a:b:c",
    "<:x>",
    "<d:>",
    "<d:a b=\"1\" b=\"2\">",
    "\r\n",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, &'static str),
    InsertBytes(Index, Vec<u8>),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        3 => (any::<Index>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Mutation::Insert(i, t)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::InsertBytes(i, b)),
        2 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), 1usize..200).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(doc: &mut Vec<u8>, m: &Mutation) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
    match m {
        Mutation::Flip(i, b) if !doc.is_empty() => {
            let k = i.index(doc.len());
            doc[k] ^= b | 1;
        }
        Mutation::Flip(..) => {}
        Mutation::Insert(i, t) => {
            let k = at(i, doc.len());
            doc.splice(k..k, t.bytes());
        }
        Mutation::InsertBytes(i, b) => {
            let k = at(i, doc.len());
            doc.splice(k..k, b.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let k = at(i, doc.len());
            let end = (k + n).min(doc.len());
            doc.drain(k..end);
        }
        Mutation::Duplicate(i, n) => {
            let k = at(i, doc.len());
            let end = (k + n).min(doc.len());
            let copy = doc[k..end].to_vec();
            doc.splice(end..end, copy);
        }
        Mutation::Truncate(i) => {
            let k = at(i, doc.len());
            doc.truncate(k);
        }
    }
}

/// Every parse that succeeds hands each response to the callback exactly once.
fn check_consistent(parsed: &Parsed) -> Result<(), TestCaseError> {
    if let Ok((v, n)) = parsed {
        prop_assert_eq!(
            v.len(),
            *n,
            "the count returned differs from the callbacks made"
        );
    }
    Ok(())
}

// ----- the properties ----------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes: no panic, an answer in bounded time.
    #[test]
    fn multistatus_arbitrary_bytes(
        head in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        // Half of them behind a valid opening tag, so that they reach the body's parsing.
        let mut doc = if head { HEAD.as_bytes().to_vec() } else { Vec::new() };
        doc.extend_from_slice(&bytes);
        let parsed = parse_bounded(doc).map_err(TestCaseError::fail)?;
        check_consistent(&parsed)?;
    }

    /// Arbitrary sequences of XML-looking tokens (these get much further into the parser
    /// than random bytes do).
    #[test]
    fn multistatus_token_soup(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..80)) {
        let doc = tokens.concat().into_bytes();
        let parsed = parse_bounded(doc).map_err(TestCaseError::fail)?;
        check_consistent(&parsed)?;
    }

    /// A valid multistatus, then flipped, inserted, deleted, duplicated or cut bytes: no
    /// panic, an answer in bounded time, and a success reports every response it handed out.
    #[test]
    fn multistatus_mutated(
        (s, entries) in listing(),
        muts in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut doc = write_doc(&s, &entries).into_bytes();
        for m in &muts {
            mutate(&mut doc, m);
        }
        let parsed = parse_bounded(doc).map_err(TestCaseError::fail)?;
        check_consistent(&parsed)?;
    }

    /// Round trip: a listing written as a server would write it (hrefs percent-encoded three
    /// ways, text XML-escaped four ways, CDATA included, namespaces under any prefix or as the
    /// default, properties in any order, `404` propstats and look-alike elements of other
    /// namespaces around) comes back as the same entries, in order; each href names the
    /// entry's path below the door's base.
    #[test]
    fn multistatus_round_trip(
        (s, entries) in listing(),
        sizes in prop::collection::vec(1usize..700, 1..6),
    ) {
        let doc = write_doc(&s, &entries);
        let (got, n) = parse(doc.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{doc}")))?;
        prop_assert_eq!(n, entries.len());
        // The pull form, and the client's way (byte chunks, tag-gap limit), agree.
        let pulled = parse_pull(doc.as_bytes()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&pulled.0, &got);
        let client = parse_as_client(chunked(doc.as_bytes(), &sizes)).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&client.0, &got);
        let want = expected(&s, &entries);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert_eq!(g, w, "response {} of\n{}", i, doc);
        }
        prop_assert_eq!(got.len(), want.len());
        let base = Base::new(DOOR).unwrap();
        let dir = RemotePath::parse(DIR).unwrap();
        let request = base.url_for(&dir, true);
        for (g, e) in got.iter().zip(&entries) {
            let path = base.href_to_path(&g.href, &request);
            let want = RemotePath::parse(&format!("{DIR}/{}", e.name)).unwrap();
            prop_assert_eq!(path, Some(want), "href {:?} of {:?}", g.href, e.name);
        }
    }

    /// Streaming: each response reaches the callback before the parser has read more than
    /// 4 KiB past its end (a listing never waits in memory for its last entry).
    #[test]
    fn multistatus_streams((s, entries) in listing()) {
        let doc = write_doc(&s, &entries);
        // Where each response ends in the document.
        let close = format!("</{}>", match s.dav {
            Some(p) => format!("{p}:response"),
            None => "response".into(),
        });
        let ends: Vec<u64> = doc
            .match_indices(&close)
            .map(|(i, m)| (i + m.len()) as u64)
            .collect();
        prop_assert_eq!(ends.len(), entries.len());
        let mut reader = Pieces::new(vec![(doc.clone().into_bytes(), 1)]);
        reader.chunk = 512;
        let consumed = reader.consumed.clone();
        let mut seen = Vec::new();
        let n = futures::executor::block_on(parse_multistatus(reader, |_| seen.push(consumed.get())))
            .map_err(|e| TestCaseError::fail(e.0))?;
        prop_assert_eq!(n, entries.len());
        for (k, (at, end)) in seen.iter().zip(&ends).enumerate() {
            prop_assert!(*at >= *end, "response {} was handed out before it was read", k);
            prop_assert!(
                *at <= *end + 4096,
                "response {} (ending at byte {}) was handed out only at byte {}",
                k, end, at
            );
        }
    }

    /// Cut anywhere before its end, a document is refused: a connection that drops between
    /// two responses must not look like a shorter listing.
    #[test]
    fn multistatus_truncated_is_an_error((s, entries) in listing(), cut in any::<Index>()) {
        let doc = write_doc(&s, &entries);
        let end = doc.trim_end().len();
        let cut = cut.index(end);
        let parsed = parse(&doc.as_bytes()[..cut]);
        prop_assert!(
            parsed.is_err(),
            "cut at byte {} of {}, the parser said {:?}\n{}",
            cut, end, parsed.map(|(v, _)| v.len()), &doc[..cut]
        );
    }

    /// `MAX_FIELD_TEXT` counts the text as resolved (entities, character references,
    /// CDATA): an href of up to that many bytes is read whole, one byte more is an error.
    #[test]
    fn field_text_limit(
        len in prop_oneof![
            0usize..200,
            (MAX_FIELD_TEXT - 8)..(MAX_FIELD_TEXT + 8),
            0usize..(2 * MAX_FIELD_TEXT),
        ],
        stride in 1usize..5000,
        cdata in any::<bool>(),
    ) {
        // The text is '/' and then 'a's; every stride-th 'a' written as a reference.
        let mut text = String::from("/");
        for i in 1..len.max(1) {
            if i % stride == 0 {
                text.push_str(if i % 2 == 0 { "&#97;" } else { "&#x61;" });
            } else {
                text.push('a');
            }
        }
        if cdata && len > 2 {
            text.push_str("<![CDATA[]]>");
        }
        let doc = format!("{HEAD}<d:response><d:href>{text}</d:href></d:response>{TAIL}");
        let resolved = len.max(1);
        match parse(doc.as_bytes()) {
            Ok((v, _)) => {
                prop_assert!(resolved <= MAX_FIELD_TEXT, "{} bytes accepted", resolved);
                prop_assert_eq!(v[0].href.len(), resolved);
            }
            Err(e) => prop_assert!(resolved > MAX_FIELD_TEXT, "{} bytes refused: {}", resolved, e),
        }
    }

    /// `MAX_DEPTH`: elements nested up to that depth are read, one level more is an error.
    #[test]
    fn depth_limit(extra in 0u64..(2 * MAX_DEPTH as u64), empty_leaf in any::<bool>()) {
        // multistatus, response, propstat, prop: four levels before the extra ones.
        let mut doc = format!("{HEAD}<d:response><d:href>/a</d:href><d:propstat><d:prop>");
        for _ in 0..extra {
            doc.push_str("<x>");
        }
        if empty_leaf {
            doc.push_str("<y/>");
        }
        for _ in 0..extra {
            doc.push_str("</x>");
        }
        doc.push_str(&format!("</d:prop></d:propstat></d:response>{TAIL}"));
        let depth = 4 + extra as usize;
        match parse(doc.as_bytes()) {
            Ok((v, _)) => {
                prop_assert!(depth <= MAX_DEPTH, "depth {} accepted", depth);
                prop_assert_eq!(v.len(), 1);
            }
            Err(e) => prop_assert!(depth > MAX_DEPTH, "depth {} refused: {}", depth, e),
        }
    }

    /// `Digest` values: arbitrary text never panics, and whatever comes out is normalised
    /// (lower-case hex for adler32, md5 and sha-256 of the right length, no repeated
    /// algorithm).
    #[test]
    fn digest_arbitrary(value in prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9=,;:\"' +/_-]{0,80}",
        prop::collection::vec(
            prop::sample::select(vec![
                "adler32", "md5", "sha-256", "SHA256", "adc", "=", ",", "\"", " ", "==", "0",
                "ff", "0a1b2c3d", "HUXZLQLMuI/KZ5KDcJPcOA==", "é", "\u{0}", "q=0.5", ";",
            ]),
            0..20,
        ).prop_map(|v| v.concat()),
        // Valid values with characters inserted and cut out.
        (
            prop::collection::vec(sum(), 1..5),
            prop::collection::vec((any::<Index>(), "[=,\" a-f0-9]{0,3}", 0usize..4), 1..4),
        ).prop_map(|(sums, edits)| {
            let mut v: Vec<char> = sums.iter().map(Sum::text).collect::<Vec<_>>().join(",").chars().collect();
            for (at, ins, del) in edits {
                let k = at.index(v.len() + 1);
                let end = (k + del).min(v.len());
                v.splice(k..end, ins.chars());
            }
            v.into_iter().collect::<String>()
        }),
    ]) {
        let out = bounded({
            let value = value.clone();
            move || parse_digest(&value)
        })
        .map_err(TestCaseError::fail)?;
        for (i, c) in out.iter().enumerate() {
            let hex_len = match c.algorithm {
                ChecksumAlgorithm::Adler32 => Some(8),
                ChecksumAlgorithm::Md5 => Some(32),
                ChecksumAlgorithm::Sha256 => Some(64),
                ChecksumAlgorithm::Other(_) => None,
            };
            if let Some(len) = hex_len {
                prop_assert_eq!(c.value.len(), len, "{:?} from {:?}", c, value);
                prop_assert!(
                    c.value.chars().all(|d| d.is_ascii_hexdigit() && !d.is_ascii_uppercase()),
                    "{:?} from {:?}", c, value
                );
            }
            prop_assert!(
                !out[..i].iter().any(|o| o.algorithm == c.algorithm),
                "{:?} twice from {:?}", c.algorithm, value
            );
        }
    }

    /// `Digest` round trip: checksums written in any of the spellings servers use (names in
    /// any case, hex or base64, padded or not, quoted, spaced), with unusable parts and
    /// repeated algorithms mixed in, come back normalised, in order, the first of each
    /// algorithm winning.
    #[test]
    fn digest_round_trip(
        sums in prop::collection::vec(sum(), 0..6),
        quotes in prop::collection::vec(any::<bool>(), 6),
        spaces in prop::collection::vec(prop::sample::select(vec!["", " ", "  ", "\t"]), 6),
        junk in prop::collection::vec(
            (any::<Index>(), prop::sample::select(vec!["", " ", "garbage", "adler32=zzzz", "=x", "md5=abc", "sha-256==="])),
            0..3,
        ),
    ) {
        let mut parts: Vec<String> = sums
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let t = s.text();
                let (name, val) = t.split_once('=').unwrap();
                let sp = spaces[i % spaces.len()];
                if quotes[i % quotes.len()] {
                    format!("{sp}{name}{sp}={sp}\"{val}\"{sp}")
                } else {
                    format!("{sp}{name}={val}{sp}")
                }
            })
            .collect();
        for (at, j) in &junk {
            let k = at.index(parts.len() + 1);
            parts.insert(k, j.to_string());
        }
        let value = parts.join(",");
        let mut want: Vec<Checksum> = Vec::new();
        for s in &sums {
            let c = s.expected();
            if !want.iter().any(|w| w.algorithm == c.algorithm) {
                want.push(c);
            }
        }
        prop_assert_eq!(parse_digest(&value), want, "from {:?}", value);
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// `limit_tag_gap`: however the body is cut into chunks, its bytes pass unchanged when
    /// no run without `<` is longer than `MAX_TAG_GAP`, and the stream fails otherwise.
    #[test]
    fn tag_gap_limit(
        runs in prop::collection::vec(
            prop_oneof![
                3 => 0usize..300,
                1 => (MAX_TAG_GAP - 2)..=(MAX_TAG_GAP + 2),
            ],
            1..4,
        ),
        sizes in prop::collection::vec(prop_oneof![1usize..64, 1usize..(1 << 20)], 1..6),
    ) {
        use futures::StreamExt;
        let body: Vec<u8> = runs
            .iter()
            .map(|&n| vec![b'a'; n])
            .collect::<Vec<_>>()
            .join(&b'<');
        let chunks = chunked(&body, &sizes);
        let stream = futures::stream::iter(chunks.into_iter().map(Ok::<Bytes, io::Error>));
        let out: Vec<io::Result<Bytes>> = futures::executor::block_on(limit_tag_gap(stream).collect());
        let too_long = runs.iter().any(|&n| n > MAX_TAG_GAP);
        let failed = out.iter().any(Result::is_err);
        prop_assert_eq!(failed, too_long, "runs {:?}", runs);
        if !failed {
            let passed: Vec<u8> = out.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
            prop_assert!(passed == body, "the bytes were changed");
        }
    }
}

// ----- examples and memory ----------------------------------------------------------------

/// The minimal case behind `multistatus_truncated_is_an_error`: the body of a two-entry
/// listing cut right after the first `</d:response>` (a dropped connection) parses as a
/// complete one-entry listing.
#[test]
fn truncated_listing_is_an_error() {
    let doc = "<d:multistatus xmlns:d=\"DAV:\"><d:response><d:href>/a</d:href></d:response><d:response><d:href>/b</d:href></d:response></d:multistatus>";
    let cut = doc.find("</d:response>").unwrap() + "</d:response>".len();
    let parsed = parse(&doc.as_bytes()[..cut]);
    assert!(
        parsed.is_err(),
        "{:?} from {:?}",
        parsed.map(|(v, _)| v),
        &doc[..cut]
    );
}

fn response_piece(i: usize) -> Vec<u8> {
    format!(
        "<d:response><d:href>/pnfs/d/file-{i:06}.h5</d:href><d:propstat><d:prop><d:resourcetype/><d:getcontentlength>123456</d:getcontentlength><d:getlastmodified>Thu, 14 Nov 2024 10:00:00 GMT</d:getlastmodified><d:getetag>\"0000A\"</d:getetag><ns1:Checksums>adler32=0a1b2c3d</ns1:Checksums><ns2:FileLocality>ONLINE</ns2:FileLocality></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>\n"
    )
    .into_bytes()
}

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<d:multistatus xmlns:d=\"DAV:\" xmlns:ns1=\"http://www.dcache.org/2013/webdav\" xmlns:ns2=\"http://srm.lbl.gov/StorageResourceManager\">\n";
const TAIL: &str = "</d:multistatus>\n";

/// What the parser promises: a listing streams. 50,000 responses (20 MiB of XML, made on
/// the fly) are read holding at most 256 KiB at a time.
#[test]
fn a_long_listing_is_read_in_constant_memory() {
    let n = 50_000u64;
    let body = Pieces::new(vec![
        (HEAD.as_bytes().to_vec(), 1),
        (response_piece(0), n),
        (TAIL.as_bytes().to_vec(), 1),
    ]);
    let mut count = 0u64;
    let mut sizes = 0u64;
    let (res, peak) = peak_during(|| {
        futures::executor::block_on(parse_multistatus(body, |r| {
            count += 1;
            sizes += r.size.unwrap_or(0);
        }))
    });
    assert_eq!(res.unwrap() as u64, n);
    assert_eq!((count, sizes), (n, n * 123456));
    assert!(
        peak < 256 * 1024,
        "the parser held {peak} bytes at once for a listing"
    );
}

static A_CHUNK: [u8; 16 * 1024] = [b'a'; 16 * 1024];

/// One huge text node (a server gone mad, or not a WebDAV server at all) is not held whole
/// when read as the client reads listings (`limit_tag_gap` on the byte stream): 16 MiB
/// without markup, in an href, a property, an unknown element or an attribute value, is
/// refused holding no more than a few times `MAX_TAG_GAP`.
#[test]
fn a_huge_text_node_is_refused_in_bounded_memory() {
    for (open, close) in [
        ("<d:href>/x", "</d:href>"),
        ("<d:getetag>x", "</d:getetag>"),
        ("<d:unknown>x", "</d:unknown>"),
        ("<d:unknown a=\"x", "\"/>"),
    ] {
        let head = Bytes::from(format!(
            "{HEAD}<d:response><d:href>/a</d:href><d:propstat><d:prop>{open}"
        ));
        let tail = Bytes::from(format!("{close}</d:prop></d:propstat></d:response>{TAIL}"));
        let chunks = std::iter::once(head)
            .chain((0..1024).map(|_| Bytes::from_static(&A_CHUNK)))
            .chain(std::iter::once(tail));
        let (res, peak) = peak_during(|| parse_as_client(chunks));
        assert!(
            res.is_err() && peak < 4 * MAX_TAG_GAP,
            "16 MiB of text after {open}: {:?}, {peak} bytes held at once",
            res.map(|(v, _)| v.iter().map(|r| r.href.len()).collect::<Vec<_>>())
        );
    }
}

fn nested(depth: u64) -> Pieces {
    Pieces::new(vec![
        (
            format!("{HEAD}<d:response><d:href>/a</d:href><d:propstat><d:prop>").into_bytes(),
            1,
        ),
        (b"<x>".to_vec(), depth),
        (b"</x>".to_vec(), depth),
        (
            format!("</d:prop></d:propstat></d:response>{TAIL}").into_bytes(),
            1,
        ),
    ])
}

/// The same for markup: 60,000 nested elements (420 KB) are refused (`MAX_DEPTH`) without
/// the parser holding something for each level.
#[test]
fn a_deeply_nested_document_is_refused_in_bounded_memory() {
    let depth = 60_000;
    let (res, peak) = peak_during(|| parse_reader(nested(depth)));
    assert!(
        res.is_err() && peak < 64 * 1024,
        "{depth} nested elements: {:?}, {peak} bytes held at once",
        res.map(|(v, _)| v.len())
    );
}

/// 65,536 nested elements: quick-xml counts namespace scopes in a `u16`, which overflows
/// (a panic, "attempt to add with overflow" in `NamespaceResolver::push`, in debug builds).
/// The parser stops long before that (`MAX_DEPTH`), with an error.
#[test]
fn nesting_past_65535_levels_is_an_error_not_a_panic() {
    let doc = "<a>".repeat(65_536);
    let parsed = parse_bounded(doc.into_bytes());
    assert!(
        matches!(parsed, Ok(Err(_))),
        "{:?}",
        parsed.map(|p| p.map(|(v, _)| v.len()))
    );
}

/// A huge text node and deep nesting read without the tag-gap limit: the parser finishes
/// (an answer or an error, no crash); what it held at once is printed.
#[test]
fn huge_text_and_deep_nesting_finish() {
    let open = format!("{HEAD}<d:response><d:href>/x");
    let close = format!("</d:href></d:response>{TAIL}");
    let body = Pieces::new(vec![
        (open.into_bytes(), 1),
        (vec![b'a'; 64 * 1024], 64),
        (close.into_bytes(), 1),
    ]);
    let (res, peak) = peak_during(|| parse_reader(body));
    eprintln!(
        "4 MiB href: {:?}, {peak} bytes held at once",
        res.map(|(v, _)| v.iter().map(|r| r.href.len()).collect::<Vec<_>>())
    );
    // Below quick-xml's limit of 65,535 (see nesting_past_65535_levels_is_an_error_not_a_panic).
    let depth = 60_000;
    let (res, peak) = peak_during(|| parse_reader(nested(depth)));
    eprintln!(
        "{depth} nested elements: {:?}, {peak} bytes held at once",
        res.map(|(v, _)| v.len())
    );
}
