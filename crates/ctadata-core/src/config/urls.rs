//! Remote paths pasted as URLs: a `https://`, `davs://` (= https) or `dav://` (= http) URL
//! of the profile's own door names the path below the door's base path; a URL of any
//! other server is refused, naming the profile that has it.
//!
//! A share link (`https://door/path?authz=<macaroon>`, what `cta-data share` prints) is a
//! URL and a credential at once: [`link_arg`] takes it apart and
//! [`ResolvedProfile::with_link`] points the profile at its door with its macaroon as the
//! only token, for one command.

use std::borrow::Cow;

use super::model::BackendKind;
use super::ResolvedProfile;
use crate::credentials::{GivenToken, Secret};
use crate::error::{Error, Result};

/// A URL taken apart: only what deciding and messages need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url<'a> {
    /// `http` or `https` (`dav`/`davs` mapped), or the scheme as given when unknown.
    scheme: String,
    /// The host, lower case (an IPv6 address keeps its brackets).
    host: String,
    /// The port, the scheme's default when the URL names none.
    port: Option<u16>,
    /// The path, still percent-encoded; empty or starting with `/`.
    path: &'a str,
    /// Whether `user:password@` was given.
    userinfo: bool,
    /// Whether a `?query` or `#fragment` was given.
    query: bool,
}

impl Url<'_> {
    /// `scheme://host:port`, what `--url` takes (never a user, a query or a fragment).
    fn origin(&self) -> String {
        match self.port {
            Some(p) if Some(p) != default_port(&self.scheme) => {
                format!("{}://{}:{p}", self.scheme, self.host)
            }
            _ => format!("{}://{}", self.scheme, self.host),
        }
    }

    /// `host:port`, for messages.
    fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The URL as shown in messages: without user, query and fragment.
    fn shown(&self) -> String {
        format!("{}{}", self.origin(), self.path)
    }

    /// Same scheme, host and port.
    fn same_server(&self, other: &Url<'_>) -> bool {
        self.scheme == other.scheme && self.host == other.host && self.port == other.port
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Whether `arg` looks like `scheme://...` (a path with `//` is invalid anyway).
fn is_url(arg: &str) -> bool {
    let Some((scheme, _)) = arg.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Takes a URL apart; `None` when it has no `scheme://` or a port that is not a number.
fn parse(arg: &str) -> Option<Url<'_>> {
    let (scheme, rest) = arg.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "davs" | "https" => "https".to_string(),
        "dav" | "http" => "http".to_string(),
        other => other.to_string(),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((_, h)) => (true, h),
        None => (false, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (
            format!("[{}]", h.to_ascii_lowercase()),
            after.strip_prefix(':'),
        )
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (hostport.to_ascii_lowercase(), None),
        }
    };
    let port = match port {
        Some("") | None => default_port(&scheme),
        Some(p) => Some(p.parse().ok()?),
    };
    let qpos = tail.find(['?', '#']);
    let path = &tail[..qpos.unwrap_or(tail.len())];
    Some(Url {
        scheme,
        host,
        port,
        path,
        userinfo,
        query: qpos.is_some(),
    })
}

/// Percent-decodes once; `None` when the result is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The storage path `url` names below `base` (a profile's URL): decoded, with a leading `/`
/// and the trailing `/` kept. `None` when the URL is not below the base path.
fn path_below(url: &Url<'_>, base: &Url<'_>) -> Option<Result<String, ()>> {
    let base_path = base.path.trim_end_matches('/');
    let rest = url.path.strip_prefix(base_path)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(match decode(rest) {
        Some(p) if p.starts_with('/') => Ok(p),
        Some(p) => Ok(format!("/{p}")),
        None => Err(()),
    })
}

/// A share link taken apart: the URL without its query, and the macaroon of its `authz=`.
#[derive(Debug, Clone)]
pub struct LinkArg {
    /// `scheme://host:port/path`, still percent-encoded, without the query.
    pub url: String,
    /// The macaroon (a secret).
    pub macaroon: Secret,
}

/// How the share link is named in messages.
pub const LINK_SOURCE: &str = "the share link";

/// What to do when a share link is refused or has expired.
pub const LINK_FIX: &str =
    "ask whoever shared it for a new link (they make one with 'cta-data share PATH')";

/// The share link in `arg`: an `http(s)://`, `davs://` or `dav://` URL whose query holds
/// `authz=<macaroon>` (dCache's way of putting a macaroon in a URL). `None` for anything
/// else, a plain URL or path included.
pub fn link_arg(arg: &str) -> Option<LinkArg> {
    if !is_url(arg) {
        return None;
    }
    let url = parse(arg)?;
    if !matches!(url.scheme.as_str(), "http" | "https") || url.userinfo {
        return None;
    }
    let q = arg.find('?')?;
    let query = arg[q + 1..].split('#').next().unwrap_or("");
    let value = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("authz="))
        .and_then(|v| decode(&v.replace('+', "%2B")))
        .filter(|v| !v.trim().is_empty())?;
    Some(LinkArg {
        url: arg[..q].to_string(),
        macaroon: Secret::new(value.trim()),
    })
}

impl ResolvedProfile {
    /// A token given for this command alone (a share link's macaroon): when set, a dCache
    /// backend sends it and nothing else.
    pub fn given_token(&self) -> Option<&GivenToken> {
        self.given.as_ref()
    }

    /// This profile aimed at a share link: the `dcache` backend, the link's door (the
    /// profile's own url when the link lies below it, else the link's `scheme://host:port`)
    /// and the link's macaroon as the only token. The profile's trust (`ca_file`, `ca_dir`)
    /// stays; its other credentials are not used.
    pub fn with_link(mut self, link: &LinkArg) -> Result<Self> {
        let Some(url) = parse(&link.url) else {
            return Err(Error::usage(
                "the share link cannot be read as a URL (its port is not a number)",
                "give the link exactly as 'cta-data share' printed it",
            ));
        };
        let own = self.profile.url.as_deref().and_then(parse);
        let takes_urls = matches!(self.backend(), BackendKind::Dcache | BackendKind::X509);
        let below_own = takes_urls
            && own
                .as_ref()
                .is_some_and(|o| url.same_server(o) && path_below(&url, o).is_some());
        if !below_own {
            tracing::info!(door = %url.origin(), "the share link's door replaces the profile's url");
            self.profile.url = Some(url.origin());
            self.origins.insert("url".into(), LINK_SOURCE.into());
        }
        if self.backend() != BackendKind::Dcache {
            self.profile.backend = Some(BackendKind::Dcache);
            self.origins.insert("backend".into(), LINK_SOURCE.into());
        }
        self.given = Some(GivenToken::new(
            link.macaroon.clone(),
            LINK_SOURCE,
            LINK_FIX,
        ));
        Ok(self)
    }

    /// `arg` without its `?authz=` query when it is the share link this profile was aimed
    /// at ([`ResolvedProfile::with_link`]).
    fn strip_own_link<'a>(&self, arg: &'a str) -> &'a str {
        match (link_arg(arg), &self.given) {
            (Some(l), Some(g)) if &l.macaroon == g.token() => &arg[..l.url.len()],
            _ => arg,
        }
    }

    /// A remote path as the user typed it: a plain path unchanged, or a `https://`,
    /// `davs://` (= https) or `dav://` (= http) URL of this profile's door turned into the
    /// path it names (percent-decoded, the door's base path stripped, a trailing `/` kept).
    ///
    /// A URL of another server (scheme, host or port), or any URL on a profile whose
    /// backend takes no URLs (`downloadservice`, `local`), is a usage error naming the
    /// URL's host and the profile whose url it is (or `--url`). URLs with a user, a query
    /// or a fragment are refused without showing those parts (they may hold secrets).
    ///
    /// The share link this profile was aimed at ([`ResolvedProfile::with_link`]) names its
    /// path like any URL of the door; its `?authz=` query is dropped.
    pub fn remote_arg<'a>(&self, arg: &'a str) -> Result<Cow<'a, str>> {
        let arg = self.strip_own_link(arg);
        if !is_url(arg) {
            return Ok(Cow::Borrowed(arg));
        }
        let Some(url) = parse(arg) else {
            return Err(Error::usage(
                "a remote path looks like a URL but cannot be read as one (its port is not a number)",
                "give the path on the storage (e.g. lst/DL1/...) or the door's URL as https://host:port/path",
            ));
        };
        if !matches!(url.scheme.as_str(), "http" | "https") {
            return Err(Error::usage(
                format!(
                    "the URL {} is not one cta-data takes: {}:// is not a WebDAV URL",
                    url.shown(),
                    url.scheme
                ),
                "give the path on the storage (e.g. lst/DL1/...), or a https://, davs:// or dav:// URL of the profile's door",
            ));
        }
        if url.userinfo || url.query {
            return Err(Error::usage(
                format!(
                    "the URL {} carries a user name or a '?query'/'#fragment' (not shown: they may hold a secret)",
                    url.shown()
                ),
                format!("give it as {} (credentials come from the profile, never from a URL)", url.shown()),
            ));
        }
        let takes_urls = matches!(self.backend(), BackendKind::Dcache | BackendKind::X509);
        let own = self.profile.url.as_deref().and_then(parse);
        if let (true, Some(own)) = (takes_urls, &own) {
            if url.same_server(own) {
                return match path_below(&url, own) {
                    Some(Ok(p)) => Ok(Cow::Owned(p)),
                    Some(Err(())) => Err(Error::usage(
                        format!("the URL {} does not decode to UTF-8 text", url.shown()),
                        "check the %-escapes of the URL, or give the path on the storage",
                    )),
                    None => Err(Error::usage(
                        format!(
                            "the URL {} is on the door of profile '{}' but not below its base path {}",
                            url.shown(),
                            self.name,
                            own.path
                        ),
                        format!(
                            "give a URL that starts with {}, or the path on the storage",
                            own.shown()
                        ),
                    )),
                };
            }
        }
        // Which profiles have this server (scheme, host and port)?
        let owners: Vec<(&str, Url<'_>)> = self
            .profile_urls
            .iter()
            .filter(|(n, _)| *n != self.name)
            .filter_map(|(n, u)| Some((n.as_str(), parse(u)?)))
            .filter(|(_, u)| url.same_server(u))
            .collect();
        let path_hint = owners
            .first()
            .and_then(|(_, base)| path_below(&url, base))
            .or_else(|| {
                path_below(
                    &url,
                    &Url {
                        path: "",
                        ..url.clone()
                    },
                )
            })
            .and_then(|r| r.ok());
        let names = match owners.as_slice() {
            [] => String::new(),
            [(n, _)] => format!("'{n}'"),
            [(n, _), rest @ ..] => {
                let rest: Vec<String> = rest.iter().map(|(m, _)| format!("'{m}'")).collect();
                format!("'{n}' (and of {})", rest.join(", "))
            }
        };
        let message = if takes_urls {
            format!(
                "the URL {} is on {}, not on the door of profile '{}' ({})",
                url.shown(),
                url.host_port(),
                self.name,
                own.as_ref()
                    .map(Url::host_port)
                    .unwrap_or_else(|| "no url".into())
            )
        } else {
            format!(
                "profile '{}' ({} backend) takes paths on the storage, not URLs; the URL {} is on {}",
                self.name,
                self.backend().as_str(),
                url.shown(),
                url.host_port()
            )
        };
        let hint = match (owners.first(), &path_hint) {
            (Some((n, _)), Some(p)) => format!(
                "that is the url of profile {names}: run the command with --profile {n}, or give the path {p} on this profile"
            ),
            (Some((n, _)), None) => format!(
                "that is the url of profile {names}: run the command with --profile {n}"
            ),
            (None, _) if takes_urls => format!(
                "no profile has that server: to use it, pass --url {} (or add a profile with that url to your config file)",
                url.origin()
            ),
            (None, Some(p)) => format!(
                "give the path on the storage, e.g. {p}; no profile has that server (a WebDAV door is reached with a dcache profile and --url {})",
                url.origin()
            ),
            (None, None) => "give the path on the storage instead of a URL".to_string(),
        };
        Err(Error::usage(message, hint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        let u = parse("davs://Door.Example:2880/lst/a%20b/?x").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.host, "door.example");
        assert_eq!(u.port, Some(2880));
        assert_eq!(u.path, "/lst/a%20b/");
        assert!(u.query && !u.userinfo);
        let u = parse("dav://[::1]/x").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port),
            ("http", "[::1]", Some(80))
        );
        let u = parse("https://me:pw@h").unwrap();
        assert!(u.userinfo);
        assert_eq!(u.path, "");
        assert!(parse("https://h:port/").is_none());
        assert!(is_url("https://h/x") && !is_url("lst/a://b") && !is_url("lst/x"));
    }

    #[test]
    fn decoding_is_done_once() {
        assert_eq!(decode("a%20b%2525%").as_deref(), Some("a b%25%"));
        assert_eq!(decode("%41%4a%4A").as_deref(), Some("AJJ"));
        assert_eq!(decode("%ff"), None);
    }

    #[test]
    fn share_links_are_taken_apart_and_aim_the_profile() {
        let l = link_arg("https://Door:2880/cta/a%20b.txt?authz=MDAx-_yz%2B&x=1#f").unwrap();
        assert_eq!(l.url, "https://Door:2880/cta/a%20b.txt");
        assert_eq!(l.macaroon.expose(), "MDAx-_yz+");
        assert!(
            !format!("{l:?}").contains("MDAx"),
            "the macaroon is a secret"
        );
        for not_a_link in [
            "https://door/cta/x",
            "https://door/cta/x?authz=",
            "https://u:p@door/x?authz=abc",
            "root://door/x?authz=abc",
            "cta/x?authz=abc",
        ] {
            assert!(link_arg(not_a_link).is_none(), "{not_a_link}");
        }
        let env = crate::config::EnvSnapshot::from_pairs([("HOME", "/nonexistent-home")]);
        // Below the profile's own door and base path: the url stays.
        let own = crate::config::load_from_map(
            Some("door"),
            [("backend", "x509"), ("url", "https://door:2880/cta")],
            &env,
        )
        .unwrap();
        let link = "https://door:2880/cta/run/f.txt?authz=abc";
        assert!(
            own.remote_arg(link).is_err(),
            "a query is refused without the link"
        );
        let r = own.with_link(&link_arg(link).unwrap()).unwrap();
        assert_eq!(r.profile.url.as_deref(), Some("https://door:2880/cta"));
        assert_eq!(r.backend(), BackendKind::Dcache);
        assert_eq!(r.given_token().unwrap().token().expose(), "abc");
        assert_eq!(r.remote_arg(link).unwrap(), "/run/f.txt");
        // Another link's query is still refused, without showing it.
        let e = r
            .remote_arg("https://door:2880/cta/x?authz=zzz")
            .unwrap_err();
        assert!(!e.to_string().contains("zzz"), "{e}");
        // Elsewhere: the link's door replaces the profile's url.
        let local = crate::config::load_from_map(
            Some("here"),
            [("backend", "local"), ("root", "/tmp")],
            &env,
        )
        .unwrap();
        let r = local
            .with_link(&link_arg("https://other:8443/p/q?authz=m").unwrap())
            .unwrap();
        assert_eq!(r.profile.url.as_deref(), Some("https://other:8443"));
        assert_eq!(r.origins["url"], LINK_SOURCE);
        assert_eq!(
            r.remote_arg("https://other:8443/p/q?authz=m").unwrap(),
            "/p/q"
        );
    }
}
