//! Property tests of what the downloadservice backend reads from the platform: the `list`
//! answer (`listing::parse_list`, `listing::href_path`), the `upload` answer, the hub's
//! `api/user` answer and the certificateservice's answers (read inside the backend, so
//! tested through it against a scripted HTTP server on loopback), and certificate files
//! (`certificateservice::check_certificate_pem`).
//!
//! Pure parsers run 256 cases per property by default, those that go through HTTP 48
//! (`PROPTEST_CASES` changes both); failures are not persisted to files.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ctadata_core::config::{EnvSnapshot, LoadOptions};
use ctadata_core::{Error, PutOptions, RemotePath, StorageBackend, Upload};
use ctadata_downloadservice::certificateservice::{
    check_certificate_pem, CertificateService, CheckedCertificate,
};
use ctadata_downloadservice::listing::{href_path, parse_list, ListItem};
use ctadata_downloadservice::{open_service, DownloadService};
use ctadata_testsupport::downloadservice::certs::ProxyPki;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::Value;

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

/// Runs a property with its own runner (for those that share a server between cases).
fn check<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

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

// ----- JSON values and texts ---------------------------------------------------------------

/// Keys the readers look at, and others.
const KEYS: &[&str] = &[
    "href",
    "type",
    "size",
    "mtime",
    "url",
    "path",
    "status",
    "total_written",
    "name",
    "message",
    "validity",
    "certificateUploaded",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::String),
        "[ 0-9+-]{0,22}".prop_map(Value::String),
        prop::sample::select(vec![
            "directory",
            "file",
            "",
            "/",
            "lst/",
            "lst/DL1/x%20y.h5",
            "%ZZ",
            "%C3%28",
            "a/../b",
            "Thu, 14 Nov 2024 10:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT ",
            "uploaded",
            "Certificate stored",
            "<html>login</html>",
        ])
        .prop_map(|s| Value::String(s.into())),
    ]
}

/// Any JSON value, nested a little, with the keys the readers look for.
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// How a JSON string is written: plainly, with every non-ASCII character as `\u` escapes
/// (surrogate pairs included), or with `/` escaped too.
fn json_string(s: &str, style: u8) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if style % 3 == 2 => out.push_str("\\/"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c if !c.is_ascii() && style % 3 == 1 => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(out, "\\u{u:04X}").unwrap();
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An object written with its keys in the given order and the given spacing.
fn json_object(fields: &[(String, String)], ws: &str) -> String {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}{ws}:{ws}{v}", json_string(k, 0)))
        .collect::<Vec<_>>()
        .join(&format!(",{ws}"));
    format!("{{{ws}{body}{ws}}}")
}

// ----- names and paths (as in the webdav tests) --------------------------------------------

fn name_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
            ' ', '#', '?', '%', '&', '<', '>', '"', '\'', '+', ';', '=', '\\', '[', ']', '{', '}',
            '|', '^', '`', '~', '@', ':', ',', '!', '$', '*', '.', '-', '_',
        ]),
        3 => prop::char::range('a', 'z'),
        2 => any::<char>(),
        1 => prop::sample::select(vec!['é', 'ε', '漢', '🦀', '\u{00A0}', '\u{FEFF}', '\u{0301}']),
    ]
    .prop_filter("a name holds no '/' and no control character", |c| {
        *c != '/' && !c.is_control()
    })
}

/// A file or directory name as a user may choose it.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(name_char(), 1..12)
        .prop_map(|v| v.into_iter().collect::<String>())
        .prop_filter("not a dot segment", |s| s != "." && s != "..")
}

/// Percent-encodes one segment: everything but unreserved characters (`strict`), or only
/// what must be (as dCache does: `&`, `+`, `'` stay).
fn encode(s: &str, strict: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let keep = if strict {
            c.is_ascii_alphanumeric() || "-._~".contains(c)
        } else {
            c.is_ascii() && !c.is_ascii_control() && !" #%?/\\\"<>`{}^|[]".contains(c)
        };
        if keep {
            out.push(c);
        } else {
            for b in c.encode_utf8(&mut [0; 4]).bytes() {
                write!(out, "%{b:02X}").unwrap();
            }
        }
    }
    out
}

fn encode_path(p: &str, strict: bool) -> String {
    p.split('/')
        .map(|s| encode(s, strict))
        .collect::<Vec<_>>()
        .join("/")
}

const LAST_HTTP_DATE: u64 = 253_402_300_799;

fn http_date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

// ----- generated listings ------------------------------------------------------------------

/// How a size is written.
#[derive(Debug, Clone)]
enum Size {
    Absent,
    Text(u64, &'static str),
    Number(u64),
    Unreadable(&'static str),
}

#[derive(Debug, Clone)]
struct GenItem {
    /// The path below the listed directory (may be one level deeper: `a/b`).
    name: String,
    dir: bool,
    size: Size,
    mtime: Option<u64>,
    /// Write `"type"` (else leave it out).
    with_type: bool,
    url: bool,
    /// Key order: a permutation of 0..5.
    order: Vec<usize>,
}

fn gen_item() -> impl Strategy<Value = GenItem> {
    (
        name(),
        any::<bool>(),
        prop_oneof![
            Just(Size::Absent),
            (
                any::<u64>(),
                prop::sample::select(vec!["", " ", "\t", "  "])
            )
                .prop_map(|(n, p)| Size::Text(n, p)),
            any::<u64>().prop_map(Size::Number),
            prop::sample::select(vec![
                "many",
                "-1",
                "1.5",
                "18446744073709551616",
                "",
                "0x10"
            ])
            .prop_map(Size::Unreadable),
        ],
        prop::option::of(0..=LAST_HTTP_DATE),
        prop::bool::weighted(0.8),
        any::<bool>(),
        Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
    )
        .prop_map(|(name, dir, size, mtime, with_type, url, order)| GenItem {
            name,
            dir,
            size,
            mtime,
            with_type,
            url,
            order,
        })
}

/// A `list` answer: the listed directory first (or the root's own entry), then its items.
#[derive(Debug, Clone)]
struct GenListing {
    /// The listed directory below the root (`None`: the root).
    dir: Option<String>,
    items: Vec<GenItem>,
    strict: bool,
    text_style: u8,
    ws: &'static str,
    /// Objects without a usable `href` (skipped by the reader) at these places.
    hrefless: Vec<(Index, u8)>,
}

fn gen_listing() -> impl Strategy<Value = GenListing> {
    (
        prop::option::of(prop::collection::vec(name(), 1..3).prop_map(|v| v.join("/"))),
        prop::collection::vec(gen_item(), 0..8),
        any::<bool>(),
        any::<u8>(),
        prop::sample::select(vec!["", " ", "\n  "]),
        prop::collection::vec((any::<Index>(), any::<u8>()), 0..3),
    )
        .prop_map(
            |(dir, items, strict, text_style, ws, hrefless)| GenListing {
                dir,
                items,
                strict,
                text_style,
                ws,
                hrefless,
            },
        )
}

impl GenItem {
    fn href(&self, l: &GenListing) -> String {
        let mut h = match &l.dir {
            Some(d) => format!("{}/", encode_path(d, l.strict)),
            None => String::new(),
        };
        h.push_str(&encode(&self.name, l.strict));
        if self.dir {
            h.push('/');
        }
        h
    }

    fn path(&self, l: &GenListing) -> String {
        match &l.dir {
            Some(d) => format!("{d}/{}", self.name),
            None => self.name.clone(),
        }
    }

    fn write(&self, l: &GenListing) -> String {
        let st = l.text_style;
        let mut fields = Vec::new();
        for &i in &self.order {
            match i {
                0 => fields.push(("href".to_string(), json_string(&self.href(l), st))),
                1 if self.with_type => {
                    let t = if self.dir { "directory" } else { "file" };
                    fields.push(("type".into(), json_string(t, st)));
                }
                2 => match &self.size {
                    Size::Absent => {}
                    Size::Text(n, pad) => {
                        fields.push(("size".into(), json_string(&format!("{pad}{n}{pad}"), st)))
                    }
                    Size::Number(n) => fields.push(("size".into(), n.to_string())),
                    Size::Unreadable(s) => fields.push(("size".into(), json_string(s, st))),
                },
                3 => {
                    if let Some(t) = self.mtime {
                        fields.push(("mtime".into(), json_string(&http_date(t), st)));
                    }
                }
                4 if self.url => {
                    // The service's url duplicates the path (unreliable, ignored).
                    let p = self.path(l);
                    let u = format!("https://platform.example/lst/{p}/{p}");
                    fields.push(("url".into(), json_string(&u, st)));
                }
                _ => {}
            }
        }
        json_object(&fields, l.ws)
    }

    fn expected(&self, l: &GenListing) -> ListItem {
        let size = match (&self.size, self.dir) {
            (_, true) => None,
            (Size::Text(n, _) | Size::Number(n), false) => Some(*n),
            _ => None,
        };
        ListItem {
            href: self.href(l),
            path: Some(RemotePath::parse(&self.path(l)).unwrap()),
            is_dir: self.dir,
            size,
            mtime: self.mtime.map(|t| UNIX_EPOCH + Duration::from_secs(t)),
        }
    }
}

/// The answer's text and the items the reader must make of it.
fn write_listing(l: &GenListing) -> (String, Vec<ListItem>) {
    let mut objects = Vec::new();
    let mut want = Vec::new();
    // The queried item first: the directory itself, or the root's own odd entry.
    match &l.dir {
        None => {
            objects.push(json_object(
                &[
                    ("href".into(), json_string("", 0)),
                    ("type".into(), json_string("file", 0)),
                ],
                l.ws,
            ));
            want.push(ListItem {
                href: String::new(),
                path: Some(RemotePath::root()),
                is_dir: true,
                size: None,
                mtime: None,
            });
        }
        Some(d) => {
            let href = format!("{}/", encode_path(d, l.strict));
            objects.push(json_object(
                &[
                    ("href".into(), json_string(&href, l.text_style)),
                    ("type".into(), json_string("directory", l.text_style)),
                    ("mtime".into(), json_string(&http_date(0), 0)),
                ],
                l.ws,
            ));
            want.push(ListItem {
                href,
                path: Some(RemotePath::parse(d).unwrap()),
                is_dir: true,
                size: None,
                mtime: Some(UNIX_EPOCH),
            });
        }
    }
    for it in &l.items {
        objects.push(it.write(l));
        want.push(it.expected(l));
    }
    for (at, kind) in &l.hrefless {
        let k = 1 + at.index(objects.len());
        let junk = match kind % 4 {
            0 => "{}".to_string(),
            1 => r#"{"href": 7, "type": "file"}"#.to_string(),
            2 => r#"{"href": null, "size": "1"}"#.to_string(),
            _ => r#"{"type": "directory", "url": "x"}"#.to_string(),
        };
        objects.insert(k, junk);
    }
    let text = format!("[{}{}{}]", l.ws, objects.join(&format!(",{}", l.ws)), l.ws);
    (text, want)
}

/// What the reader must make of any JSON value (from the SPEC's description of `list`).
fn check_listing_of(v: &Value, got: &Result<Vec<ListItem>, String>) -> Result<(), TestCaseError> {
    let objects = match v {
        Value::Array(items) if items.iter().all(Value::is_object) => items,
        _ => {
            prop_assert!(got.is_err(), "{} was taken as a listing: {:?}", v, got);
            return Ok(());
        }
    };
    let got = got
        .as_ref()
        .map_err(|e| TestCaseError::fail(format!("{v}: {e}")))?;
    let with_href: Vec<&serde_json::Map<String, Value>> = objects
        .iter()
        .filter_map(Value::as_object)
        .filter(|o| o.get("href").is_some_and(Value::is_string))
        .collect();
    prop_assert_eq!(got.len(), with_href.len(), "{}", v);
    for (item, o) in got.iter().zip(with_href) {
        let href = o["href"].as_str().unwrap();
        prop_assert_eq!(&item.href, href);
        prop_assert_eq!(&item.path, &href_path(href));
        let dir = o.get("type").and_then(Value::as_str) == Some("directory")
            || href.ends_with('/')
            || href.trim().is_empty();
        prop_assert_eq!(item.is_dir, dir, "{}", v);
        if let Some(n) = item.size {
            prop_assert!(!dir);
            let said = match &o["size"] {
                Value::String(s) => s.trim().parse::<u64>().ok(),
                Value::Number(x) => x.to_string().parse::<u64>().ok(),
                _ => None,
            };
            prop_assert_eq!(said, Some(n), "{}", v);
        }
        if let Some(t) = item.mtime {
            let said = match &o["mtime"] {
                Value::String(s) => httpdate::parse_http_date(s.trim()).ok(),
                _ => None,
            };
            prop_assert_eq!(said, Some(t), "{}", v);
        }
    }
    Ok(())
}

// ----- the pure properties -----------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes (and arbitrary text as an href): no panic, an answer in bounded time.
    #[test]
    fn list_arbitrary_bytes(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            prop::collection::vec(
                prop::sample::select(vec![
                    "[", "]", "{", "}", ",", ":", "\"href\"", "\"size\"", "\"type\"",
                    "\"directory\"", "\"12\"", "1e400", "-0", "null", "true", "\"\\ud800\"",
                    "\"\\u0000\"", "\"%C3%28\"", "\"lst/\"", " ", "\u{FEFF}", "\"",
                ]),
                0..60,
            ).prop_map(|v| v.concat().into_bytes()),
        ],
        href in any::<String>(),
    ) {
        let got = bounded(move || {
            let list = parse_list(&bytes).map(|v| v.len()).map_err(|e| e.0);
            (list, href_path(&href))
        })
        .map_err(TestCaseError::fail)?;
        if let (_, Some(p)) = &got {
            prop_assert!(!p.as_str().starts_with('/') && !p.as_str().ends_with('/'));
        }
    }

    /// Any JSON value: a listing exactly when it is an array of objects; then one item per
    /// object with a string `href`, in order, each read as the SPEC says.
    #[test]
    fn list_arbitrary_json(v in prop_oneof![
        json(),
        prop::collection::vec(
            prop::collection::vec((key(), leaf()), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            0..6,
        ).prop_map(Value::Array),
    ]) {
        let text = serde_json::to_vec(&v).unwrap();
        let got = parse_list(&text).map_err(|e| e.0);
        check_listing_of(&v, &got)?;
    }

    /// Round trip: a listing written as the service writes it (hrefs from the storage root,
    /// percent-encoded, directories ending in `/`, the root's own `{"href": "", "type":
    /// "file"}`, sizes as strings or numbers, RFC 1123 mtimes, the unreliable `url`, keys in
    /// any order, JSON escapes of every kind, objects without `href` in between) comes back
    /// as the same items.
    #[test]
    fn list_round_trip(l in gen_listing()) {
        let (text, want) = write_listing(&l);
        let got = parse_list(text.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{}\n{text}", e.0)))?;
        prop_assert_eq!(got.len(), want.len(), "{}", text);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert_eq!(g, w, "item {} of\n{}", i, text);
        }
    }

    /// Certificate files: arbitrary bytes and damaged real proxy files give an answer (an
    /// error, never a panic) in bounded time.
    #[test]
    fn certificate_files_arbitrary(
        data in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            mutated_pem(),
        ],
    ) {
        let res = bounded(move || {
            check_certificate_pem(Path::new("/x/proxy.pem"), &data, SystemTime::now())
                .map(|c| c.certificates)
        })
        .map_err(TestCaseError::fail)?;
        if let Ok(n) = res {
            prop_assert!(n >= 1);
        }
    }
}

/// A proxy file (proxy, key, user certificate), made once.
fn real_proxy_file() -> &'static str {
    static FILE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let pki = ProxyPki::new("proptest CA");
        let user = pki.user("Alice", -86_400, 86_400 * 300);
        user.proxy_file(-60, 3 * 86_400)
    })
}

/// Edits of a real proxy file: flipped bytes (in the base64 or in the armour), cut lines,
/// lines swapped, armour repeated.
fn mutated_pem() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((0u8..6, any::<Index>(), any::<Index>(), any::<u8>()), 1..6).prop_map(
        |edits| {
            let mut lines: Vec<Vec<u8>> = real_proxy_file()
                .lines()
                .map(|l| l.as_bytes().to_vec())
                .collect();
            for (kind, a, b, byte) in edits {
                let i = a.index(lines.len());
                match kind {
                    0 => {
                        let l = &mut lines[i];
                        if !l.is_empty() {
                            let k = b.index(l.len());
                            l[k] = byte;
                        }
                    }
                    1 => {
                        lines.remove(i);
                        if lines.is_empty() {
                            lines.push(Vec::new());
                        }
                    }
                    2 => {
                        let j = b.index(lines.len());
                        lines.swap(i, j);
                    }
                    3 => {
                        let l = lines[i].clone();
                        lines.insert(b.index(lines.len() + 1), l);
                    }
                    4 => {
                        let l = &mut lines[i];
                        let k = b.index(l.len() + 1);
                        l.truncate(k);
                    }
                    _ => {
                        let armour: &[&[u8]] = &[
                            b"-----BEGIN CERTIFICATE-----",
                            b"-----END CERTIFICATE-----",
                            b"-----BEGIN PRIVATE KEY-----",
                            b"-----BEGIN RSA PRIVATE KEY-----",
                            b"Proc-Type: 4,ENCRYPTED",
                            b"MIIB",
                            b"====",
                        ];
                        lines.insert(
                            b.index(lines.len() + 1),
                            armour[byte as usize % armour.len()].to_vec(),
                        );
                    }
                }
            }
            lines.join(&b'\n')
        },
    )
}

#[test]
fn the_real_proxy_file_is_accepted() {
    // The mutations start from a file the checker accepts.
    let c = check_certificate_pem(
        Path::new("/x/proxy.pem"),
        real_proxy_file().as_bytes(),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(c.certificates, 2);
    assert!(c.is_proxy);
}

#[test]
fn deeply_nested_json_is_an_error_not_a_crash() {
    for open in ["[", "{\"a\":"] {
        let text = open.repeat(100_000);
        let r = bounded(move || {
            parse_list(text.as_bytes())
                .map(|v| v.len())
                .map_err(|e| e.0)
        });
        assert!(matches!(r, Ok(Err(_))), "{r:?}");
    }
}

// ----- a scripted platform on loopback -----------------------------------------------------

/// One request as the fake platform saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    /// Path and query, still percent-encoded.
    target: String,
}

/// An answer: status, content type and body.
type Answer = (u16, &'static str, Vec<u8>);

type Script = Box<dyn Fn(&Request) -> Answer + Send>;

/// A minimal HTTP/1.1 server (one connection per request, `Connection: close`) whose
/// answers a test sets case by case.
struct Fake {
    base: String,
    script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Box::new(|_: &Request| {
            (404, "text/html", Vec::new())
        })));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (script.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, r) = (s.clone(), r.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &s, &r);
                });
            }
        });
        Fake { base, script, seen }
    }

    fn set(&self, f: impl Fn(&Request) -> Answer + Send + 'static) {
        *self.script.lock().unwrap() = Box::new(f);
        self.seen.lock().unwrap().clear();
    }

    fn env(&self) -> EnvSnapshot {
        EnvSnapshot::from_pairs([
            (
                "CTADS_URL".to_string(),
                format!("{}/services/downloadservice/", self.base),
            ),
            (
                "CTACS_URL".to_string(),
                format!("{}/services/certificateservice/", self.base),
            ),
            ("CTADATA_TOKEN".to_string(), "tok".to_string()),
            ("HOME".to_string(), "/nonexistent-home".to_string()),
        ])
    }

    fn profile(&self) -> ctadata_core::config::ResolvedProfile {
        let opts = LoadOptions::default()
            .with_profile(Some("platform".into()))
            .with_system_file(Some("/nonexistent/config.toml".into()));
        ctadata_core::config::load(&opts, &self.env()).unwrap()
    }

    fn downloadservice(&self) -> DownloadService {
        open_service(&self.profile(), &self.env(), &Default::default()).unwrap()
    }

    fn certificateservice(&self) -> CertificateService {
        CertificateService::open(&self.profile(), &self.env(), false).unwrap()
    }
}

fn serve(
    conn: TcpStream,
    script: &Mutex<Script>,
    seen: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let req = Request { method, target };
    let (status, ctype, answer) = {
        let script = script.lock().unwrap();
        (*script)(&req)
    };
    seen.lock().unwrap().push(req);
    let mut out = conn;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    )?;
    out.write_all(&answer)?;
    out.flush()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn json_answer(text: impl Into<Vec<u8>>) -> Answer {
    (200, "application/json", text.into())
}

/// Statuses a broken platform may answer (none that the client retries, to stay fast).
fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => Just(200u16),
        1 => prop::sample::select(vec![201u16, 204, 302, 400, 401, 403, 404, 405, 409, 413, 415, 500, 507]),
    ]
}

/// A body: arbitrary bytes, arbitrary JSON, or an HTML page.
fn body() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    (
        prop::sample::select(vec!["application/json", "text/html", "text/plain"]),
        prop_oneof![
            json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            prop::collection::vec(any::<u8>(), 0..512),
            Just(b"<!DOCTYPE html><html><body>Sign in</body></html>".to_vec()),
        ],
    )
}

/// The user folder the scripts below make the backend find (hub user `u`).
const HOME: &str = "lst/users/u";

/// The fake platform as a downloadservice whose storage holds `lst/users/` and answers
/// `upload` and `list` as `upload` and `list` say.
fn platform_script(
    user: Answer,
    upload: Answer,
    list: impl Fn(&str) -> Answer + Send + 'static,
) -> impl Fn(&Request) -> Answer + Send + 'static {
    move |r: &Request| {
        let t = r.target.as_str();
        if t == "/hub/api/user" {
            user.clone()
        } else if t.starts_with("/services/downloadservice/webdav/") && r.method == "PROPFIND" {
            (207, "application/xml", Vec::new())
        } else if t.starts_with("/services/downloadservice/upload/") && r.method == "POST" {
            upload.clone()
        } else if let Some(p) = t.strip_prefix("/services/downloadservice/list") {
            list(p.trim_start_matches('/'))
        } else {
            (404, "text/html", b"not found".to_vec())
        }
    }
}

/// A `list` answer for one file.
fn file_listing(encoded: &str, size: u64) -> Answer {
    json_answer(format!(
        r#"[{{"href": {}, "type": "file", "size": "{size}", "mtime": "Thu, 14 Nov 2024 10:00:00 GMT"}}]"#,
        json_string(encoded, 0)
    ))
}

// ----- the properties that go through HTTP -------------------------------------------------

/// An answer: arbitrary (any status, bytes or JSON), or `plausible` with some probability.
fn answer_or(plausible: Answer) -> impl Strategy<Value = Answer> {
    prop_oneof![
        (status(), body()).prop_map(|(s, (t, b))| (s, t, b)),
        Just(plausible),
    ]
}

/// Whatever the hub, `list` and `upload` answer (any status, any bytes, any JSON, or the
/// right answer), a put ends with an answer (never a panic) in bounded time, and it
/// succeeds only when `upload` said `200` with the path as JSON (or `204`) and `list` then
/// showed the length sent.
#[test]
fn upload_with_arbitrary_answers() {
    let fake = Arc::new(Mutex::new(Fake::start()));
    let rt = Arc::new(runtime());
    let target = format!("{HOME}/f.h5");
    check(
        48,
        (
            answer_or(json_answer(r#"{"name": "u"}"#)),
            answer_or(file_listing(&target, 10)),
            answer_or(json_answer(format!(
                r#"{{"path": "{target}", "status": "uploaded", "total_written": 10}}"#
            ))),
            any::<bool>(),
        ),
        |(user, list, upload, absent)| {
            let (fake, rt) = (fake.clone(), rt.clone());
            let listed = list.clone();
            let uploaded = upload.clone();
            let res = bounded(move || {
                let fake = fake.lock().unwrap();
                fake.set(platform_script(user, upload, move |_| list.clone()));
                let ds = fake.downloadservice();
                let path = RemotePath::parse(&format!("{HOME}/f.h5")).unwrap();
                rt.block_on(ds.put(
                    &path,
                    Upload::from_bytes(&b"0123456789"[..]),
                    PutOptions::default().with_known_absent(absent),
                ))
                .map_err(|e| e.to_string())
            })
            .map_err(TestCaseError::fail)?;
            if let Ok(out) = res {
                prop_assert_eq!(out.size, 10);
                let said = serde_json::from_slice::<Value>(&uploaded.2).ok();
                let path = said
                    .as_ref()
                    .and_then(|v| v.get("path"))
                    .and_then(Value::as_str)
                    .and_then(|p| RemotePath::parse(p).ok());
                match uploaded.0 {
                    200 => prop_assert_eq!(Some(&out.path), path.as_ref()),
                    204 => prop_assert_eq!(out.path.as_str(), "lst/users/u/f.h5"),
                    other => prop_assert!(false, "a success after upload answered HTTP {}", other),
                }
                // The item the backend reads: the one with the path, else the first one
                // when it is not a child (the service puts the queried item first).
                let items = parse_list(&listed.2).unwrap_or_default();
                let shown = items
                    .iter()
                    .find(|i| i.path.as_ref() == Some(&out.path))
                    .or_else(|| {
                        items.first().filter(|i| {
                            i.path.as_ref().and_then(RemotePath::parent).as_ref() != Some(&out.path)
                        })
                    });
                prop_assert!(
                    listed.0 == 200 && shown.is_some_and(|i| i.size.is_none_or(|n| n == 10)),
                    "a success after list answered {:?}",
                    listed
                );
            }
            Ok(())
        },
    );
}

/// Where the upload answer says the file landed.
#[derive(Debug, Clone)]
enum Landed {
    /// Where it was sent (optionally with a leading `/`).
    Asked(bool),
    /// Elsewhere (a valid path).
    Elsewhere(String),
    /// Not a usable path.
    Unusable(&'static str),
    /// No `path` key, or not a string.
    Missing(Option<Value>),
}

#[derive(Debug, Clone)]
struct UploadAnswer {
    landed: Landed,
    /// `total_written`: the length sent, another number, or absent.
    written: Option<u64>,
    /// What `list` then says the storage has: `None` nothing (404), else a size.
    stored: Option<u64>,
    extra: Vec<(String, Value)>,
    text_style: u8,
    ws: &'static str,
}

fn upload_answer() -> impl Strategy<Value = UploadAnswer> {
    let len = 10u64;
    (
        prop_oneof![
            4 => any::<bool>().prop_map(Landed::Asked),
            2 => name().prop_map(|n| Landed::Elsewhere(format!("{HOME}/sub dir/{n}"))),
            1 => prop::sample::select(vec!["lst/../etc", "a//b", "lst/./x", "x/\u{1}y", ".."])
                .prop_map(Landed::Unusable),
            1 => prop::option::of(prop_oneof![Just(Value::Null), Just(Value::from(3)), Just(Value::Bool(true))])
                .prop_map(Landed::Missing),
        ],
        prop_oneof![
            2 => Just(Some(len)),
            1 => Just(None),
            1 => any::<u64>().prop_map(Some),
        ],
        prop_oneof![3 => Just(Some(len)), 1 => Just(None), 1 => (0u64..20).prop_map(Some)],
        prop::collection::vec(
            (
                prop::sample::select(vec!["status", "message", "url", "x"]).prop_map(str::to_string),
                leaf(),
            ),
            0..3,
        ),
        any::<u8>(),
        prop::sample::select(vec!["", " ", "\n"]),
    )
        .prop_map(|(landed, written, stored, extra, text_style, ws)| UploadAnswer {
            landed,
            written,
            stored,
            extra,
            text_style,
            ws,
        })
}

/// Round trip of the upload answer: `{"path": ..., "status": "uploaded", "total_written":
/// n}` in any key order and spelling. A usable path with the length sent, and a storage
/// that lists that length there, is a success at that path; a wrong `total_written`, a
/// missing or unusable `path`, or a storage that lists something else are the errors the
/// SPEC asks for.
#[test]
fn upload_answer_round_trip() {
    let fake = Arc::new(Mutex::new(Fake::start()));
    let rt = Arc::new(runtime());
    let asked = RemotePath::parse(&format!("{HOME}/f x.h5")).unwrap();
    check(48, upload_answer(), |a| {
        let len = 10u64;
        let mut fields: Vec<(String, String)> = Vec::new();
        let landed_text = match &a.landed {
            Landed::Asked(slash) => Some(format!("{}{asked}", if *slash { "/" } else { "" })),
            Landed::Elsewhere(p) => Some(p.clone()),
            Landed::Unusable(p) => Some(p.to_string()),
            Landed::Missing(v) => {
                if let Some(v) = v {
                    fields.push(("path".into(), v.to_string()));
                }
                None
            }
        };
        if let Some(p) = &landed_text {
            fields.push(("path".into(), json_string(p, a.text_style)));
        }
        fields.push(("status".into(), json_string("uploaded", a.text_style)));
        if let Some(w) = a.written {
            fields.push(("total_written".into(), w.to_string()));
        }
        for (k, v) in &a.extra {
            if !fields.iter().any(|(f, _)| f == k) {
                fields.push((k.clone(), v.to_string()));
            }
        }
        let turn = a.text_style as usize % fields.len();
        fields.rotate_left(turn);
        let text = json_object(&fields, a.ws);
        let stored = a.stored;
        let (fake, rt, asked) = (fake.clone(), rt.clone(), asked.clone());
        let text2 = text.clone();
        let res = bounded(move || {
            let fake = fake.lock().unwrap();
            fake.set(platform_script(
                json_answer(r#"{"name": "u", "admin": false}"#),
                json_answer(text2),
                move |p| match stored {
                    Some(n) if !p.is_empty() => file_listing(p, n),
                    _ => (404, "text/html", b"Not Found".to_vec()),
                },
            ));
            let ds = fake.downloadservice();
            rt.block_on(ds.put(
                &asked,
                Upload::from_bytes(&b"0123456789"[..]),
                PutOptions::default().with_known_absent(true),
            ))
        })
        .map_err(TestCaseError::fail)?;
        let landed = landed_text
            .as_deref()
            .and_then(|p| RemotePath::parse(p).ok());
        match (&a.landed, landed) {
            (Landed::Missing(_), _) => prop_assert!(
                matches!(&res, Err(Error::Protocol { message, .. }) if message.contains("no 'path'")),
                "{} gave {:?}",
                text,
                res
            ),
            (_, None) => prop_assert!(
                matches!(&res, Err(Error::Protocol { message, .. }) if message.contains("unusable path")),
                "{} gave {:?}",
                text,
                res
            ),
            (_, Some(at)) => {
                if a.written.is_some_and(|w| w != len) || stored != Some(len) {
                    prop_assert!(
                        matches!(&res, Err(Error::Integrity { .. })),
                        "{} (storage lists {:?}) gave {:?}",
                        text,
                        stored,
                        res
                    );
                } else {
                    let out = res.map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                    prop_assert_eq!(&out.path, &at, "{}", text);
                    prop_assert_eq!(out.size, len);
                }
            }
        }
        Ok(())
    });
}

/// Whatever the hub answers to `api/user` (any status, bytes or JSON), finding the user
/// folder ends with an answer in bounded time, and a JSON object with a non-empty string
/// `name` names the folder after it.
#[test]
fn hub_user_answers() {
    let fake = Arc::new(Mutex::new(Fake::start()));
    let rt = Arc::new(runtime());
    check(
        48,
        prop_oneof![
            (status(), body()).prop_map(|(s, (t, b))| (s, t, b)),
            (name(), any::<u8>()).prop_map(|(n, st)| {
                let text = json_object(
                    &[
                        ("kind".into(), json_string("user", 0)),
                        ("name".into(), json_string(&n, st)),
                        ("admin".into(), "false".into()),
                    ],
                    " ",
                );
                json_answer(text)
            }),
        ],
        |(s, t, b)| {
            let want = (s == 200)
                .then(|| serde_json::from_slice::<Value>(&b).ok())
                .flatten()
                .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
                .filter(|n| !n.is_empty());
            let (fake, rt) = (fake.clone(), rt.clone());
            let res = bounded(move || {
                let fake = fake.lock().unwrap();
                fake.set(platform_script(
                    (s, t, b),
                    (500, "text/plain", Vec::new()),
                    |_| (404, "text/html", Vec::new()),
                ));
                let ds = fake.downloadservice();
                rt.block_on(ds.home()).map_err(|e| e.to_string())
            })
            .map_err(TestCaseError::fail)?;
            match want {
                Some(n) => {
                    let home = res.map_err(TestCaseError::fail)?;
                    let folder = ctadata_downloadservice::user_folder_name(&n);
                    prop_assert_eq!(home.as_str(), format!("lst/users/{folder}"));
                }
                None => prop_assert!(res.is_err(), "{:?}", res),
            }
            Ok(())
        },
    );
}

fn checked(pem: &str) -> CheckedCertificate {
    CheckedCertificate {
        path: "/x/proxy.pem".into(),
        pem: pem.into(),
        subject: "/O=cta-data tests/CN=Alice/CN=1234567890".into(),
        issuer: "/O=cta-data tests/CN=Alice".into(),
        not_before: SystemTime::now(),
        not_after: SystemTime::now() + Duration::from_secs(3600),
        is_proxy: true,
        certificates: 2,
    }
}

/// Whatever the certificateservice answers (any status, bytes, JSON), storing a personal
/// or the shared certificate ends with an answer in bounded time; a success is only ever
/// made of a `200` JSON answer.
#[test]
fn certificate_service_arbitrary_answers() {
    let fake = Arc::new(Mutex::new(Fake::start()));
    let rt = Arc::new(runtime());
    check(
        48,
        (status(), body(), any::<bool>()),
        |(s, (t, b), shared)| {
            let is_json = serde_json::from_slice::<Value>(&b).is_ok();
            let (fake, rt) = (fake.clone(), rt.clone());
            let res = bounded(move || {
                let fake = fake.lock().unwrap();
                fake.set(move |_| (s, t, b.clone()));
                let cs = fake.certificateservice();
                let c = checked("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
                rt.block_on(async {
                    if shared {
                        cs.upload_shared(&c).await
                    } else {
                        cs.upload_personal(&c, "cta", None).await
                    }
                })
                .map(|st| st.message)
                .map_err(|e| e.to_string())
            })
            .map_err(TestCaseError::fail)?;
            if res.is_ok() {
                prop_assert!(s == 200 && is_json, "HTTP {} gave {:?}", s, res);
            }
            Ok(())
        },
    );
}

/// How the certificateservice answered a store.
#[derive(Debug, Clone)]
enum Validity {
    Absent,
    Text(String),
    /// `[reason, 400]`: not stored.
    Refused(String),
    Other(Value),
}

/// Round trip of the certificateservice's answers: `{"message": m, "validity": v}` for a
/// personal certificate (a string: stored until then; a list: a refusal with its reason;
/// anything else: stored, no date) and `{"certificateUploaded": b, "message": m}` for the
/// shared one.
#[test]
fn certificate_service_answers_round_trip() {
    let fake = Arc::new(Mutex::new(Fake::start()));
    let rt = Arc::new(runtime());
    let strategy = (
        prop::option::of(any::<String>()),
        prop_oneof![
            Just(Validity::Absent),
            (0..=LAST_HTTP_DATE).prop_map(|t| Validity::Text(http_date(t))),
            "[a-z ,.]{1,40}".prop_map(Validity::Refused),
            prop_oneof![
                Just(Value::Null),
                Just(Value::from(400)),
                Just(Value::Bool(true))
            ]
            .prop_map(Validity::Other),
        ],
        prop::option::of(any::<bool>()),
        any::<u8>(),
        any::<bool>(),
    );
    check(48, strategy, |(message, validity, uploaded, st, shared)| {
        let mut fields = Vec::new();
        if let Some(m) = &message {
            fields.push(("message".to_string(), json_string(m, st)));
        }
        if shared {
            if let Some(u) = uploaded {
                fields.push(("certificateUploaded".into(), u.to_string()));
            }
        } else {
            match &validity {
                Validity::Absent => {}
                Validity::Text(t) => fields.push(("validity".into(), json_string(t, st))),
                Validity::Refused(r) => {
                    fields.push(("validity".into(), format!("[{}, 400]", json_string(r, st))))
                }
                Validity::Other(v) => fields.push(("validity".into(), v.to_string())),
            }
        }
        if st % 2 == 1 {
            fields.reverse();
        }
        let text = json_object(&fields, if st % 3 == 0 { "" } else { " " });
        let (fake, rt) = (fake.clone(), rt.clone());
        let answer = text.clone();
        let res = bounded(move || {
            let fake = fake.lock().unwrap();
            fake.set(move |_| json_answer(answer.clone()));
            let cs = fake.certificateservice();
            let c = checked("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
            rt.block_on(async {
                if shared {
                    cs.upload_shared(&c).await
                } else {
                    cs.upload_personal(&c, "cta", None).await
                }
            })
        })
        .map_err(TestCaseError::fail)?;
        let message = message.unwrap_or_default();
        if shared {
            if uploaded == Some(false) {
                prop_assert!(
                    matches!(res, Err(Error::Auth { .. })),
                    "{} gave {:?}",
                    text,
                    res
                );
            } else {
                let s = res.map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                prop_assert_eq!(s.message, message);
            }
        } else {
            match validity {
                Validity::Refused(r) => prop_assert!(
                    matches!(&res, Err(Error::Auth { message, .. }) if message.contains(&r) && message.contains("(400)")),
                    "{} gave {:?}",
                    text,
                    res
                ),
                v => {
                    let s = res.map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                    prop_assert_eq!(&s.message, &message, "{}", text);
                    let want = match v {
                        Validity::Text(t) => Some(t),
                        _ => None,
                    };
                    prop_assert_eq!(s.validity, want, "{}", text);
                }
            }
        }
        Ok(())
    });
}

#[test]
fn the_fake_platform_answers() {
    // The scripted server itself: a request and its answer, seen as sent.
    let fake = Fake::start();
    fake.set(|r| json_answer(format!("{{\"target\": \"{}\"}}", r.target)));
    let rt = runtime();
    let body = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/a%20b?x=1", fake.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert_eq!(body, r#"{"target": "/a%20b?x=1"}"#);
    let seen: HashSet<String> = fake
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert!(seen.contains("GET /a%20b?x=1"), "{seen:?}");
}
