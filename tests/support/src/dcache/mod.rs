//! A double of a dCache WebDAV door and one pool node, on real sockets.
//!
//! The door listens on `127.0.0.1`, the pool on `127.0.0.2` (another host to a client, so a
//! test can check that a bearer token never reaches the pool). Files live in a real
//! directory ([`DcacheDouble::root`]).
//!
//! Behaviour:
//! * `GET` on the door answers `307` to the pool with a `?dcache-http-uuid=` naming a mover:
//!   a read mover serves further requests while a connection that used it is open (as
//!   dCache's HttpPoolRequestHandler does), then any use answers `400` "resubmit to door";
//!   `HEAD` on the door answers directly.
//! * `PUT` on the door answers `307` to the pool without reading the body (after
//!   [`DcacheConfig::redirect_delay`]) and closes the connection; any body bytes that reach
//!   the door anyway are counted in [`Stats::door_body_bytes`].
//! * Files are write-once: a `PUT` over an existing file is refused with `409 Conflict`
//!   (what dCache's WebDAV door answers for `FileExistsCacheException`).
//! * A `PUT` without `Content-Length` gets `411` (real dCache has made an empty file of
//!   it); a missing parent gives `409`; full storage ([`DcacheDouble::set_full`]) `507`; a
//!   wrong `Content-MD5` `400` with the file left behind, as dCache does after a redirect.
//! * `PROPFIND` needs `Depth: 0` or `1` (`infinity` or no `Depth`: `403` with
//!   `<propfind-finite-depth/>`). Answers use the prefixes `d:` (DAV:), `ns1:` (dCache) and
//!   `ns2:` (SRM); hrefs are absolute paths, percent-encoded except for sub-delimiters
//!   (`+`, `&`, `(` ... stay raw, XML-escaped), directories end in `/`. Properties asked for
//!   but missing go in a second `propstat` with `404`; with `allprop` a file always gets one.
//! * `MKCOL` (with or without a trailing `/`), `DELETE` (recursive), `MOVE` and `COPY`
//!   (`Overwrite: F` gives `412`).
//! * Switches that make it answer as XRootD 5.5.3's XrdHttp does (off by default):
//!   [`DcacheDouble::strict_header_case`], [`DcacheDouble::hang_empty_put`],
//!   [`DcacheDouble::raw_hrefs`], [`DcacheDouble::unasked_digest`],
//!   [`DcacheDouble::broken_open_range`], [`DcacheDouble::xrootd_namespace`],
//!   [`DcacheDouble::cut_at_question_mark`].
//! * Switches for downloads in several streams: [`DcacheDouble::ignore_range`] (a server
//!   without ranges), [`DcacheDouble::replace_after_gets`] (a file rewritten between two
//!   ranges); [`Stats::pool_sent_bytes`] counts what the pool sent.
//! * Tape (issue 14): the WLCG Tape REST API on the door under `/api/v1/tape`, found through
//!   `/.well-known/wlcg-tape-rest-api`; staging takes [`DcacheDouble::tape_stage_delay`],
//!   [`DcacheDouble::tape_fail`] and [`DcacheDouble::tape_never_online`] make a file fail or
//!   never come online, [`DcacheDouble::tape_no_api`] removes the API, and a `GET` of a
//!   `NEARLINE` file blocks for [`DcacheDouble::nearline_get_delay`] (see `tape.rs`).
//! * Macaroons (see `macaroon.rs`): `POST` with `Content-Type: application/macaroon-request`
//!   mints one (V1 serialisation, HMAC chain under the door's random key); presented as
//!   `Authorization: Bearer` or `?authz=`, its `path:`, `activity:`, `ip:` and `before:`
//!   caveats are enforced (forged or expired `401`, outside its rights `403`). Switches:
//!   [`DcacheDouble::refuse_macaroons`], [`DcacheDouble::macaroon_html`],
//!   [`DcacheDouble::set_macaroon_max_validity`], [`DcacheDouble::set_macaroon_client_ip`].
//! * HTTP third-party copy (pull and push, performance markers, switches to refuse or
//!   fail halfway): see [`tpc`].
//! * Not modelled: dCache's `302` from a directory URL without `/` (the HTML page is served
//!   directly).

mod door;
pub mod jwt;
mod macaroon;
mod paths;
mod pool;
mod propfind;
mod respond;
mod tape;
// ---- third-party copy (issue 14, cp) ----
pub mod tpc;
// ---- end of third-party copy ----

use crate::serve::{self, ServerRuntime};
use crate::tls::TestCa;
use paths::DPath;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// The time a real dCache door has been seen to take before redirecting a `PUT` (more than
/// curl's default one-second wait for `100 Continue`).
pub const REAL_DOOR_REDIRECT_DELAY: Duration = Duration::from_millis(1200);

/// How a [`DcacheDouble`] is set up.
#[derive(Debug, Clone, Default)]
pub struct DcacheConfig {
    /// Backing directory; `None` makes a temporary one, removed on drop.
    pub root: Option<PathBuf>,
    /// When set, the door requires `Authorization: Bearer <token>` on every request.
    pub token: Option<String>,
    /// When set, the door accepts exactly the JWTs this policy accepts (signed by an
    /// OpenID provider's keys), as dCache does with a trusted issuer.
    pub jwt: Option<jwt::JwtPolicy>,
    /// Serve `https` (door and pool) with [`DcacheConfig::ca`] or a fresh [`TestCa`].
    pub tls: bool,
    /// The CA to take the server certificate from when `tls` is on.
    pub ca: Option<TestCa>,
    /// How long the door waits before answering a `PUT` with its redirect.
    pub redirect_delay: Duration,
    /// Paths under this one (e.g. `/cta/forbidden`) are answered `403` by the door.
    pub forbidden_prefix: Option<String>,
    // tape
    /// Serve the tape REST API on a second port of `127.0.0.1` (dCache's frontend) instead
    /// of the door: discovery stays on the door and names the frontend.
    pub tape_frontend: bool,
}

/// Which server of the double handled a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The WebDAV door (`127.0.0.1`).
    Door,
    /// The pool node (`127.0.0.2`).
    Pool,
}

/// Tape state of a file as reported in `FileLocality`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locality {
    /// On disk only (the default).
    #[default]
    Online,
    /// On tape only: must be staged.
    Nearline,
    /// On disk and on tape.
    OnlineAndNearline,
}

impl Locality {
    /// The value dCache writes in the `FileLocality` property.
    pub fn as_str(self) -> &'static str {
        match self {
            Locality::Online => "ONLINE",
            Locality::Nearline => "NEARLINE",
            Locality::OnlineAndNearline => "ONLINE_AND_NEARLINE",
        }
    }
}

/// One request as seen by the door or the pool. Never holds the `Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Door or pool.
    pub side: Side,
    /// The HTTP method.
    pub method: String,
    /// Path and query as sent (still percent-encoded).
    pub path_and_query: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `Want-Digest` header.
    pub want_digest: Option<String>,
    /// The `Expect` header.
    pub expect: Option<String>,
    /// The `Depth` header.
    pub depth: Option<String>,
    /// The `Content-Length` header.
    pub content_length: Option<String>,
    /// Whether an `Authorization` header was present.
    pub authorization: bool,
    /// The status answered (0 when the connection broke before an answer).
    pub status: u16,
}

/// Counters and the request log of a [`DcacheDouble`].
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests received by the door.
    pub door_requests: u64,
    /// Requests received by the pool.
    pub pool_requests: u64,
    /// Request-body bytes that reached the door (should stay 0 for well-behaved uploads).
    pub door_body_bytes: u64,
    /// Request-body bytes received by the pool.
    pub pool_body_bytes: u64,
    /// File bytes the pool sent in answers to `GET`.
    pub pool_sent_bytes: u64,
    /// Whether any request to the pool carried an `Authorization` header.
    pub pool_saw_authorization: bool,
    /// Redirects (`307`) issued by the door.
    pub redirects: u64,
    /// Pool requests refused because their uuid was unknown or already used.
    pub stale_uuid_hits: u64,
    /// Every request, door and pool, in arrival order.
    pub log: Vec<RequestRecord>,
    /// TCP (or TLS) connections accepted by the door.
    pub door_connections: u64,
    /// TCP (or TLS) connections accepted by the pool.
    pub pool_connections: u64,
}

#[derive(Debug, Clone)]
struct Failure {
    status: u16,
    remaining: usize,
    retry_after: Option<u64>,
}

#[derive(Debug, Default)]
struct Faults {
    pool_idle_close: Option<Duration>,
    drop_reused_pool_requests: usize,
    fail_door: Option<Failure>,
    fail_pool: Option<Failure>,
    truncate_next_get: Option<u64>,
    corrupt_digest: bool,
    malformed_propfind: bool,
    extra_hrefs: Vec<String>,
    synthetic: HashMap<DPath, usize>,
    synthetic_pause: Option<(usize, Duration)>,
    locality: HashMap<DPath, Locality>,
    full: bool,
    strict_header_case: bool,
    hang_empty_put: bool,
    raw_hrefs: bool,
    unasked_digest: bool,
    broken_open_range: bool,
    xrootd_namespace: bool,
    cut_at_question_mark: bool,
    ignore_range: bool,
    replace_after_gets: Option<(usize, Vec<u8>)>,
    // mount (issue 19): every pool GET stalls after this many bytes
    stall_gets: Option<u64>,
}

#[derive(Debug, Clone)]
struct Ticket {
    path: DPath,
    write: bool,
    // mount (issue 19): as in dCache's HttpPoolNettyServer, a read mover stays registered
    // while a connection that opened it is open (non-exclusive opens, counted), and ends when
    // the last such connection closes; a write mover serves one request.
    /// Connections that opened this (read) ticket and are still open.
    open: usize,
    /// Some connection has used it: once `open` falls back to 0, it is gone.
    used: bool,
}

#[derive(Default)]
struct Counters {
    door_requests: AtomicU64,
    pool_requests: AtomicU64,
    door_body_bytes: AtomicU64,
    pool_body_bytes: AtomicU64,
    pool_sent_bytes: AtomicU64,
    pool_auth: AtomicU64,
    redirects: AtomicU64,
    stale_uuid: AtomicU64,
    /// Door connections that still have to count the body bytes a client sent.
    pending_drains: AtomicU64,
    door_connections: AtomicU64,
    pool_connections: AtomicU64,
}

/// State shared by the door, the pool and the test.
struct Shared {
    root: PathBuf,
    door_url: String,
    pool_url: String,
    token: Mutex<Option<String>>,
    jwt: Option<jwt::JwtPolicy>,
    forbidden: Option<DPath>,
    redirect_delay: Mutex<Duration>,
    tickets: Mutex<HashMap<String, Ticket>>,
    faults: Mutex<Faults>,
    counters: Counters,
    log: Mutex<Vec<RequestRecord>>,
    checksums: Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>,
    // tape
    tape: Mutex<tape::TapeState>,
    tape_frontend_url: Option<String>,
    // macaroons
    /// The door's key for minting and checking macaroons.
    macaroon_key: [u8; 32],
    /// How macaroon requests are answered, and the limits applied.
    macaroons: Mutex<macaroon::Settings>,
    // ---- third-party copy (issue 14, cp) ----
    tpc: Mutex<tpc::TpcState>,
    // ---- end of third-party copy ----
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    fn locality(&self, path: &DPath) -> Locality {
        self.faults()
            .locality
            .get(path)
            .copied()
            .unwrap_or_default()
    }

    /// Takes one failure off the door's (or pool's) queue.
    fn take_failure(&self, side: Side) -> Option<(u16, Option<u64>)> {
        let mut faults = self.faults();
        let slot = match side {
            Side::Door => &mut faults.fail_door,
            Side::Pool => &mut faults.fail_pool,
        };
        let f = slot.as_mut()?;
        let out = (f.status, f.retry_after);
        f.remaining -= 1;
        if f.remaining == 0 {
            *slot = None;
        }
        Some(out)
    }

    /// Issues a single-use pool URL for `path`.
    fn ticket(&self, path: &DPath, write: bool) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        lock(&self.tickets).insert(
            uuid.clone(),
            Ticket {
                path: path.clone(),
                write,
                open: 0,
                used: false,
            },
        );
        self.counters.redirects.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}{}?dcache-http-uuid={}&dcache-http-ref={}",
            self.pool_url,
            path.href(false),
            uuid,
            paths::encode_query_value(&self.door_url)
        )
    }

    /// Adler32 of a file, cached by size and mtime.
    fn adler32(&self, path: &Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(path)?;
        let mtime = meta.modified()?;
        if let Some((size, m, v)) = lock(&self.checksums).get(path) {
            if *size == meta.len() && *m == mtime {
                return Ok(v.clone());
            }
        }
        let v = crate::checksum::file_digest(path, crate::checksum::DigestAlgo::Adler32)?;
        lock(&self.checksums).insert(path.to_path_buf(), (meta.len(), mtime, v.clone()));
        Ok(v)
    }

    fn record(&self, rec: RequestRecord) {
        lock(&self.log).push(rec);
    }
}

/// A dCache door + pool double. See the [module documentation](self).
pub struct DcacheDouble {
    shared: Arc<Shared>,
    ca: Option<TestCa>,
    _rt: ServerRuntime,
    _tempdir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for DcacheDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DcacheDouble")
            .field("door", &self.shared.door_url)
            .field("pool", &self.shared.pool_url)
            .field("root", &self.shared.root)
            .finish_non_exhaustive()
    }
}

impl DcacheDouble {
    /// Starts door and pool; they answer as soon as this returns.
    pub fn start(config: DcacheConfig) -> DcacheDouble {
        let (tempdir, root) = match &config.root {
            Some(root) => {
                std::fs::create_dir_all(root).expect("create the double's root directory");
                (None, root.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("ctadata-dcache-")
                    .tempdir()
                    .expect("create a temporary root");
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let ca = if config.tls {
            Some(config.ca.clone().unwrap_or_default())
        } else {
            None
        };
        let scheme = if ca.is_some() { "https" } else { "http" };
        let (door_listener, door_addr) =
            serve::bind(Ipv4Addr::LOCALHOST).expect("bind the door on 127.0.0.1");
        let (pool_listener, pool_addr) =
            serve::bind(Ipv4Addr::new(127, 0, 0, 2)).expect("bind the pool on 127.0.0.2");
        // tape
        let frontend = config.tape_frontend.then(|| {
            serve::bind(Ipv4Addr::LOCALHOST).expect("bind the tape frontend on 127.0.0.1")
        });
        let forbidden = config
            .forbidden_prefix
            .as_deref()
            .map(|p| DPath::from_decoded(p).expect("a valid forbidden_prefix"));
        let shared = Arc::new(Shared {
            root,
            door_url: format!("{scheme}://{door_addr}"),
            pool_url: format!("{scheme}://{pool_addr}"),
            token: Mutex::new(config.token.clone()),
            jwt: config.jwt.clone(),
            forbidden,
            redirect_delay: Mutex::new(config.redirect_delay),
            tickets: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults::default()),
            counters: Counters::default(),
            log: Mutex::new(Vec::new()),
            checksums: Mutex::new(HashMap::new()),
            // tape
            tape: Mutex::new(tape::TapeState::default()),
            tape_frontend_url: frontend
                .as_ref()
                .map(|(_, addr)| format!("{scheme}://{addr}")),
            macaroon_key: macaroon::new_key(),
            macaroons: Mutex::new(macaroon::Settings::default()),
            // ---- third-party copy (issue 14, cp) ----
            tpc: Mutex::new(tpc::TpcState::trusting(ca.as_ref())),
            // ---- end of third-party copy ----
        });
        let rt = ServerRuntime::new("dcache-double");
        let tls = ca.as_ref().map(TestCa::server_config);
        let door_shared = shared.clone();
        rt.spawn(serve::accept_loop(door_listener, tls.clone(), move |io| {
            door::serve_connection(door_shared.clone(), io)
        }));
        // tape
        if let Some((listener, _)) = frontend {
            let front_shared = shared.clone();
            rt.spawn(serve::accept_loop(listener, tls.clone(), move |io| {
                door::serve_connection(front_shared.clone(), io)
            }));
        }
        let pool_shared = shared.clone();
        rt.spawn(serve::accept_loop(pool_listener, tls, move |io| {
            pool::serve_connection(pool_shared.clone(), io)
        }));
        DcacheDouble {
            shared,
            ca,
            _rt: rt,
            _tempdir: tempdir,
        }
    }

    /// The door's base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.door_url.clone()
    }

    /// The door URL of a namespace path (`cta/a b` gives `<url>/cta/a%20b`).
    pub fn url_for(&self, path: &str) -> String {
        let p = DPath::from_decoded(path).expect("a valid path");
        format!("{}{}", self.shared.door_url, p.href(path.ends_with('/')))
    }

    /// The pool's base URL (`127.0.0.2`).
    pub fn pool_url(&self) -> String {
        self.shared.pool_url.clone()
    }

    /// The backing directory.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The CA when serving TLS.
    pub fn ca(&self) -> Option<&TestCa> {
        self.ca.as_ref()
    }

    /// Writes a file into the backing store (parents created), for test setup.
    pub fn put_file(&self, path: &str, contents: &[u8]) -> PathBuf {
        let p = DPath::from_decoded(path)
            .expect("a valid path")
            .fs(self.root());
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parents");
        }
        std::fs::write(&p, contents).expect("write the file");
        p
    }

    /// Counters and request log so far.
    ///
    /// Waits (at most a few seconds) until the door has counted the body bytes of the
    /// connections it has already answered, so `door_body_bytes` is final for them.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while c.pending_drains.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Stats {
            door_requests: c.door_requests.load(Ordering::Relaxed),
            pool_requests: c.pool_requests.load(Ordering::Relaxed),
            door_body_bytes: c.door_body_bytes.load(Ordering::Relaxed),
            pool_body_bytes: c.pool_body_bytes.load(Ordering::Relaxed),
            pool_sent_bytes: c.pool_sent_bytes.load(Ordering::Relaxed),
            pool_saw_authorization: c.pool_auth.load(Ordering::Relaxed) > 0,
            redirects: c.redirects.load(Ordering::Relaxed),
            stale_uuid_hits: c.stale_uuid.load(Ordering::Relaxed),
            log: lock(&self.shared.log).clone(),
            door_connections: c.door_connections.load(Ordering::Relaxed),
            pool_connections: c.pool_connections.load(Ordering::Relaxed),
        }
    }

    /// Zeroes the counters and clears the request log.
    pub fn reset_stats(&self) {
        let c = &self.shared.counters;
        for a in [
            &c.door_requests,
            &c.pool_requests,
            &c.door_body_bytes,
            &c.pool_body_bytes,
            &c.pool_sent_bytes,
            &c.pool_auth,
            &c.redirects,
            &c.stale_uuid,
            &c.door_connections,
            &c.pool_connections,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        lock(&self.shared.log).clear();
    }

    /// Changes (or removes) the token the door requires, e.g. to simulate expiry.
    pub fn set_token(&self, token: Option<String>) {
        *lock(&self.shared.token) = token;
    }

    /// Changes how long the door waits before redirecting a `PUT`.
    pub fn set_redirect_delay(&self, delay: Duration) {
        *lock(&self.shared.redirect_delay) = delay;
    }

    /// Full storage: every `PUT` (door and pool) answers `507 Insufficient Storage`.
    pub fn set_full(&self, full: bool) {
        self.shared.faults().full = full;
    }

    /// The pool closes a kept-alive connection once it has been idle for `after` (as servers
    /// do with their keep-alive timeout), without telling the client first.
    pub fn set_pool_idle_close(&self, after: Option<Duration>) {
        self.shared.faults().pool_idle_close = after;
    }

    /// The pool closes, without an answer, the next `count` requests that arrive on a
    /// connection that already served one (a kept-alive connection closed just as it was
    /// reused); such a request is neither logged nor counted.
    pub fn drop_reused_pool_requests(&self, count: usize) {
        self.shared.faults().drop_reused_pool_requests = count;
    }

    /// The door answers `status` to the next `count` requests.
    pub fn fail_next(&self, status: u16, count: usize) {
        self.set_failure(Side::Door, status, count, None);
    }

    /// The door answers `status` with `Retry-After: <secs>` to the next `count` requests.
    pub fn fail_next_with_retry_after(&self, status: u16, count: usize, retry_after_secs: u64) {
        self.set_failure(Side::Door, status, count, Some(retry_after_secs));
    }

    /// The pool answers `status` to the next `count` requests (the uuid is not consumed).
    pub fn fail_next_pool(&self, status: u16, count: usize) {
        self.set_failure(Side::Pool, status, count, None);
    }

    fn set_failure(&self, side: Side, status: u16, count: usize, retry_after: Option<u64>) {
        let f = (count > 0).then_some(Failure {
            status,
            remaining: count,
            retry_after,
        });
        let mut faults = self.shared.faults();
        match side {
            Side::Door => faults.fail_door = f,
            Side::Pool => faults.fail_pool = f,
        }
    }

    /// The next pool `GET` announces the full `Content-Length` but sends only `bytes` bytes,
    /// then closes the connection.
    pub fn truncate_next_get(&self, bytes: u64) {
        self.shared.faults().truncate_next_get = Some(bytes);
    }

    // mount (issue 19)
    /// While set, every pool `GET` sends this many bytes of its answer and then stalls
    /// (the connection stays open, nothing more comes): a server that stops mid-read.
    pub fn stall_gets(&self, after: Option<u64>) {
        self.shared.faults().stall_gets = after;
    }

    /// The pool ignores `Range` and answers every `GET` with `200` and the whole file.
    pub fn ignore_range(&self, on: bool) {
        self.shared.faults().ignore_range = on;
    }

    /// After `gets` more pool `GET`s, the next one first replaces the file it reads with
    /// `contents` (a new inode, so a new ETag), as a writer elsewhere would.
    pub fn replace_after_gets(&self, gets: usize, contents: Vec<u8>) {
        self.shared.faults().replace_after_gets = Some((gets, contents));
    }

    /// `Digest` headers and the `Checksums` property lie (a well-formed but wrong value).
    pub fn corrupt_digest(&self, on: bool) {
        self.shared.faults().corrupt_digest = on;
    }

    /// PROPFIND answers `207` with a body that is not well-formed XML.
    pub fn malformed_propfind(&self, on: bool) {
        self.shared.faults().malformed_propfind = on;
    }

    /// Every `Depth: 1` listing of a directory also lists these raw hrefs (as files, or as
    /// directories when they end in `/`), e.g. `../../x`, `/etc/x`, `/other/dir/x`.
    pub fn extra_hrefs(&self, hrefs: Vec<String>) {
        self.shared.faults().extra_hrefs = hrefs;
    }

    /// A tree `/cta/tree` for tests of hostile listings: real files `ok.txt`,
    /// `%2E%2E/inner.txt` and `%2E%2E%2Fsecret.txt` (literal names the door lists encoded
    /// twice), `/cta/secret.txt` outside it (what `..` decoded twice would reach), and hrefs
    /// that name a child's path on another origin (127.0.0.3, `localhost` on the door's own
    /// socket, `other` on another port, the pool, https), the collection itself four ways,
    /// and paths encoded twice. `other` holds what one of the foreign hrefs names.
    pub fn plant_foreign_tree(&self, other: &DcacheDouble) {
        other.put_file("/cta/tree/on-another-port.txt", b"foreign");
        self.put_file("/cta/tree/ok.txt", b"ok");
        self.put_file("/cta/tree/%2E%2E/inner.txt", b"inner");
        self.put_file("/cta/tree/%2E%2E%2Fsecret.txt", b"literal");
        self.put_file("/cta/secret.txt", b"secret");
        let door = self.url();
        let port = door.rsplit(':').next().unwrap_or_default().to_string();
        self.extra_hrefs(vec![
            format!("http://127.0.0.3:{port}/cta/tree/on-another-host.txt"),
            format!("http://localhost:{port}/cta/tree/on-localhost.txt"),
            format!("{}/cta/tree/on-another-port.txt", other.url()),
            format!("{}/cta/tree/on-the-pool.txt", self.pool_url()),
            format!("https://127.0.0.1:{port}/cta/tree/over-https.txt"),
            format!("https://127.0.0.1:{port}/cta/tree/over-https-dir/"),
            "/cta/tree".into(),
            "/cta/tree/".into(),
            format!("{door}/cta/tree"),
            format!("{door}/cta/tree/"),
            // `/cta/tree/../../secret.txt` if decoded twice; deeper once decoded.
            "/cta/tree/%252E%252E/%252E%252E/secret.txt".into(),
            "/cta/%252E%252E/secret.txt".into(),
        ]);
    }

    /// Creates directory `path` and makes its `Depth: 1` listing also show `n_entries`
    /// empty files `entry-0000000.dat` ... that exist in listings only (streamed, never on
    /// disk, never held in memory at once).
    pub fn synthetic_dir(&self, path: &str, n_entries: usize) {
        let p = DPath::from_decoded(path).expect("a valid path");
        std::fs::create_dir_all(p.fs(self.root())).expect("create the synthetic directory");
        self.shared.faults().synthetic.insert(p, n_entries);
    }

    /// Every synthetic listing (see [`DcacheDouble::synthetic_dir`]) stops for `pause`
    /// once its first `after_entries` entries have been sent, then goes on: a server slow
    /// in the middle of a long answer. `after_entries` at or beyond the listing's size
    /// pauses before the closing tag.
    pub fn synthetic_pause(&self, after_entries: usize, pause: Duration) {
        self.shared.faults().synthetic_pause = Some((after_entries, pause));
    }

    /// XRootD 5.5.3's header parsing: the door reads the names `Depth`, `Range`,
    /// `Want-Digest`, `Destination`, `Overwrite` and `Authorization` only in exactly that
    /// case (a lowercase `depth` is ignored, as if absent), and a `PROPFIND` without a
    /// `Depth` it can read is taken as `Depth: 0` (so a listing comes back empty).
    pub fn strict_header_case(&self, on: bool) {
        self.shared.faults().strict_header_case = on;
    }

    /// XRootD 5.5.3 on a `PUT` of 0 bytes with `Expect: 100-continue`: the door answers
    /// `100 Continue` and then never a final status (it holds the connection open until
    /// the client closes it). Other requests are served as usual.
    pub fn hang_empty_put(&self, on: bool) {
        self.shared.faults().hang_empty_put = on;
    }

    /// XRootD 5.5.3's hrefs: `PROPFIND` answers carry paths XML-escaped but not
    /// percent-encoded (`/cta/a#b.txt`, `/cta/space name`, `/cta/p%41.txt` for the file
    /// literally named `p%41.txt`).
    pub fn raw_hrefs(&self, on: bool) {
        self.shared.faults().raw_hrefs = on;
    }

    /// XRootD 5.5.3's GET: every pool `GET` answer carries `Digest: adler32=0badc0de` (a
    /// leftover of another file), asked for or not; `HEAD` and `PROPFIND` stay right.
    pub fn unasked_digest(&self, on: bool) {
        self.shared.faults().unasked_digest = on;
    }

    /// XRootD 5.5.3's open ranges: a pool `GET` with `Range: bytes=N-` gets `206` with an
    /// empty body and `Content-Range: bytes N--1/SIZE`; a closed `bytes=N-M` works.
    pub fn broken_open_range(&self, on: bool) {
        self.shared.faults().broken_open_range = on;
    }

    /// XRootD 5.5.3's namespace answers: `PROPFIND` of a file with a trailing `/` gives
    /// `500`; `DELETE` of a non-empty directory gives `500` (not recursive); `MKCOL`
    /// answers `201` for an existing directory and creates missing parents; `MOVE`
    /// ignores `Overwrite: F`.
    pub fn xrootd_namespace(&self, on: bool) {
        self.shared.faults().xrootd_namespace = on;
    }

    /// XRootD 5.5.3's request paths: the door decodes a path and cuts it at the first `?`
    /// (also in `Destination`), so `GET`, `PUT`, `MKCOL`, `DELETE` and `MOVE` of
    /// `/cta/r%3Fx.txt` act on `/cta/r`, and `PROPFIND` answers for `/cta/r` under the
    /// path asked for (its first href is the request's path, as sent).
    pub fn cut_at_question_mark(&self, on: bool) {
        self.shared.faults().cut_at_question_mark = on;
    }

    // ---- macaroons (issue 14, share) ----
    /// Macaroon requests are refused with `403` (a door with macaroons disabled).
    pub fn refuse_macaroons(&self, on: bool) {
        lock(&self.shared.macaroons).mode = if on {
            macaroon::Mode::Refuse
        } else {
            macaroon::Mode::Serve
        };
    }

    /// Macaroon requests are answered `200 text/html` with a login page (a portal in front
    /// of the door).
    pub fn macaroon_html(&self, on: bool) {
        lock(&self.shared.macaroons).mode = if on {
            macaroon::Mode::Html
        } else {
            macaroon::Mode::Serve
        };
    }

    /// The longest lifetime the door gives a macaroon (7 days by default); longer requests
    /// are cut to it, as dCache does.
    pub fn set_macaroon_max_validity(&self, max: Duration) {
        lock(&self.shared.macaroons).max_validity = max;
    }

    /// The address the door takes every client to have when checking `ip:` caveats
    /// (`127.0.0.1` by default).
    pub fn set_macaroon_client_ip(&self, ip: std::net::IpAddr) {
        lock(&self.shared.macaroons).client_ip = ip;
    }
    // ---- end of macaroons ----

    /// Sets the `FileLocality` reported for a file (`ONLINE` by default).
    pub fn set_locality(&self, path: &str, locality: Locality) {
        let p = DPath::from_decoded(path).expect("a valid path");
        self.shared.faults().locality.insert(p, locality);
    }
}
