//! A double of the CTA JupyterHub platform: the hub's `api/user` and login page, the
//! downloadservice (a proxy in front of the storage) and the certificateservice, on one
//! real socket, with the quirks of the real services (SPEC sections 4 and 5).
//!
//! The storage behind the downloadservice is a real WebDAV server ([`Nginx`]) serving a
//! directory whose `pnfs/cta.cscs.ch/` is the storage root, as in dCache; the service hides
//! that prefix. Bytes really travel: the downloadservice double proxies every request to
//! nginx over HTTP.
//!
//! Quirks reproduced:
//! * Authentication: the hub token as `Authorization: Bearer` (or `token`), or `?token=`
//!   (accepted as the real service does; [`PlatformDouble::requests`] shows whether a
//!   client sent it). A missing or unknown token gets `401` JSON
//!   `{"message": "Invalid or missing Bearer token"}` when the request says
//!   `Content-Type: application/json`, else a `302` to the hub's login page. A token without
//!   the service's scope gets `403` with a text reason.
//! * `list/<path>`: a JSON array, the queried item first (the root's own entry is
//!   `{"href": "", "type": "file"}`), hrefs still percent-encoded, sizes and times as
//!   strings, a `url` that duplicates parts of the path; the upstream status (`404`) and a
//!   text body for a missing path; `500` for a name with `(`; `list/` is `404`.
//! * `fetch/<path>`: `200`, chunked, whatever upstream sent (an HTML page for a missing file
//!   or a directory); `Range` not forwarded; `..` gives `400`; a name outside Latin-1 `500`.
//! * `upload/<path>`: lands in `<lst|cta>/users/<user>/<path>` (the user name lower-cased,
//!   every character outside `[0-1a-z]` replaced by `_`); `200` JSON with the decoded
//!   `path`, `204` with no body on overwrite; `409` for a missing parent; `405` for a
//!   directory; `400` for `..`; `403` when no `users` folder is visible.
//! * `webdav/<path>`: passthrough for `GET HEAD OPTIONS PROPFIND PROPPATCH MKCOL PUT TRACE`
//!   (else `405`), headers forwarded but `Authorization`, redirects not followed, answers
//!   buffered, `HEAD` with `Content-Length: 0`, `:href>/pnfs/cta.cscs.ch/` rewritten to
//!   `:href>/services/downloadservice/webdav/` in every body (file contents included);
//!   write methods only under `<lst|cta>/users/<user>/`, else `403` with the reason in the
//!   status line and the body `Access denied`.
//! * certificateservice: see [`certs`].

pub mod certs;

use crate::nginx::Nginx;
use crate::serve::{self, empty, full, Body, Io, ServerRuntime};
use crate::tls::TestCa;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// The storage's namespace prefix behind the proxy, hidden by it.
pub const BASEPATH: &str = "pnfs/cta.cscs.ch";
/// The downloadservice's prefix on the hub.
pub const DS_PREFIX: &str = "/services/downloadservice";
/// The certificateservice's prefix on the hub.
pub const CS_PREFIX: &str = "/services/certificateservice";
/// The text of a `403` for a token without the service's scope (the real service's words).
pub const SCOPE_REFUSAL: &str = "Access denied, token scopes are insufficient. If you need access to this service, please contact CTA-CH DC team at EPFL.";

const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// Which services a token may use (JupyterHub's `access:services!service=...` scopes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes {
    /// `access:services!service=downloadservice`.
    pub downloadservice: bool,
    /// `access:services!service=certificateservice`.
    pub certificateservice: bool,
}

impl Scopes {
    /// Both services.
    pub const ALL: Scopes = Scopes {
        downloadservice: true,
        certificateservice: true,
    };
    /// Neither service (a valid hub token without the scopes).
    pub const NONE: Scopes = Scopes {
        downloadservice: false,
        certificateservice: false,
    };
}

/// A hub user and their API token.
#[derive(Debug, Clone)]
pub struct HubUser {
    /// The hub user name (e.g. `Alice.Smith@epfl.ch`).
    pub name: String,
    /// The API token.
    pub token: String,
    /// A hub administrator.
    pub admin: bool,
    /// The services the token may use.
    pub scopes: Scopes,
}

impl HubUser {
    /// A user with both scopes, not an administrator.
    pub fn new(name: &str, token: &str) -> HubUser {
        HubUser {
            name: name.into(),
            token: token.into(),
            admin: false,
            scopes: Scopes::ALL,
        }
    }
}

/// How a [`PlatformDouble`] is set up.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// The hub's users.
    pub users: Vec<HubUser>,
    /// Create `lst/users/` in the storage (the first upload folder the service tries).
    pub lst_users: bool,
    /// Create `cta/users/` in the storage.
    pub cta_users: bool,
    /// CA certificates (PEM) the certificateservice trusts.
    pub trusted_ca_pem: Vec<String>,
    /// The certificate keys the certificateservice accepts (the real one: `cta`, `lst`).
    pub cert_keys: Vec<String>,
    /// Serve `https` with this CA's server certificate.
    pub tls: Option<TestCa>,
    /// Answer the hub's `api/user` (off: `404`, as a hub behind a proxy that hides it).
    pub hub_api_user: bool,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            users: Vec::new(),
            lst_users: true,
            cta_users: true,
            trusted_ca_pem: Vec::new(),
            cert_keys: vec!["cta".into(), "lst".into()],
            tls: None,
            hub_api_user: true,
        }
    }
}

/// A one-shot misbehaviour of the downloadservice, consumed by the next matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next `list` answers `200` with a body that is not JSON.
    ListNotJson,
    /// The next `list` answers `200` with an HTML page (as a login page in front would).
    ListHtml,
    /// The next `fetch` ends cleanly after this many bytes.
    FetchShort(u64),
    /// The next successful `upload` answers without `path`.
    UploadWithoutPath,
    /// The next `upload` reads the whole body but stores it without its last byte, and
    /// still answers `200` with the `total_written` it read (the service counts what it
    /// received, not what the storage kept).
    UploadTruncated,
}

/// One request seen by the double. Never holds a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `hub`, `downloadservice`, `certificateservice` or `other`.
    pub service: &'static str,
    /// The HTTP method.
    pub method: String,
    /// Path and query as sent (still percent-encoded).
    pub path_and_query: String,
    /// Whether an `Authorization` header was present.
    pub authorization: bool,
    /// Whether the query carried `token=`.
    pub token_in_query: bool,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Range` header.
    pub range: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// A certificate stored by the certificateservice double.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCertificate {
    /// The hub user it belongs to.
    pub user: String,
    /// The certificate key (`cta`, `lst`...).
    pub key: String,
    /// The PEM text as uploaded.
    pub pem: String,
}

pub(crate) struct Shared {
    pub(crate) users: Vec<HubUser>,
    pub(crate) trusted_ca_pem: Vec<String>,
    pub(crate) cert_keys: Vec<String>,
    hub_api_user: bool,
    upstream: String,
    storage: PathBuf,
    http: reqwest::Client,
    faults: Mutex<VecDeque<Fault>>,
    log: Mutex<Vec<Record>>,
    pub(crate) stored: Mutex<Vec<StoredCertificate>>,
    pub(crate) shared_cert: Mutex<Option<String>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn take_fault(&self, f: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut q = lock(&self.faults);
        let i = q.iter().position(f)?;
        q.remove(i)
    }

    /// The user of a request's token, if any (header `Bearer`/`token`, or `?token=`).
    pub(crate) fn user_of(&self, req: &Request<Incoming>) -> Option<HubUser> {
        let from_header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, t) = v.split_once(' ')?;
                matches!(scheme.to_ascii_lowercase().as_str(), "bearer" | "token")
                    .then(|| t.trim().to_string())
            });
        let from_query = req.uri().query().and_then(|q| {
            q.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == "token").then(|| percent_decode_str(v).decode_utf8_lossy().to_string())
            })
        });
        let token = from_header.or(from_query)?;
        if token.is_empty() {
            return None;
        }
        self.users.iter().find(|u| u.token == token).cloned()
    }

    /// The hub's authentication of a service request: the user, or the answer to send.
    pub(crate) fn authenticate(
        &self,
        req: &Request<Incoming>,
        service: &str,
    ) -> Result<HubUser, Box<Response<Body>>> {
        let Some(user) = self.user_of(req) else {
            let json = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
            if json {
                return Err(Box::new(json_response(
                    401,
                    &serde_json::json!({"message": "Invalid or missing Bearer token"}),
                )));
            }
            let next = utf8_percent_encode(req.uri().path(), percent_encoding::NON_ALPHANUMERIC);
            let mut r = html(
                302,
                "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target URL: <a href=\"/hub/login\">/hub/login</a>.",
            );
            set(
                &mut r,
                header::LOCATION,
                &format!("/hub/login?next={next}&state=xyz"),
            );
            return Err(Box::new(r));
        };
        let allowed = match service {
            "downloadservice" => user.scopes.downloadservice,
            _ => user.scopes.certificateservice,
        };
        if !allowed {
            return Err(Box::new(html(403, SCOPE_REFUSAL)));
        }
        Ok(user)
    }

    fn upstream_url(&self, path: &str) -> String {
        let mut enc = utf8_percent_encode(path, SEGMENT).to_string();
        // A directory is asked for with its trailing '/', as dCache names it.
        if !enc.is_empty() && !enc.ends_with('/') && self.storage.join(path).is_dir() {
            enc.push('/');
        }
        format!("{}/{BASEPATH}/{enc}", self.upstream)
    }
}

/// A running double of the platform; stopped on drop.
pub struct PlatformDouble {
    shared: Arc<Shared>,
    url: String,
    nginx: Nginx,
    _rt: ServerRuntime,
    _tmp: tempfile::TempDir,
}

impl std::fmt::Debug for PlatformDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformDouble")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PlatformDouble {
    /// Starts nginx on a fresh storage directory, then the hub and its two services.
    pub fn start(config: PlatformConfig) -> std::io::Result<PlatformDouble> {
        let tmp = tempfile::Builder::new()
            .prefix("ctadata-platform-")
            .tempdir()?;
        let root = tmp.path().join("root");
        let storage = root.join(BASEPATH);
        std::fs::create_dir_all(storage.join("lst"))?;
        std::fs::create_dir_all(storage.join("cta"))?;
        if config.lst_users {
            std::fs::create_dir_all(storage.join("lst/users"))?;
        }
        if config.cta_users {
            std::fs::create_dir_all(storage.join("cta/users"))?;
        }
        let nginx = Nginx::start(&root)?;
        let storage = nginx.root().join(BASEPATH);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            users: config.users.clone(),
            trusted_ca_pem: config.trusted_ca_pem.clone(),
            cert_keys: config.cert_keys.clone(),
            hub_api_user: config.hub_api_user,
            upstream: nginx.url(),
            storage,
            http,
            faults: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            stored: Mutex::new(Vec::new()),
            shared_cert: Mutex::new(None),
        });
        let (listener, addr) = serve::bind(Ipv4Addr::LOCALHOST)?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let rt = ServerRuntime::new("platform-double");
        let tls = config.tls.as_ref().map(TestCa::server_config);
        let s = shared.clone();
        rt.spawn(serve::accept_loop(listener, tls, move |io| {
            serve_connection(s.clone(), io)
        }));
        Ok(PlatformDouble {
            shared,
            url: format!("{scheme}://{addr}"),
            nginx,
            _rt: rt,
            _tmp: tmp,
        })
    }

    /// The hub's base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The downloadservice URL (what `CTADS_URL` holds), with a trailing `/`.
    pub fn downloadservice_url(&self) -> String {
        format!("{}{DS_PREFIX}/", self.url)
    }

    /// The certificateservice URL (what `CTACS_URL` holds), with a trailing `/`.
    pub fn certificateservice_url(&self) -> String {
        format!("{}{CS_PREFIX}/", self.url)
    }

    /// The page where users make tokens.
    pub fn token_page(&self) -> String {
        format!("{}/hub/token", self.url)
    }

    /// The storage root on disk (the `pnfs/cta.cscs.ch` directory nginx serves).
    pub fn storage(&self) -> PathBuf {
        self.shared.storage.clone()
    }

    /// The nginx behind the service.
    pub fn nginx(&self) -> &Nginx {
        &self.nginx
    }

    /// Writes a file into the storage (`rel` from the storage root), parents created.
    pub fn put_file(&self, rel: &str, data: &[u8]) {
        let p = self.shared.storage.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("create the parent in the storage");
        }
        std::fs::write(&p, data).expect("write a file into the storage");
    }

    /// Creates a directory in the storage, parents included.
    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.shared.storage.join(rel)).expect("create a directory");
    }

    /// A file of the storage, if it exists.
    pub fn read_file(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.shared.storage.join(rel)).ok()
    }

    /// The user folder the service writes to for a hub user name (`lst/users/<folder>`).
    pub fn user_folder(&self, hub_user: &str) -> String {
        let top = if self.shared.storage.join("lst/users").is_dir() {
            "lst"
        } else {
            "cta"
        };
        format!("{top}/users/{}", user_to_path_fragment(hub_user))
    }

    /// Queues a one-shot misbehaviour.
    pub fn push_fault(&self, f: Fault) {
        lock(&self.shared.faults).push_back(f);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Record> {
        lock(&self.shared.log).clone()
    }

    /// Certificates stored by the certificateservice (personal ones).
    pub fn stored_certificates(&self) -> Vec<StoredCertificate> {
        lock(&self.shared.stored).clone()
    }

    /// The shared robot certificate, once uploaded.
    pub fn shared_certificate(&self) -> Option<String> {
        lock(&self.shared.shared_cert).clone()
    }
}

/// The service's folder name for a hub user: lower-cased, `[^0-1a-z]` replaced by `_`.
pub fn user_to_path_fragment(user: &str) -> String {
    user.to_lowercase()
        .chars()
        .map(|c| {
            if matches!(c, '0'..='1' | 'a'..='z') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// ----- responses -------------------------------------------------------------------------

pub(crate) fn with_status(mut r: Response<Body>, status: u16) -> Response<Body> {
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// A text answer as Flask sends it (`text/html`).
pub(crate) fn html(status: u16, body: &str) -> Response<Body> {
    let mut r = with_status(Response::new(full(body.to_string())), status);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

pub(crate) fn json_response(status: u16, v: &serde_json::Value) -> Response<Body> {
    let mut r = with_status(Response::new(full(format!("{v}\n"))), status);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn set(r: &mut Response<Body>, name: header::HeaderName, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        r.headers_mut().insert(name, v);
    }
}

/// A `500` as Flask renders an unhandled exception.
pub(crate) fn internal_error() -> Response<Body> {
    html(
        500,
        "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.</p>\n",
    )
}

// ----- dispatch --------------------------------------------------------------------------

async fn serve_connection(shared: Arc<Shared>, io: Box<dyn Io>) {
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let service = if path.starts_with("/hub/") {
        "hub"
    } else if path.starts_with(DS_PREFIX) {
        "downloadservice"
    } else if path.starts_with(CS_PREFIX) {
        "certificateservice"
    } else {
        "other"
    };
    let mut rec = Record {
        service,
        method: req.method().as_str().to_string(),
        path_and_query: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        authorization: req.headers().contains_key(header::AUTHORIZATION),
        token_in_query: req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("token="))),
        content_type: req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        range: req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        status: 0,
    };
    let resp = match service {
        "hub" => hub(&shared, req, &path),
        "downloadservice" => downloadservice(&shared, req, &path[DS_PREFIX.len()..]).await,
        "certificateservice" => certs::handle(&shared, req, &path[CS_PREFIX.len()..]).await,
        _ => html(404, "Not Found"),
    };
    rec.status = resp.status().as_u16();
    lock(&shared.log).push(rec);
    resp
}

fn hub(shared: &Shared, req: Request<Incoming>, path: &str) -> Response<Body> {
    match path {
        "/hub/api/user" if !shared.hub_api_user => html(404, "Not Found"),
        "/hub/api/user" => match shared.user_of(&req) {
            Some(u) => json_response(
                200,
                &serde_json::json!({
                    "kind": "user",
                    "name": u.name,
                    "admin": u.admin,
                    "groups": [],
                    "server": null,
                }),
            ),
            None => json_response(
                403,
                &serde_json::json!({"status": 403, "message": "Missing or invalid credentials."}),
            ),
        },
        "/hub/login" => html(
            200,
            "<!DOCTYPE html>\n<html><head><title>JupyterHub</title></head><body><form action=\"/hub/login\" method=\"post\"><input name=\"username\"><input type=\"password\" name=\"password\"><button>Sign in</button></form></body></html>",
        ),
        "/hub/token" => html(
            200,
            "<!DOCTYPE html>\n<html><head><title>JupyterHub</title></head><body><h1>Request new API token</h1></body></html>",
        ),
        _ => html(404, "Not Found"),
    }
}

/// Splits `/endpoint[/path]` into the endpoint and the decoded path; `None` for no route.
fn route(rest: &str) -> Option<(String, Option<String>)> {
    let rest = rest.strip_prefix('/')?;
    match rest.split_once('/') {
        None => Some((rest.to_string(), None)),
        // `list/` and friends: no route (the path converter needs a character).
        Some((_, "")) => None,
        Some((ep, p)) => Some((
            ep.to_string(),
            Some(percent_decode_str(p).decode_utf8().ok()?.to_string()),
        )),
    }
}

async fn downloadservice(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    rest: &str,
) -> Response<Body> {
    let Some((endpoint, path)) = route(rest) else {
        return html(404, "Not Found");
    };
    if endpoint.is_empty() || endpoint == "health" {
        return html(200, "OK - DownloadService is up and running");
    }
    let user = match shared.authenticate(&req, "downloadservice") {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let m = req.method().clone();
    match endpoint.as_str() {
        "list" if m == Method::GET || m == Method::POST => {
            list(shared, &req, path.unwrap_or_default()).await
        }
        "fetch" if m == Method::GET || m == Method::POST => {
            fetch(shared, path.unwrap_or_default()).await
        }
        "upload" if m == Method::POST => upload(shared, req, &user, path).await,
        "webdav" => webdav(shared, req, &user, path.unwrap_or_default()).await,
        "list" | "fetch" | "upload" => html(405, "Method Not Allowed"),
        _ => html(404, "Not Found"),
    }
}

// ----- list --------------------------------------------------------------------------------

fn local(e: &xmltree::Element) -> &str {
    &e.name
}

fn find_text(e: &xmltree::Element, name: &str) -> Option<String> {
    for c in &e.children {
        if let xmltree::XMLNode::Element(el) = c {
            if local(el) == name {
                return el.get_text().map(|t| t.to_string());
            }
            if let Some(t) = find_text(el, name) {
                return Some(t);
            }
        }
    }
    None
}

async fn list(shared: &Arc<Shared>, req: &Request<Incoming>, path: String) -> Response<Body> {
    match shared.take_fault(|f| matches!(f, Fault::ListNotJson | Fault::ListHtml)) {
        Some(Fault::ListNotJson) => {
            return with_status(
                {
                    let mut r = Response::new(full("upstream said: Service Unavailable (proxy timeout)"));
                    r.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                    r
                },
                200,
            )
        }
        Some(_) => {
            return html(
                200,
                "<!DOCTYPE html>\n<html><head><title>JupyterHub</title></head><body><form action=\"/hub/login\">Sign in</form></body></html>",
            )
        }
        None => {}
    }
    // The real service runs re.sub(path, ...) with the path as a pattern.
    if path.contains('(') {
        return internal_error();
    }
    let upstream = shared.upstream_url(&path);
    let res = match shared
        .http
        .request(Method::from_bytes(b"PROPFIND").expect("method"), &upstream)
        .header("Depth", "1")
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return internal_error(),
    };
    let status = res.status().as_u16();
    let body = res.bytes().await.unwrap_or_default();
    if status != 200 && status != 207 {
        return html(
            status,
            &format!("Error: {status} {}", String::from_utf8_lossy(&body)),
        );
    }
    let Ok(root) = xmltree::Element::parse(&body[..]) else {
        return internal_error();
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let up_path = req.uri().path().replace(&path, "");
    let mut entries = Vec::new();
    for c in &root.children {
        let xmltree::XMLNode::Element(resp) = c else {
            continue;
        };
        if local(resp) != "response" {
            continue;
        }
        let mut entry = serde_json::Map::new();
        let href = find_text(resp, "href").unwrap_or_default();
        let href = href.trim_start_matches('/');
        let href = href
            .strip_prefix(&format!("{BASEPATH}/"))
            .unwrap_or(href)
            .to_string();
        if let Some(s) = find_text(resp, "getcontentlength") {
            entry.insert("size".into(), s.into());
        }
        if let Some(t) = find_text(resp, "getlastmodified") {
            entry.insert("mtime".into(), t.into());
        }
        entry.insert(
            "url".into(),
            format!("http://{host}/{}/{href}", up_path.trim_matches('/')).into(),
        );
        entry.insert(
            "type".into(),
            if href.ends_with('/') {
                "directory"
            } else {
                "file"
            }
            .into(),
        );
        entry.insert("href".into(), href.into());
        entries.push(serde_json::Value::Object(entry));
    }
    json_response(200, &serde_json::Value::Array(entries))
}

// ----- fetch -------------------------------------------------------------------------------

async fn fetch(shared: &Arc<Shared>, path: String) -> Response<Body> {
    if path.contains("..") {
        return html(400, "Error: path cannot contain '..'");
    }
    let name = path.rsplit('/').next().unwrap_or("").to_string();
    if name.chars().any(|c| u32::from(c) > 0xFF) {
        // The Content-Disposition header cannot be encoded: an empty 500.
        return with_status(Response::new(empty()), 500);
    }
    let res = match shared.http.get(shared.upstream_url(&path)).send().await {
        Ok(r) => r,
        Err(_) => return internal_error(),
    };
    let short = match shared.take_fault(|f| matches!(f, Fault::FetchShort(_))) {
        Some(Fault::FetchShort(n)) => Some(n),
        _ => None,
    };
    let upstream = res.bytes_stream();
    // The upstream status is ignored: whatever came is sent as the file.
    let stream = futures::stream::unfold((upstream, 0u64), move |(mut s, sent)| async move {
        if short.is_some_and(|n| sent >= n) {
            return None;
        }
        match s.next().await {
            Some(Ok(mut b)) => {
                if let Some(n) = short {
                    let room = (n - sent) as usize;
                    if b.len() > room {
                        b = b.slice(..room);
                    }
                }
                let len = b.len() as u64;
                Some((Ok::<_, std::io::Error>(Frame::data(b)), (s, sent + len)))
            }
            Some(Err(e)) => Some((Err(std::io::Error::other(e)), (s, sent))),
            None => None,
        }
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    set(
        &mut r,
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename={name}"),
    );
    r
}

// ----- upload ------------------------------------------------------------------------------

fn request_stream(req: Request<Incoming>) -> reqwest::Body {
    let s = BodyStream::new(req.into_body()).filter_map(|f| async move {
        match f {
            Ok(frame) => frame.into_data().ok().map(Ok::<Bytes, hyper::Error>),
            Err(e) => Some(Err(e)),
        }
    });
    reqwest::Body::wrap_stream(s)
}

fn join_parts(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

async fn upload(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    user: &HubUser,
    path: Option<String>,
) -> Response<Body> {
    let Some(path) = path else {
        // `'..' in None` raises in the real service.
        return internal_error();
    };
    if path.contains("..") {
        return html(400, "Error: path cannot contain '..'");
    }
    let mut folder = None;
    for top in ["lst", "cta"] {
        let url = shared.upstream_url(&format!("{top}/users/"));
        let ok = shared
            .http
            .request(Method::from_bytes(b"PROPFIND").expect("method"), &url)
            .header("Depth", "1")
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 207);
        if ok {
            folder = Some(top);
            break;
        }
    }
    let Some(top) = folder else {
        let mut r = html(403, "Access denied");
        r.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(
                b"Missing rights to upload files",
            ));
        return r;
    };
    let base = join_parts(&["", top, "users", &user_to_path_fragment(&user.name)]);
    let upload_path = join_parts(&[&base, &path]);
    let _ = shared
        .http
        .request(
            Method::from_bytes(b"MKCOL").expect("method"),
            shared.upstream_url(&format!("{base}/")),
        )
        .send()
        .await;
    if shared.storage.join(&upload_path).is_dir() {
        return html(405, "Error: 405 a directory is in the way");
    }
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = written.clone();
    let body = BodyStream::new(req.into_body()).filter_map(move |f| {
        let counter = counter.clone();
        async move {
            match f {
                Ok(frame) => frame.into_data().ok().map(|b| {
                    counter.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    Ok::<Bytes, hyper::Error>(b)
                }),
                Err(e) => Some(Err(e)),
            }
        }
    });
    let mut body = Box::pin(body.peekable());
    if body.as_mut().peek().await.is_none() {
        // nginx refuses an empty PUT (500); dCache stores an empty file: do as dCache.
        let target = shared.storage.join(&upload_path);
        if !target.parent().is_some_and(|p| p.is_dir()) {
            return html(409, "Error: 409 Conflict");
        }
        let existed = target.is_file();
        if std::fs::write(&target, b"").is_err() {
            return internal_error();
        }
        if existed {
            return with_status(Response::new(empty()), 204);
        }
        return json_response(
            200,
            &serde_json::json!({"path": upload_path, "status": "uploaded", "total_written": 0}),
        );
    }
    let truncate = shared
        .take_fault(|f| *f == Fault::UploadTruncated)
        .is_some();
    let upstream_body = if truncate {
        let mut all = Vec::new();
        for b in body.collect::<Vec<_>>().await.into_iter().flatten() {
            all.extend_from_slice(&b);
        }
        all.pop();
        reqwest::Body::from(all)
    } else {
        reqwest::Body::wrap_stream(body)
    };
    let res = match shared
        .http
        .put(shared.upstream_url(&upload_path))
        .body(upstream_body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return internal_error(),
    };
    let status = res.status().as_u16();
    let content = res.bytes().await.unwrap_or_default();
    if status != 200 && status != 201 {
        if status == 204 {
            return with_status(Response::new(empty()), 204);
        }
        return html(
            status,
            &format!("Error: {status} {}", String::from_utf8_lossy(&content)),
        );
    }
    let total = written.load(std::sync::atomic::Ordering::Relaxed);
    let mut answer = serde_json::json!({
        "path": upload_path,
        "status": "uploaded",
        "total_written": total,
    });
    if shared
        .take_fault(|f| *f == Fault::UploadWithoutPath)
        .is_some()
    {
        answer.as_object_mut().map(|o| o.remove("path"));
    }
    json_response(200, &answer)
}

// ----- webdav ------------------------------------------------------------------------------

const WEBDAV_METHODS: [&str; 8] = [
    "GET",
    "HEAD",
    "OPTIONS",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "PUT",
    "TRACE",
];
const READ_METHODS: [&str; 5] = ["GET", "HEAD", "OPTIONS", "PROPFIND", "TRACE"];
const HOP_BY_HOP: [&str; 10] = [
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "upgrade",
];

async fn webdav(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    user: &HubUser,
    path: String,
) -> Response<Body> {
    let method = req.method().as_str().to_string();
    if !WEBDAV_METHODS.contains(&method.as_str()) {
        return html(405, "Method Not Allowed");
    }
    if path.split('/').any(|s| s == "..") {
        return html(400, "Error: path cannot contain '..'");
    }
    if !READ_METHODS.contains(&method.as_str()) {
        let frag = user_to_path_fragment(&user.name);
        let allowed = ["lst", "cta"]
            .iter()
            .any(|top| path.starts_with(&format!("{top}/users/{frag}/")));
        if !allowed {
            let mut r = html(403, "Access denied");
            let reason = format!(
                "Missing rights to write in : {path}, you are not allowed to write in this folder"
            );
            if let Ok(rp) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes()) {
                r.extensions_mut().insert(rp);
            }
            return r;
        }
    }
    let mut rb = shared.http.request(
        Method::from_bytes(method.as_bytes()).expect("method"),
        format!(
            "{}/{BASEPATH}/{}",
            shared.upstream,
            utf8_percent_encode(&path, SEGMENT)
        ),
    );
    for (k, v) in req.headers() {
        let k = k.as_str();
        if k == "host" || k == "authorization" || HOP_BY_HOP.contains(&k) {
            continue;
        }
        rb = rb.header(k, v.clone());
    }
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        rb = rb.body(request_stream(req));
    }
    let res = match rb.send().await {
        Ok(r) => r,
        Err(_) => return internal_error(),
    };
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    // The whole answer is buffered, and hrefs rewritten in every body.
    let content = res.bytes().await.unwrap_or_default();
    let from = format!(":href>/{BASEPATH}/");
    let to = format!(":href>{DS_PREFIX}/webdav/");
    let content = replace_bytes(&content, from.as_bytes(), to.as_bytes());
    let len = content.len();
    let mut r = with_status(
        Response::new(if method == "HEAD" {
            empty()
        } else {
            full(content)
        }),
        status,
    );
    for (k, v) in &headers {
        if HOP_BY_HOP.contains(&k.as_str()) {
            continue;
        }
        r.headers_mut().append(k.clone(), v.clone());
    }
    let shown = if method == "HEAD" { 0 } else { len };
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(shown));
    r
}

fn replace_bytes(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        assert_eq!(user_to_path_fragment("Alice.Smith-42"), "alice_smith___");
        assert_eq!(user_to_path_fragment("bob10"), "bob10");
    }

    #[test]
    fn routes() {
        assert_eq!(route("/list"), Some(("list".into(), None)));
        assert_eq!(route("/list/"), None);
        assert_eq!(
            route("/list/lst/a%20b"),
            Some(("list".into(), Some("lst/a b".into())))
        );
    }

    #[test]
    fn byte_replacement() {
        assert_eq!(
            replace_bytes(b"x:href>/a/y", b":href>/a/", b":href>/b/c/"),
            b"x:href>/b/c/y"
        );
    }
}
