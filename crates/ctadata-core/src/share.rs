//! Share links: a bearer credential of limited rights and lifetime for one path (dCache
//! macaroons), handed to somebody who has no account. A backend that can ask for them
//! returns a [`ShareOps`] from [`crate::StorageBackend::share_links`].
//!
//! dCache's macaroon request (dCache book, "Requesting a macaroon"): an authenticated
//! `POST <path>` with `Content-Type: application/macaroon-request` and a JSON body
//! `{"caveats": ["activity:DOWNLOAD,LIST", "ip:192.0.2.0/24"], "validity": "PT12H"}`; the
//! door adds `path:<path>` from the URL and `before:<instant>` from the validity (shortened
//! to its own maximum) and answers `{"macaroon": "...", "uri": {"targetWithMacaroon": ...}}`.
//! A macaroon is used as `Authorization: Bearer <macaroon>` or as `?authz=<macaroon>`.
//!
//! Besides the types, this module reads what a client may know of a macaroon without the
//! door's key: its caveats (libmacaroons V1 serialisation, the one dCache hands out) and so
//! its expiry ([`macaroon_expiry`]), for messages such as "the link expired 3 min ago".

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::credentials::Secret;
use crate::error::{Error, Result};
use crate::path::RemotePath;

/// The activities dCache knows (dCache book, "Activities"), upper case.
pub const ACTIVITIES: [&str; 7] = [
    "DOWNLOAD",
    "LIST",
    "READ_METADATA",
    "UPLOAD",
    "DELETE",
    "MANAGE",
    "UPDATE_METADATA",
];

/// What a share link of a file allows unless told otherwise: reading it.
pub const FILE_DEFAULT: [&str; 2] = ["DOWNLOAD", "READ_METADATA"];

/// What a share link of a directory allows unless told otherwise: listing and reading.
pub const DIR_DEFAULT: [&str; 3] = ["DOWNLOAD", "LIST", "READ_METADATA"];

/// The longest lifetime a link may be asked for (servers shorten it further to their own
/// maximum).
pub const MAX_VALIDITY: Duration = Duration::from_secs(366 * 24 * 3600);

/// What a share link may do, and for how long.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShareRequest {
    /// How long the link works.
    pub validity: Duration,
    /// dCache activities allowed (`DOWNLOAD`, `LIST`, `UPLOAD`, `DELETE`, `MANAGE`,
    /// `READ_METADATA`, `UPDATE_METADATA`), upper case.
    pub activities: Vec<String>,
    /// Client networks allowed (`ip:` caveat); empty for any.
    pub ip: Vec<(IpAddr, u8)>,
}

impl ShareRequest {
    /// A link valid for `validity` that allows `activities`.
    pub fn new(validity: Duration, activities: Vec<String>) -> Self {
        Self {
            validity,
            activities,
            ip: Vec::new(),
        }
    }

    /// Only from these networks (address, prefix length).
    pub fn with_ip(mut self, nets: Vec<(IpAddr, u8)>) -> Self {
        self.ip = nets;
        self
    }

    /// The caveats sent to the door: one `activity:` caveat, and one `ip:` caveat listing
    /// every network (several `ip:` caveats would each have to match: an intersection).
    pub fn caveats(&self) -> Vec<String> {
        let mut out = vec![format!("activity:{}", self.activities.join(","))];
        if !self.ip.is_empty() {
            let nets: Vec<String> = self.ip.iter().map(|(a, p)| format!("{a}/{p}")).collect();
            out.push(format!("ip:{}", nets.join(",")));
        }
        out
    }

    /// The JSON body of the macaroon request.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "caveats": self.caveats(),
            "validity": iso8601_duration(self.validity),
        })
    }
}

/// A link the server made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShareLink {
    /// The ready link (the macaroon is inside it: a secret).
    pub link: Secret,
    /// The macaroon alone, for a `--token-file` (a secret).
    pub macaroon: Secret,
    /// When it stops working: the macaroon's `before:` caveat when it can be read, else
    /// the time asked for.
    pub expires: Option<SystemTime>,
    /// The caveats asked for (`activity:DOWNLOAD,LIST`, `ip:...`).
    pub caveats: Vec<String>,
}

impl ShareLink {
    /// A link with its macaroon, expiry and caveats.
    pub fn new(
        link: Secret,
        macaroon: Secret,
        expires: Option<SystemTime>,
        caveats: Vec<String>,
    ) -> Self {
        Self {
            link,
            macaroon,
            expires,
            caveats,
        }
    }
}

/// Asking the server for share links.
#[async_trait]
pub trait ShareOps: Send + Sync {
    /// A link to `path` with the rights and lifetime of `req`.
    async fn share(&self, path: &RemotePath, req: &ShareRequest) -> Result<ShareLink>;
}

// ---- share (issue 14, share): share links go through the retry layer too ----
#[async_trait]
impl ShareOps for crate::retry::Retrying {
    async fn share(&self, path: &RemotePath, req: &ShareRequest) -> Result<ShareLink> {
        let Some(ops) = self.inner().share_links() else {
            return Err(crate::backend::unsupported(
                "share",
                self.inner().capabilities().backend,
            ));
        };
        self.run("share", path, || ops.share(path, req)).await
    }
}
// ---- end of share ----

/// Reads `--allow`: a comma-separated list of activities, any case, `-` or `_`
/// (`download,list`, `read-metadata`); `READ_METADATA` is added, as dCache implies it.
pub fn parse_activities(s: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let up = word.to_ascii_uppercase().replace('-', "_");
        if !ACTIVITIES.contains(&up.as_str()) {
            return Err(Error::usage(
                format!("unknown activity '{word}' in --allow"),
                format!(
                    "allowed: {} (comma-separated)",
                    ACTIVITIES
                        .iter()
                        .map(|a| a.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !out.contains(&up) {
            out.push(up);
        }
    }
    if out.is_empty() {
        return Err(Error::usage(
            "--allow names no activity",
            "give e.g. --allow download,list",
        ));
    }
    if !out.iter().any(|a| a == "READ_METADATA") {
        out.push("READ_METADATA".into());
    }
    Ok(out)
}

/// Reads `--for`: a number with a unit, or several (`30s`, `90m`, `12h`, `7d`, `1w`,
/// `1d12h`), or an ISO 8601 duration (`PT12H`, `P1DT12H`).
pub fn parse_validity(s: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(
            format!("'{s}' is not a lifetime for --for"),
            "give a number with a unit: s, m, h, d or w (e.g. 30m, 12h, 7d, 1d12h), or an ISO 8601 duration such as PT12H",
        )
    };
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let secs = if let Some(iso) = upper.strip_prefix('P') {
        parse_iso_duration(iso).ok_or_else(bad)?
    } else {
        let mut total: u64 = 0;
        let mut num = String::new();
        let mut any = false;
        for c in t.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit: u64 = match c.to_ascii_lowercase() {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return Err(bad()),
            };
            let n: u64 = num.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            num.clear();
            any = true;
        }
        if !num.is_empty() || !any {
            return Err(bad());
        }
        total
    };
    let d = Duration::from_secs(secs);
    if d.is_zero() {
        return Err(Error::usage(
            format!("a link valid for '{s}' would never work"),
            "give a lifetime of at least one second, e.g. --for 12h",
        ));
    }
    if d > MAX_VALIDITY {
        return Err(Error::usage(
            format!("'{s}' is longer than a link may live (at most 366 days)"),
            "give a shorter lifetime, e.g. --for 7d",
        ));
    }
    Ok(d)
}

/// Seconds of an ISO 8601 duration after its `P` (days, hours, minutes, whole seconds).
fn parse_iso_duration(iso: &str) -> Option<u64> {
    let (date, time) = match iso.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (iso, None),
    };
    let mut total: u64 = 0;
    let mut read = |part: &str, units: &[(char, u64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = units.iter().find(|(u, _)| *u == c)?.1;
            let n: u64 = num.parse().ok()?;
            total = total.checked_add(n.checked_mul(unit)?)?;
            num.clear();
        }
        num.is_empty().then_some(())
    };
    read(date, &[('W', 7 * 86_400), ('D', 86_400)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        read(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    (date.len() + time.map_or(0, str::len) > 0).then_some(total)
}

/// A lifetime as the ISO 8601 duration dCache reads (`PT12H`, `P2DT30M`, `PT2S`).
pub fn iso8601_duration(d: Duration) -> String {
    let s = d.as_secs().max(1);
    let (days, rest) = (s / 86_400, s % 86_400);
    let (h, m, sec) = (rest / 3600, (rest % 3600) / 60, rest % 60);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if rest > 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if sec > 0 {
            out.push_str(&format!("{sec}S"));
        }
    }
    out
}

/// Reads `--ip`: an address (`192.0.2.7`, `2001:db8::1`) or a network in CIDR notation
/// (`192.0.2.0/24`); the address is kept as given (the server masks it).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8)> {
    let bad = |why: &str| {
        Error::usage(
            format!("'{s}' is not an address or network for --ip: {why}"),
            "give an IPv4 or IPv6 address, or a network in CIDR notation such as 192.0.2.0/24 or 2001:db8::/32",
        )
    };
    let t = s.trim();
    let (addr, prefix) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let ip: IpAddr = addr
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| bad("not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            let n: u8 = p
                .parse()
                .map_err(|_| bad("the prefix length is not a number"))?;
            if n > max {
                return Err(bad(&format!("the prefix length is above {max}")));
            }
            n
        }
    };
    Ok((ip, prefix))
}

/// What a door's answer to a macaroon request holds.
#[derive(Debug, Clone)]
pub struct MacaroonAnswer {
    /// The macaroon (a secret).
    pub macaroon: Secret,
    /// `uri.targetWithMacaroon`, the ready link, when the door gave one (a secret).
    pub target_with_macaroon: Option<Secret>,
}

/// Reads a door's answer to a macaroon request (`{"macaroon": "...", "uri":
/// {"targetWithMacaroon": "..."}}`): `Err(true)` when the body is not a JSON object,
/// `Err(false)` when it is one without a usable `macaroon`. Never says more: serde's
/// messages may quote the values, which are secrets.
pub fn parse_macaroon_answer(body: &[u8]) -> std::result::Result<MacaroonAnswer, bool> {
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| true)?;
    if !doc.is_object() {
        return Err(true);
    }
    let macaroon = doc["macaroon"]
        .as_str()
        .map(str::trim)
        .filter(|m| !m.is_empty() && !m.contains(char::is_whitespace))
        .ok_or(false)?;
    Ok(MacaroonAnswer {
        macaroon: Secret::new(macaroon),
        target_with_macaroon: doc["uri"]["targetWithMacaroon"].as_str().map(Secret::new),
    })
}

/// The caveats of a macaroon in libmacaroons' V1 serialisation (base64 of `%04x`-length
/// packets `cid <caveat>\n`), as dCache hands them out; `None` when it is not one.
pub fn macaroon_caveats(macaroon: &str) -> Option<Vec<String>> {
    let raw = crate::credentials::base64url_decode(macaroon.trim())?;
    let mut caveats = Vec::new();
    let mut rest = raw.as_slice();
    let mut saw_identifier = false;
    let mut saw_signature = false;
    while !rest.is_empty() {
        let len = usize::from_str_radix(std::str::from_utf8(rest.get(..4)?).ok()?, 16).ok()?;
        if len < 6 || len > rest.len() {
            return None;
        }
        let packet = &rest[4..len];
        rest = &rest[len..];
        let packet = packet.strip_suffix(b"\n")?;
        let space = packet.iter().position(|&b| b == b' ')?;
        let (key, value) = (&packet[..space], &packet[space + 1..]);
        match key {
            b"location" | b"vid" | b"cl" => {}
            b"identifier" => saw_identifier = true,
            b"cid" => caveats.push(String::from_utf8(value.to_vec()).ok()?),
            b"signature" => saw_signature = true,
            _ => return None,
        }
    }
    (saw_identifier && saw_signature).then_some(caveats)
}

/// When a macaroon stops working: its earliest `before:` caveat (a UTC ISO 8601 instant);
/// `None` when the macaroon cannot be read or has none.
pub fn macaroon_expiry(macaroon: &str) -> Option<SystemTime> {
    macaroon_caveats(macaroon)?
        .iter()
        .filter_map(|c| c.strip_prefix("before:"))
        .filter_map(parse_instant)
        .min()
}

/// The instant of a `before:` caveat: ISO 8601 in UTC with its zone (`2019-04-17T09:51:22.840Z`).
pub fn parse_instant(value: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_validity("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_validity("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_validity("1d12h").unwrap(),
            Duration::from_secs(129_600)
        );
        assert_eq!(parse_validity("1w").unwrap(), Duration::from_secs(604_800));
        assert_eq!(
            parse_validity("PT12H").unwrap(),
            Duration::from_secs(43_200)
        );
        assert_eq!(
            parse_validity("p1dt30m").unwrap(),
            Duration::from_secs(88_200)
        );
        for bad in [
            "",
            "12",
            "h",
            "12x",
            "0s",
            "P",
            "PT",
            "-3h",
            "1.5h",
            "400d",
            "99999999999999999999s",
        ] {
            let e = parse_validity(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit_code::USAGE, "{bad}");
            assert!(e.hint().is_some());
        }
        assert_eq!(iso8601_duration(Duration::from_secs(43_200)), "PT12H");
        assert_eq!(iso8601_duration(Duration::from_secs(2)), "PT2S");
        assert_eq!(iso8601_duration(Duration::from_secs(88_200)), "P1DT30M");
        assert_eq!(iso8601_duration(Duration::from_secs(86_400)), "P1D");
        for s in [1u64, 59, 61, 3599, 3601, 86_399, 86_401, 604_800] {
            let d = Duration::from_secs(s);
            assert_eq!(parse_validity(&iso8601_duration(d)).unwrap(), d, "{s}");
        }
    }

    #[test]
    fn activities() {
        assert_eq!(
            parse_activities("download, List").unwrap(),
            ["DOWNLOAD", "LIST", "READ_METADATA"]
        );
        assert_eq!(
            parse_activities("read-metadata,upload,upload").unwrap(),
            ["READ_METADATA", "UPLOAD"]
        );
        let e = parse_activities("download,write").unwrap_err();
        assert!(e.to_string().contains("'write'"), "{e}");
        let hint = e.hint().unwrap();
        for a in ACTIVITIES {
            assert!(hint.contains(&a.to_ascii_lowercase()), "{hint}");
        }
        assert!(parse_activities(" , ").is_err());
    }

    #[test]
    fn networks() {
        assert_eq!(
            parse_cidr("192.0.2.0/24").unwrap(),
            ("192.0.2.0".parse().unwrap(), 24)
        );
        assert_eq!(
            parse_cidr("127.0.0.1").unwrap(),
            ("127.0.0.1".parse().unwrap(), 32)
        );
        assert_eq!(
            parse_cidr("2001:db8::/32").unwrap(),
            ("2001:db8::".parse().unwrap(), 32)
        );
        for bad in [
            "1.2.3.4/33",
            "::/129",
            "1.2.3/24",
            "host.example",
            "1.2.3.4/x",
            "",
        ] {
            let e = parse_cidr(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit_code::USAGE, "{bad}");
        }
        let r = ShareRequest::new(Duration::from_secs(60), vec!["DOWNLOAD".into()]).with_ip(vec![
            parse_cidr("10.0.0.0/8").unwrap(),
            parse_cidr("::1").unwrap(),
        ]);
        assert_eq!(r.caveats(), ["activity:DOWNLOAD", "ip:10.0.0.0/8,::1/128"]);
        assert_eq!(r.body()["validity"], "PT1M");
    }

    #[test]
    fn the_caveats_of_dcache_s_example_macaroon_are_read() {
        // The macaroon of the dCache book's chapter "Understanding macaroons".
        let m = "MDAxY2xvY2F0aW9uIE9wdGlvbmFsLmVtcHR5CjAwMThpZGVudGlmaWVyIGhsQ0kremlRCjAwMTVjaWQgaWlkOnBGTTA1MnJTCjAwMjFjaWQgaWQ6MjAwMjsxMDAxLDIwMDIsMDtwYXVsCjAwMjhjaWQgYmVmb3JlOjIwMTktMDQtMTdUMDk6NTE6MjIuODQwWgowMDE5Y2lkIGhvbWU6L1VzZXJzL3BhdWwKMDAyZnNpZ25hdHVyZSCT6Lea6oBIEpiF2KOsZ1FQvLeoXve_a3q38TZTBWhM1Qo";
        let c = macaroon_caveats(m).unwrap();
        assert_eq!(
            c,
            [
                "iid:pFM052rS",
                "id:2002;1001,2002,0;paul",
                "before:2019-04-17T09:51:22.840Z",
                "home:/Users/paul"
            ]
        );
        let e = macaroon_expiry(m).unwrap();
        assert_eq!(crate::entry::format_rfc3339(e), "2019-04-17T09:51:22Z");
        assert!(macaroon_caveats("eyJhbGciOi.eyJzdWIi.sig").is_none());
        assert!(macaroon_caveats("not a macaroon").is_none());
        assert!(macaroon_expiry("").is_none());
    }
}
