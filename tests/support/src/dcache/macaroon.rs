//! Macaroons as dCache's WebDAV door makes and checks them (dCache book, "Understanding
//! macaroons").
//!
//! * Minting: an authenticated `POST <path>` with `Content-Type:
//!   application/macaroon-request` and an optional JSON body `{"caveats": [...],
//!   "validity": "PT12H"}` answers `200 application/json` with `{"macaroon": "...",
//!   "uri": {"targetWithMacaroon", "baseWithMacaroon", "target", "base"}}`. The door adds
//!   `iid:` and `id:` (context), `path:<path>` from the URL and `before:<instant>` from the
//!   validity, cut to [`super::DcacheDouble::set_macaroon_max_validity`] (default 7 days;
//!   no validity asked means the maximum). A macaroon presented on the request passes its
//!   caveats on (the new one can only be narrower).
//! * The macaroon is libmacaroons' V1 serialisation (base64url of `%04x`-length packets
//!   `location`, `identifier`, `cid <caveat>`, `signature`) with the HMAC-SHA256 chain of
//!   libmacaroons under a random key of the door: opaque to clients, unforgeable, and
//!   readable by a client that wants its caveats (`before:` for the expiry).
//! * Use: `Authorization: Bearer <macaroon>` or `?authz=<macaroon>` on any door request;
//!   it is checked before any other credential. A forged macaroon (bad signature, unknown
//!   caveat key), an expired one (`before:`) or one used from an address outside its
//!   `ip:` networks: `401` with `error="invalid_token"`. A path outside its `path:`
//!   (ancestors may be looked at, `HEAD` or `PROPFIND` at depth 0 only) or a method whose
//!   activity it lacks: `403`. Activities, as the book maps them: `HEAD` READ_METADATA,
//!   `GET` DOWNLOAD (a directory's HTML page LIST), `PROPFIND` READ_METADATA (+ LIST on a
//!   directory), `PUT` UPLOAD (+ DELETE over an existing file), `DELETE` DELETE, `MKCOL`
//!   and `MOVE` MANAGE, `COPY` DOWNLOAD and UPLOAD, `PROPPATCH` UPDATE_METADATA;
//!   READ_METADATA is implied by any other. The pool's redirect works as with any
//!   credential (the single-use uuid is the pool's authorisation).
//! * Every client is taken to come from [`super::DcacheDouble::set_macaroon_client_ip`]
//!   (`127.0.0.1` unless changed): the double's clients are on loopback.
//! * Switches: [`super::DcacheDouble::refuse_macaroons`] (the request is answered `403`),
//!   [`super::DcacheDouble::macaroon_html`] (`200 text/html`, a login page).
//! * Not modelled: `root:` and `home:` caveats (a request for `root:` is answered `400`),
//!   third-party caveats, V2 serialisation, filtered listings of a visible path's parents.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use base64::Engine;
use http::{header, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use ring::hmac;

use super::paths::DPath;
use super::respond::{set, text};
use super::{lock, Shared};
use crate::serve::{full, Body};

/// The media type of a macaroon request.
pub(super) const REQUEST_TYPE: &str = "application/macaroon-request";

/// The activities dCache knows.
const ACTIVITIES: [&str; 7] = [
    "READ_METADATA",
    "UPDATE_METADATA",
    "LIST",
    "DOWNLOAD",
    "MANAGE",
    "UPLOAD",
    "DELETE",
];

/// How the door answers macaroon requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Mode {
    /// Mints them.
    #[default]
    Serve,
    /// `403`, as a door with macaroons disabled.
    Refuse,
    /// `200 text/html`: a web page (a login portal in front of the door).
    Html,
}

/// The door's macaroon settings ([`Shared`]'s `macaroons`).
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) mode: Mode,
    pub(super) max_validity: Duration,
    pub(super) client_ip: IpAddr,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::Serve,
            max_validity: Duration::from_secs(7 * 24 * 3600),
            client_ip: IpAddr::from([127, 0, 0, 1]),
        }
    }
}

/// A fresh random key for a door.
pub(super) fn new_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    k
}

/// What a verified macaroon allows.
#[derive(Debug, Clone)]
pub(super) struct Grant {
    caveats: Vec<String>,
    /// `None`: every activity.
    activities: Option<BTreeSet<String>>,
    path: Option<DPath>,
    ips: Vec<Vec<(IpAddr, u8)>>,
    before: Option<SystemTime>,
}

/// The macaroon presented with `req`: `Authorization: Bearer <m>` when it reads as one,
/// else `?authz=<m>`.
fn presented<B>(req: &Request<B>) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, c)| c.trim().to_string());
    if let Some(b) = bearer.filter(|b| decode(b).is_some()) {
        return Some(b);
    }
    req.uri().query()?.split('&').find_map(|kv| {
        kv.strip_prefix("authz=").map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The macaroon of `req` checked: `Ok(None)` when it carries none, `Ok(Some(grant))` for a
/// genuine, unexpired one used from an allowed address, else the `401` to answer.
pub(super) fn check_request<B>(
    shared: &Shared,
    req: &Request<B>,
) -> Result<Option<Grant>, Box<Response<Body>>> {
    let Some(m) = presented(req) else {
        return Ok(None);
    };
    let grant = verify(&shared.macaroon_key, &m).map_err(|why| Box::new(unauthorized(&why)))?;
    if grant.before.is_some_and(|b| b <= SystemTime::now()) {
        return Err(Box::new(unauthorized("macaroon expired")));
    }
    let ip = lock(&shared.macaroons).client_ip;
    if !grant
        .ips
        .iter()
        .all(|nets| nets.iter().any(|(n, p)| in_net(ip, *n, *p)))
    {
        return Err(Box::new(unauthorized(
            "macaroon not valid from this address",
        )));
    }
    Ok(Some(grant))
}

fn unauthorized(why: &str) -> Response<Body> {
    let mut resp = text(401, &format!("Unauthorized: {why}"));
    set(
        &mut resp,
        header::WWW_AUTHENTICATE,
        "Bearer realm=\"dCache\", error=\"invalid_token\"",
    );
    resp
}

/// The door's own routes for macaroons and the limits of a granted one: `Some(answer)`
/// for a macaroon request or a request the grant does not allow.
pub(super) async fn route(
    shared: &Shared,
    req: Request<Incoming>,
    path: &DPath,
    grant: Option<&Grant>,
) -> Result<Request<Incoming>, Response<Body>> {
    let is_request = req.method().as_str() == "POST"
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with(REQUEST_TYPE));
    if is_request {
        return Err(mint(shared, req, path, grant).await);
    }
    let Some(grant) = grant else {
        return Ok(req);
    };
    let meta = std::fs::metadata(path.fs(&shared.root)).ok();
    let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
    let method = req.method().as_str();
    let depth0 = req
        .headers()
        .get("depth")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|d| d.trim() == "0");
    if let Some(visible) = &grant.path {
        let inside = path.starts_with(visible);
        let looking_at_parent =
            visible.starts_with(path) && (method == "HEAD" || (method == "PROPFIND" && depth0));
        if !(inside || looking_at_parent) {
            return Err(text(
                403,
                &format!("Forbidden: the macaroon is limited to {}", visible.abs()),
            ));
        }
        if looking_at_parent && !inside {
            return Ok(req);
        }
    }
    let needed: Vec<&str> = match method {
        "HEAD" | "OPTIONS" => vec!["READ_METADATA"],
        "GET" if is_dir => vec!["LIST"],
        "GET" => vec!["DOWNLOAD"],
        "PROPFIND" if is_dir => vec!["LIST", "READ_METADATA"],
        "PROPFIND" => vec!["READ_METADATA"],
        "PUT" if meta.is_some() => vec!["UPLOAD", "DELETE"],
        "PUT" => vec!["UPLOAD"],
        "DELETE" => vec!["DELETE"],
        "MKCOL" | "MOVE" => vec!["MANAGE"],
        "COPY" => vec!["DOWNLOAD", "UPLOAD"],
        "PROPPATCH" => vec!["UPDATE_METADATA"],
        _ => vec![],
    };
    if let Some(allowed) = &grant.activities {
        let has = |a: &str| allowed.contains(a) || (a == "READ_METADATA" && !allowed.is_empty());
        if let Some(missing) = needed.iter().find(|a| !has(a)) {
            return Err(text(
                403,
                &format!("Forbidden: the macaroon does not allow {missing}"),
            ));
        }
    }
    Ok(req)
}

/// Answers a macaroon request.
async fn mint(
    shared: &Shared,
    req: Request<Incoming>,
    path: &DPath,
    parent: Option<&Grant>,
) -> Response<Body> {
    let settings = lock(&shared.macaroons).clone();
    match settings.mode {
        Mode::Serve => {}
        Mode::Refuse => return text(403, "Forbidden: macaroons are not available on this door"),
        Mode::Html => {
            let mut resp = Response::new(full(
                "<!DOCTYPE html>\n<html><head><title>dCache login</title></head><body><h1>Please log in</h1><form method=\"post\"><input name=\"user\"/></form></body></html>\n",
            ));
            set(&mut resp, header::CONTENT_TYPE, "text/html; charset=utf-8");
            return resp;
        }
    }
    if let Some(visible) = parent.and_then(|g| g.path.as_ref()) {
        if !path.starts_with(visible) {
            return text(403, "Forbidden: outside the macaroon's path");
        }
    }
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(400, "unreadable macaroon request"),
    };
    let (asked, validity) = if body.iter().all(u8::is_ascii_whitespace) {
        (Vec::new(), None)
    } else {
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return text(400, "Bad request: the macaroon request is not JSON");
        };
        let mut asked = Vec::new();
        match &doc["caveats"] {
            serde_json::Value::Null => {}
            serde_json::Value::Array(a) => {
                for c in a {
                    let Some(c) = c.as_str() else {
                        return text(400, "Bad request: a caveat is not a string");
                    };
                    if let Err(e) = parse_caveat(c) {
                        return text(400, &format!("Bad request: caveat '{c}': {e}"));
                    }
                    if c.starts_with("root:") || c.starts_with("home:") {
                        return text(400, "Bad request: root and home caveats are not modelled");
                    }
                    asked.push(c.to_string());
                }
            }
            _ => return text(400, "Bad request: caveats is not a list"),
        }
        let validity = match &doc["validity"] {
            serde_json::Value::Null => None,
            serde_json::Value::String(v) => match iso_duration(v) {
                Some(d) => Some(d),
                None => {
                    return text(
                        400,
                        &format!("Bad request: validity '{v}' is not an ISO 8601 duration"),
                    )
                }
            },
            _ => return text(400, "Bad request: validity is not a string"),
        };
        (asked, validity)
    };
    let validity = validity
        .unwrap_or(settings.max_validity)
        .min(settings.max_validity);
    let before = SystemTime::now() + validity;
    let mut caveats: Vec<String> = match parent {
        Some(g) => g.caveats.clone(),
        None => vec![
            format!("iid:{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            "id:1000;1000;cta".to_string(),
        ],
    };
    if !path.is_root() {
        // Relative to a parent's path caveat, absolute otherwise (paths combine so).
        let p = match parent.and_then(|g| g.path.as_ref()) {
            Some(v) => path.abs()[v.abs().trim_end_matches('/').len()..].to_string(),
            None => path.abs(),
        };
        if !p.is_empty() {
            caveats.push(format!("path:{p}"));
        }
    }
    caveats.push(format!("before:{}", rfc3339(before)));
    caveats.extend(asked);
    let identifier = uuid::Uuid::new_v4().simple().to_string();
    let macaroon = encode(&shared.macaroon_key, &identifier, &caveats);
    let is_dir = std::fs::metadata(path.fs(&shared.root)).is_ok_and(|m| m.is_dir());
    let target = format!("{}{}", shared.door_url, path.href(is_dir));
    let base = format!("{}/", shared.door_url);
    let doc = serde_json::json!({
        "macaroon": macaroon,
        "uri": {
            "targetWithMacaroon": format!("{target}?authz={macaroon}"),
            "baseWithMacaroon": format!("{base}?authz={macaroon}"),
            "target": target,
            "base": base,
        }
    });
    let mut resp = Response::new(full(format!("{doc:#}\n")));
    set(&mut resp, header::CONTENT_TYPE, "application/json");
    resp
}

fn derived_key(root: &[u8]) -> hmac::Tag {
    let k = hmac::Key::new(hmac::HMAC_SHA256, b"macaroons-key-generator");
    hmac::sign(&k, root)
}

fn signature(root: &[u8], identifier: &str, caveats: &[String]) -> Vec<u8> {
    let mut sig = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, derived_key(root).as_ref()),
        identifier.as_bytes(),
    );
    for c in caveats {
        sig = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, sig.as_ref()),
            c.as_bytes(),
        );
    }
    sig.as_ref().to_vec()
}

fn packet(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let len = 4 + key.len() + 1 + value.len() + 1;
    out.extend_from_slice(format!("{len:04x}{key} ").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// A macaroon of this door (V1 serialisation, base64url without padding).
fn encode(root: &[u8], identifier: &str, caveats: &[String]) -> String {
    let mut raw = Vec::new();
    packet(&mut raw, "location", b"dcache-double");
    packet(&mut raw, "identifier", identifier.as_bytes());
    for c in caveats {
        packet(&mut raw, "cid", c.as_bytes());
    }
    packet(&mut raw, "signature", &signature(root, identifier, caveats));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A V1 macaroon taken apart: identifier, caveats, signature.
fn decode(m: &str) -> Option<(String, Vec<String>, Vec<u8>)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(m.trim().trim_end_matches('='))
        .ok()?;
    let (mut identifier, mut caveats, mut sig) = (None, Vec::new(), None);
    let mut rest = raw.as_slice();
    while !rest.is_empty() {
        let len = usize::from_str_radix(std::str::from_utf8(rest.get(..4)?).ok()?, 16).ok()?;
        if len < 6 || len > rest.len() {
            return None;
        }
        let body = rest[4..len].strip_suffix(b"\n")?;
        rest = &rest[len..];
        let space = body.iter().position(|&b| b == b' ')?;
        let (key, value) = (&body[..space], &body[space + 1..]);
        match key {
            b"location" => {}
            b"identifier" => identifier = Some(String::from_utf8(value.to_vec()).ok()?),
            b"cid" => caveats.push(String::from_utf8(value.to_vec()).ok()?),
            b"signature" => sig = Some(value.to_vec()),
            _ => return None,
        }
    }
    Some((identifier?, caveats, sig?))
}

/// Checks a macaroon's signature and reads its caveats; the error says why it is refused.
fn verify(root: &[u8], m: &str) -> Result<Grant, String> {
    let (identifier, caveats, sig) = decode(m).ok_or("not a macaroon")?;
    if signature(root, &identifier, &caveats) != sig {
        return Err("the macaroon's signature does not verify".into());
    }
    let mut g = Grant {
        caveats: caveats.clone(),
        activities: None,
        path: None,
        ips: Vec::new(),
        before: None,
    };
    for c in &caveats {
        match parse_caveat(c)? {
            Caveat::Activity(a) => {
                g.activities = Some(match g.activities.take() {
                    None => a,
                    Some(prev) => prev.intersection(&a).cloned().collect(),
                })
            }
            Caveat::Before(t) => g.before = Some(g.before.map_or(t, |b| b.min(t))),
            Caveat::Ip(nets) => g.ips.push(nets),
            Caveat::Path(p) => {
                let joined = match &g.path {
                    None => p,
                    Some(prev) => format!("{}/{}", prev.abs().trim_end_matches('/'), p),
                };
                g.path = Some(DPath::from_decoded(&joined).map_err(|e| e.to_string())?);
            }
            Caveat::Context => {}
        }
    }
    Ok(g)
}

enum Caveat {
    Activity(BTreeSet<String>),
    Before(SystemTime),
    Ip(Vec<(IpAddr, u8)>),
    Path(String),
    Context,
}

fn parse_caveat(c: &str) -> Result<Caveat, String> {
    let (key, value) = c.split_once(':').ok_or("not KEY:VALUE")?;
    Ok(match key {
        "activity" => {
            let mut set = BTreeSet::new();
            for a in value.split(',') {
                if !ACTIVITIES.contains(&a) {
                    return Err(format!("unknown activity {a}"));
                }
                set.insert(a.to_string());
            }
            Caveat::Activity(set)
        }
        "before" => Caveat::Before(ctadata_core::share::parse_instant(value).ok_or("bad instant")?),
        "ip" => Caveat::Ip(
            value
                .split(',')
                .map(parse_net)
                .collect::<Option<Vec<_>>>()
                .ok_or("bad address")?,
        ),
        "path" => Caveat::Path(value.to_string()),
        "root" | "home" | "id" | "iid" => Caveat::Context,
        _ => return Err(format!("unknown caveat key {key}")),
    })
}

fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = a.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let p = match p {
        Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some((ip, p))
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let bits = |a: IpAddr| -> u128 {
        match a {
            IpAddr::V4(v) => u128::from(u32::from(v)),
            IpAddr::V6(v) => u128::from(v),
        }
    };
    if ip.is_ipv4() != net.is_ipv4() {
        return false;
    }
    let width = if ip.is_ipv4() { 32 } else { 128 };
    if prefix == 0 {
        return true;
    }
    let shift = width - u32::from(prefix);
    bits(ip) >> shift == bits(net) >> shift
}

/// An ISO 8601 duration (`PT12H`, `P1DT30M`, `PT2S`), as Java's `Duration.parse` reads it.
fn iso_duration(s: &str) -> Option<Duration> {
    let rest = s.trim().to_ascii_uppercase();
    let rest = rest.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d.to_string(), t.to_string()),
        None => (rest.to_string(), String::new()),
    };
    let mut secs: f64 = 0.0;
    let mut num = String::new();
    for (part, units) in [(days, "D"), (time, "HMS")] {
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let n: f64 = num.parse().ok()?;
            num.clear();
            secs += n * match (units, c) {
                ("D", 'D') => 86_400.0,
                ("HMS", 'H') => 3600.0,
                ("HMS", 'M') => 60.0,
                ("HMS", 'S') => 1.0,
                _ => return None,
            };
        }
        if !num.is_empty() {
            return None;
        }
    }
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// `2026-12-04T05:30:00Z`.
fn rfc3339(t: SystemTime) -> String {
    ctadata_core::entry::format_rfc3339(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macaroons_verify_and_refuse_forgeries() {
        let key = new_key();
        let caveats = vec![
            "path:/cta/a b".to_string(),
            "before:2099-01-01T00:00:00.000Z".to_string(),
            "activity:DOWNLOAD".to_string(),
            "ip:127.0.0.0/8,::1".to_string(),
        ];
        let m = encode(&key, "id1", &caveats);
        let g = verify(&key, &m).unwrap();
        assert_eq!(g.path.unwrap().abs(), "/cta/a b");
        assert!(g.activities.unwrap().contains("DOWNLOAD"));
        assert_eq!(g.ips.len(), 1);
        // Another door's key, a dropped caveat, a changed caveat: refused.
        assert!(verify(&new_key(), &m).is_err());
        let (id, mut cs, sig) = decode(&m).unwrap();
        cs.pop();
        let mut raw = Vec::new();
        packet(&mut raw, "location", b"x");
        packet(&mut raw, "identifier", id.as_bytes());
        for c in &cs {
            packet(&mut raw, "cid", c.as_bytes());
        }
        packet(&mut raw, "signature", &sig);
        let dropped = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        assert!(verify(&key, &dropped).is_err());
        let mut other = caveats.clone();
        other[2] = "activity:DOWNLOAD,UPLOAD".into();
        assert!(verify(&key, &encode(&new_key(), "id1", &other)).is_err());
        // Unknown caveat keys are refused even when signed.
        assert!(verify(&key, &encode(&key, "id", &["colour:red".into()])).is_err());
        // The client's reader sees the same caveats.
        assert_eq!(ctadata_core::share::macaroon_caveats(&m).unwrap(), caveats);
    }

    #[test]
    fn networks_and_durations() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(in_net(lo, "127.0.0.0".parse().unwrap(), 8));
        assert!(!in_net(lo, "10.0.0.0".parse().unwrap(), 8));
        assert!(in_net(lo, lo, 32));
        assert!(!in_net(lo, "::1".parse().unwrap(), 128));
        assert!(in_net(lo, "0.0.0.0".parse().unwrap(), 0));
        assert_eq!(iso_duration("PT12H"), Some(Duration::from_secs(43_200)));
        assert_eq!(iso_duration("P1DT30M"), Some(Duration::from_secs(88_200)));
        assert_eq!(iso_duration("PT2S"), Some(Duration::from_secs(2)));
        assert_eq!(iso_duration("12h"), None);
        assert_eq!(iso_duration("PT"), None);
    }

    /// A request to `url` with `auth` as bearer, answered: status and body.
    async fn ask(url: &str, method: &str, auth: Option<&str>) -> (u16, String) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut rb = client.request(method.parse().unwrap(), url);
        if let Some(a) = auth {
            rb = rb.header("Authorization", format!("Bearer {a}"));
        }
        if method == "PROPFIND" {
            rb = rb.header("Depth", "0");
        }
        let r = rb.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    #[tokio::test]
    async fn the_door_enforces_expiry_rights_and_path() {
        let d = super::super::DcacheDouble::start(Default::default());
        d.put_file("/cta/in/f.txt", b"x");
        d.put_file("/cta/out.txt", b"y");
        let key = d.shared.macaroon_key;
        let mac = |caveats: &[&str]| {
            let c: Vec<String> = caveats.iter().map(|s| s.to_string()).collect();
            encode(&key, "t", &c)
        };
        let f = d.url_for("/cta/in/f.txt");
        let past = mac(&["path:/cta/in", "before:2001-01-01T00:00:00Z"]);
        let (s, body) = ask(&f, "GET", Some(&past)).await;
        assert_eq!((s, body.contains("expired")), (401, true), "{body}");
        let (s, _) = ask(&format!("{f}?authz={past}"), "GET", None).await;
        assert_eq!(s, 401, "also as ?authz=");
        let list_only = mac(&["path:/cta/in", "activity:LIST"]);
        assert_eq!(ask(&f, "GET", Some(&list_only)).await.0, 403);
        assert_eq!(
            ask(&f, "HEAD", Some(&list_only)).await.0,
            200,
            "metadata is implied"
        );
        let download = mac(&["path:/cta/in", "activity:DOWNLOAD"]);
        assert_eq!(ask(&f, "GET", Some(&download)).await.0, 307, "to the pool");
        assert_eq!(ask(&f, "DELETE", Some(&download)).await.0, 403);
        let out = d.url_for("/cta/out.txt");
        assert_eq!(
            ask(&out, "GET", Some(&download)).await.0,
            403,
            "outside its path"
        );
        let parent = d.url_for("/cta/");
        assert_eq!(
            ask(&parent, "PROPFIND", Some(&download)).await.0,
            207,
            "a parent may be looked at"
        );
        d.set_macaroon_client_ip("192.0.2.7".parse().unwrap());
        let near = mac(&["ip:127.0.0.0/8"]);
        assert_eq!(
            ask(&f, "GET", Some(&near)).await.0,
            401,
            "from another address"
        );
        let (s, _) = ask(&f, "GET", Some(&mac(&["ip:192.0.2.0/24"]))).await;
        assert_eq!(s, 307);
        assert!(d.root().join("cta/in/f.txt").exists());
    }
}
