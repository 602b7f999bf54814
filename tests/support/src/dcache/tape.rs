//! The WLCG Tape REST API (v1) of the double, as dCache's frontend serves it, here on the
//! door itself under [`API`] (the discovery document's `uri` says so, as a real one does).
//!
//! * `GET /.well-known/wlcg-tape-rest-api`: `{"sitename", "description", "endpoints":
//!   [{"uri", "version": "v1", "metadata"}]}`; `404` with [`DcacheDouble::tape_no_api`].
//! * `POST {API}/stage` `{"files": [{"path", "diskLifetime"?}]}`: `201` with
//!   `{"requestId"}` and `Location`. A file is on disk [`DcacheDouble::tape_stage_delay`]
//!   after the request (1 s by default); then its `FileLocality` is `ONLINE_AND_NEARLINE`.
//!   A file given to [`DcacheDouble::tape_fail`] fails with its reason after the same
//!   delay; one given to [`DcacheDouble::tape_never_online`] stays `STARTED`; a missing
//!   file fails at once.
//! * `GET {API}/stage/{id}`: `{"id", "createdAt", "startedAt", "completedAt", "files":
//!   [{"path", "state", "onDisk", "error"?, "startedAt", "finishedAt"}]}` with `Retry-After`
//!   ([`DcacheDouble::tape_retry_after`]); an unknown id gives `404`.
//! * `POST {API}/stage/{id}/cancel` and `POST {API}/release/{id}` `{"paths"}`, `DELETE
//!   {API}/stage/{id}`, `POST {API}/archiveinfo` `{"paths"}` (`[{"path", "locality"} |
//!   {"path", "error"}]`, localities `DISK`, `TAPE`, `DISK_AND_TAPE`).
//! * Errors are RFC 7807 problems (`{"title", "status", "detail"}`).
//! * A door `GET` of a `NEARLINE` file waits [`DcacheDouble::nearline_get_delay`] before
//!   its redirect, as dCache holds it while staging (no wait unless a test asks).
//! * Authorization: the same as the door's (a bearer token, when the door wants one).
//! * With [`super::DcacheConfig::tape_frontend`] the API is served on a second port (as
//!   dCache's frontend is), the door answers `404` for it, and discovery names the frontend.

use super::paths::DPath;
use super::respond::set;
use super::{lock, DcacheDouble, Locality, Shared};
use crate::serve::{full, Body};
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the API lives on the door.
pub(super) const API: &str = "/api/v1/tape";
/// Discovery.
pub(super) const WELL_KNOWN: &str = "/.well-known/wlcg-tape-rest-api";

/// One file of a stage request.
#[derive(Debug, Clone)]
struct ReqFile {
    path: DPath,
    cancelled: bool,
    /// Failed at once (no such file).
    missing: bool,
}

/// One stage request.
#[derive(Debug, Clone)]
struct StageRequest {
    created: Instant,
    created_unix: u64,
    files: Vec<ReqFile>,
}

/// The tape side of the double: its switches and its requests.
#[derive(Debug)]
pub(super) struct TapeState {
    stage_delay: Duration,
    retry_after: u64,
    no_api: bool,
    nearline_get_delay: Option<Duration>,
    fail: HashMap<DPath, String>,
    never: HashSet<DPath>,
    requests: HashMap<String, StageRequest>,
    /// (request id, paths, diskLifetime) of every stage request, in order.
    made: Vec<(String, Vec<String>, Option<String>)>,
    released: Vec<String>,
}

impl Default for TapeState {
    fn default() -> Self {
        Self {
            stage_delay: Duration::from_secs(1),
            retry_after: 1,
            no_api: false,
            nearline_get_delay: None,
            fail: HashMap::new(),
            never: HashSet::new(),
            requests: HashMap::new(),
            made: Vec::new(),
            released: Vec::new(),
        }
    }
}

/// Where a file of a request stands: state, on disk, error.
fn file_state(
    t: &TapeState,
    r: &StageRequest,
    f: &ReqFile,
    loc: Locality,
) -> (&'static str, bool, Option<String>) {
    if f.missing {
        return ("FAILED", false, Some("No such file or directory".into()));
    }
    if loc != Locality::Nearline {
        return ("COMPLETED", true, None);
    }
    if f.cancelled {
        return ("CANCELLED", false, None);
    }
    if t.never.contains(&f.path) {
        return ("STARTED", false, None);
    }
    let due = r.created.elapsed() >= t.stage_delay;
    match (due, t.fail.get(&f.path)) {
        (true, Some(reason)) => ("FAILED", false, Some(reason.clone())),
        (true, None) => ("COMPLETED", true, None),
        (false, _) => ("STARTED", false, None),
    }
}

impl Shared {
    /// Brings the files whose staging is due online (`ONLINE_AND_NEARLINE`).
    pub(super) fn tape_settle(&self) {
        let t = lock(&self.tape);
        let mut done = Vec::new();
        for r in t.requests.values() {
            if r.created.elapsed() < t.stage_delay {
                continue;
            }
            for f in &r.files {
                if !f.cancelled
                    && !f.missing
                    && !t.never.contains(&f.path)
                    && !t.fail.contains_key(&f.path)
                {
                    done.push(f.path.clone());
                }
            }
        }
        drop(t);
        if done.is_empty() {
            return;
        }
        let mut faults = self.faults();
        for p in done {
            if faults.locality.get(&p) == Some(&Locality::Nearline) {
                faults.locality.insert(p, Locality::OnlineAndNearline);
            }
        }
    }
}

/// Whether a request is for the tape API (or its discovery).
pub(super) fn is_tape(path: &str) -> bool {
    path == WELL_KNOWN || path == API || path.starts_with(&format!("{API}/"))
}

/// Holds a door `GET` of a `NEARLINE` file as dCache does, when a test asked for it.
pub(super) async fn hold_nearline_get(shared: &Arc<Shared>, method: &http::Method, path: &DPath) {
    if method != http::Method::GET {
        return;
    }
    let delay = lock(&shared.tape).nearline_get_delay;
    if let Some(d) = delay {
        if shared.locality(path) == Locality::Nearline {
            tokio::time::sleep(d).await;
        }
    }
}

fn problem(status: u16, title: &str, detail: &str) -> Response<Body> {
    let body = json!({"title": title, "status": status, "detail": detail}).to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    set(&mut resp, header::CONTENT_TYPE, "application/problem+json");
    resp
}

fn json_resp(status: u16, v: &Value) -> Response<Body> {
    let mut resp = Response::new(full(v.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    set(&mut resp, header::CONTENT_TYPE, "application/json");
    resp
}

async fn body_json(req: Request<Incoming>) -> Result<Value, Box<Response<Body>>> {
    let bytes = match Limited::new(req.into_body(), 16 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(Box::new(problem(
                400,
                "Bad Request",
                "the body could not be read",
            )))
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Box::new(problem(
            400,
            "Bad Request",
            &format!("the body is not JSON: {e}"),
        ))
    })
}

fn paths_of(v: &Value) -> Result<Vec<DPath>, Box<Response<Body>>> {
    let arr = v["paths"]
        .as_array()
        .ok_or_else(|| Box::new(problem(400, "Bad Request", "expected {\"paths\": [...]}")))?;
    arr.iter()
        .map(|p| {
            p.as_str()
                .and_then(|s| DPath::from_decoded(s).ok())
                .ok_or_else(|| {
                    Box::new(problem(400, "Bad Request", "a path is not a valid string"))
                })
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Answers a tape API request.
pub(super) async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    // With a frontend, the API is there and not on the door (discovery stays on the door).
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let on_frontend = shared
        .tape_frontend_url
        .as_deref()
        .is_some_and(|u| u.ends_with(&format!("://{host}")));
    if path == WELL_KNOWN {
        if lock(&shared.tape).no_api {
            return super::respond::text(404, "Not found");
        }
        let base = shared
            .tape_frontend_url
            .clone()
            .unwrap_or_else(|| shared.door_url.clone());
        return json_resp(
            200,
            &json!({
                "sitename": "dcache-double",
                "description": "The dCache double's WLCG Tape REST API",
                "endpoints": [{"uri": format!("{base}{API}"), "version": "v1", "metadata": {}}],
            }),
        );
    }
    if lock(&shared.tape).no_api || on_frontend != shared.tape_frontend_url.is_some() {
        return super::respond::text(404, "Not found");
    }
    shared.tape_settle();
    let rest = path.strip_prefix(API).unwrap_or("").trim_start_matches('/');
    let parts: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["stage"]) => stage(shared, req).await,
        ("GET", ["stage", id]) => status(shared, id),
        ("DELETE", ["stage", id]) => match lock(&shared.tape).requests.remove(*id) {
            Some(_) => json_resp(200, &json!({})),
            None => unknown(id),
        },
        ("POST", ["stage", id, "cancel"]) => {
            let id = id.to_string();
            let paths = match body_json(req).await.and_then(|v| paths_of(&v)) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            let mut t = lock(&shared.tape);
            let Some(r) = t.requests.get_mut(&id) else {
                return unknown(&id);
            };
            for p in &paths {
                match r.files.iter_mut().find(|f| &f.path == p) {
                    Some(f) => f.cancelled = true,
                    None => {
                        return problem(
                            400,
                            "Bad Request",
                            &format!("{} is not part of request {id}", p.abs()),
                        )
                    }
                }
            }
            json_resp(200, &json!({}))
        }
        ("POST", ["release", id]) => {
            let id = id.to_string();
            let paths = match body_json(req).await.and_then(|v| paths_of(&v)) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            let mut t = lock(&shared.tape);
            let Some(r) = t.requests.get(&id) else {
                return unknown(&id);
            };
            if let Some(p) = paths
                .iter()
                .find(|p| !r.files.iter().any(|f| &f.path == *p))
            {
                return problem(
                    400,
                    "Bad Request",
                    &format!("{} is not part of request {id}", p.abs()),
                );
            }
            t.released.extend(paths.iter().map(DPath::abs));
            json_resp(200, &json!({}))
        }
        ("POST", ["archiveinfo"]) => {
            let paths = match body_json(req).await.and_then(|v| paths_of(&v)) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            let out: Vec<Value> = paths
                .iter()
                .map(|p| {
                    let fs = p.fs(&shared.root);
                    if !fs.exists() {
                        return json!({"path": p.abs(), "error": "No such file or directory"});
                    }
                    if fs.is_dir() {
                        return json!({"path": p.abs(), "error": "Not a file"});
                    }
                    let loc = match shared.locality(p) {
                        Locality::Online => "DISK",
                        Locality::Nearline => "TAPE",
                        Locality::OnlineAndNearline => "DISK_AND_TAPE",
                    };
                    json!({"path": p.abs(), "locality": loc})
                })
                .collect();
            json_resp(200, &Value::Array(out))
        }
        _ => problem(
            404,
            "Not Found",
            &format!("no such resource: {method} {path}"),
        ),
    }
}

fn unknown(id: &str) -> Response<Body> {
    problem(404, "Not Found", &format!("stage request {id} not found"))
}

async fn stage(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let v = match body_json(req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(files) = v["files"].as_array().filter(|f| !f.is_empty()) else {
        return problem(
            400,
            "Bad Request",
            "expected {\"files\": [{\"path\": ...}]}",
        );
    };
    let mut out = Vec::new();
    let mut lifetime = None;
    for f in files {
        let Some(p) = f["path"].as_str().and_then(|s| DPath::from_decoded(s).ok()) else {
            return problem(400, "Bad Request", "a file without a valid path");
        };
        if let Some(l) = f["diskLifetime"].as_str() {
            lifetime = Some(l.to_string());
        }
        let missing = !p.fs(&shared.root).is_file();
        out.push(ReqFile {
            path: p,
            cancelled: false,
            missing,
        });
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut t = lock(&shared.tape);
    t.made.push((
        id.clone(),
        out.iter().map(|f| f.path.abs()).collect(),
        lifetime,
    ));
    t.requests.insert(
        id.clone(),
        StageRequest {
            created: Instant::now(),
            created_unix: unix_now(),
            files: out,
        },
    );
    let mut resp = json_resp(201, &json!({"requestId": id}));
    set(
        &mut resp,
        header::LOCATION,
        &format!("{}{API}/stage/{id}", shared.door_url),
    );
    resp
}

fn status(shared: &Arc<Shared>, id: &str) -> Response<Body> {
    let t = lock(&shared.tape);
    let Some(r) = t.requests.get(id) else {
        return unknown(id);
    };
    let localities: Vec<Locality> = r.files.iter().map(|f| shared.locality(&f.path)).collect();
    let mut all_final = true;
    let files: Vec<Value> = r
        .files
        .iter()
        .zip(localities)
        .map(|(f, loc)| {
            let (state, on_disk, error) = file_state(&t, r, f, loc);
            all_final &= state != "STARTED" && state != "SUBMITTED";
            let mut v = json!({"path": f.path.abs(), "state": state, "onDisk": on_disk, "startedAt": r.created_unix});
            if state != "STARTED" {
                v["finishedAt"] = (r.created_unix + t.stage_delay.as_secs()).into();
            }
            if let Some(e) = error {
                v["error"] = e.into();
            }
            v
        })
        .collect();
    let mut doc =
        json!({"id": id, "createdAt": r.created_unix, "startedAt": r.created_unix, "files": files});
    if all_final {
        doc["completedAt"] = (r.created_unix + t.stage_delay.as_secs()).into();
    }
    let retry = t.retry_after;
    drop(t);
    let mut resp = json_resp(200, &doc);
    set(&mut resp, header::RETRY_AFTER, &retry.to_string());
    resp
}

impl DcacheDouble {
    /// How long staging a `NEARLINE` file takes (1 s by default).
    pub fn tape_stage_delay(&self, d: Duration) {
        lock(&self.shared.tape).stage_delay = d;
    }

    /// The `Retry-After` (seconds) of stage status answers (1 by default).
    pub fn tape_retry_after(&self, secs: u64) {
        lock(&self.shared.tape).retry_after = secs;
    }

    /// Staging `path` fails with `reason` (once the stage delay has passed).
    pub fn tape_fail(&self, path: &str, reason: &str) {
        let p = DPath::from_decoded(path).expect("a valid path");
        lock(&self.shared.tape).fail.insert(p, reason.into());
    }

    /// Staging `path` never ends (it stays `STARTED`).
    pub fn tape_never_online(&self, path: &str) {
        let p = DPath::from_decoded(path).expect("a valid path");
        lock(&self.shared.tape).never.insert(p);
    }

    /// No tape API: discovery (and the API) answer `404`.
    pub fn tape_no_api(&self, on: bool) {
        lock(&self.shared.tape).no_api = on;
    }

    /// A door `GET` of a `NEARLINE` file waits this long before its redirect (dCache holds
    /// such a read while it stages the file); `None` (the default) serves it at once.
    pub fn nearline_get_delay(&self, d: Option<Duration>) {
        lock(&self.shared.tape).nearline_get_delay = d;
    }

    /// Every stage request made: its id, its paths and its `diskLifetime`.
    pub fn tape_requests(&self) -> Vec<(String, Vec<String>, Option<String>)> {
        lock(&self.shared.tape).made.clone()
    }

    /// The paths released so far.
    pub fn tape_released(&self) -> Vec<String> {
        lock(&self.shared.tape).released.clone()
    }
}
