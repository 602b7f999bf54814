//! Between remote paths and URLs: encoding on the way out, decoding hrefs on the way in.

use ctadata_core::{Error, RemotePath, Result};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::Url;

/// Characters escaped in one path segment (shared by every backend that builds URLs).
pub const SEGMENT: &AsciiSet = &CONTROLS
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
    .add(b'/')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// The server's base URL and its path, which hrefs are relative to.
#[derive(Debug, Clone)]
pub struct Base {
    url: Url,
    /// The base path, decoded, with a trailing '/'.
    prefix: String,
}

impl Base {
    /// A base from a configured URL (a trailing '/' is added when missing).
    pub fn new(url: &str) -> Result<Self> {
        let mut s = url.trim().to_string();
        if !s.ends_with('/') {
            s.push('/');
        }
        let url = Url::parse(&s).map_err(|e| {
            Error::config(
                format!("invalid url '{url}': {e}"),
                "give a URL like https://dcache.cta.cscs.ch:2880",
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::config(
                format!("url '{url}' is not http(s)"),
                "give an https:// URL",
            ));
        }
        if url.query().is_some() || url.username() != "" || url.password().is_some() {
            return Err(Error::config(
                "the url must not carry a query or user information (secrets do not belong in URLs)".to_string(),
                "put credentials in a token file or the login store, not in the URL",
            ));
        }
        let prefix = percent_decode_str(url.path())
            .decode_utf8_lossy()
            .to_string();
        Ok(Self { url, prefix })
    }

    /// The base URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL of a path; `collection` adds a trailing '/'.
    pub fn url_for(&self, p: &RemotePath, collection: bool) -> Url {
        let mut s = self.url.as_str().to_string();
        let segs: Vec<String> = p
            .segments()
            .map(|seg| utf8_percent_encode(seg, SEGMENT).to_string())
            .collect();
        s.push_str(&segs.join("/"));
        if collection && !p.is_root() {
            s.push('/');
        }
        Url::parse(&s).unwrap_or_else(|_| self.url.clone())
    }

    /// The remote path an href names, or `None` when it lies outside the base (or is not a
    /// valid path). `request` resolves relative hrefs.
    pub fn href_to_path(&self, href: &str, request: &Url) -> Option<RemotePath> {
        let href = href.trim();
        // Full URLs count by their path alone: a door behind an alias may name itself
        // differently from the configured URL.
        let url = match Url::parse(href) {
            Ok(u) => u,
            Err(_) => request.join(href).ok()?,
        };
        self.raw_path_to_remote(url.path())
    }

    /// The remote path of a URL path on this server (absolute, still percent-encoded as
    /// the server sent it), or `None` when it lies outside the base or is not a valid path.
    pub fn raw_path_to_remote(&self, raw_path: &str) -> Option<RemotePath> {
        // Decoded once: `%252E` stays a literal `%2E`, never `.`.
        let decoded = percent_decode_str(raw_path).decode_utf8().ok()?;
        let rest = decoded.strip_prefix(self.prefix.as_str()).or_else(|| {
            // The base itself without its trailing slash.
            (decoded.as_ref() == self.prefix.trim_end_matches('/')).then_some("")
        })?;
        RemotePath::parse(rest).ok()
    }

    /// True when `url` has the base's scheme, host and port: only there may credentials go.
    pub fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.url.scheme()
            && url.host_str() == self.url.host_str()
            && url.port_or_known_default() == self.url.port_or_known_default()
    }

    /// True when the base is plain http to a host that is not loopback.
    pub fn is_insecure_remote(&self) -> bool {
        self.url.scheme() == "http" && !is_loopback(&self.url)
    }
}

/// True for localhost and loopback addresses.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// A URL for messages: scheme, host, port and path, never the query (dCache puts a
/// single-use secret there).
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(s: &str) -> RemotePath {
        RemotePath::parse(s).unwrap()
    }

    #[test]
    fn encodes_segments() {
        let b = Base::new("https://door:2880").unwrap();
        assert_eq!(
            b.url_for(&rp("a b/c#d/e%f/ε+x"), false).as_str(),
            "https://door:2880/a%20b/c%23d/e%25f/%CE%B5+x"
        );
        assert_eq!(
            b.url_for(&rp("dir"), true).as_str(),
            "https://door:2880/dir/"
        );
        assert_eq!(
            b.url_for(&RemotePath::root(), true).as_str(),
            "https://door:2880/"
        );
        let p = Base::new("https://hub/services/downloadservice/webdav").unwrap();
        assert_eq!(
            p.url_for(&rp("lst/x"), false).as_str(),
            "https://hub/services/downloadservice/webdav/lst/x"
        );
    }

    #[test]
    fn decodes_hrefs_of_every_shape() {
        let b = Base::new("https://door:2880/pnfs/").unwrap();
        let req = b.url_for(&rp("a"), true);
        assert_eq!(b.href_to_path("/pnfs/a/b%20c", &req), Some(rp("a/b c")));
        assert_eq!(
            b.href_to_path("https://door:2880/pnfs/a/%CE%B5/", &req),
            Some(rp("a/ε"))
        );
        assert_eq!(b.href_to_path("/pnfs/", &req), Some(RemotePath::root()));
        assert_eq!(b.href_to_path("/pnfs", &req), Some(RemotePath::root()));
        assert_eq!(b.href_to_path("x", &req), Some(rp("a/x")));
        // outside the base, other hosts, climbing
        assert_eq!(b.href_to_path("/etc/x", &req), None);
        assert_eq!(
            b.href_to_path("https://alias:443/pnfs/a/x", &req),
            Some(rp("a/x"))
        );
        assert_eq!(b.href_to_path("https://alias:443/other/x", &req), None);
        assert_eq!(b.href_to_path("/pnfs/a/%2E%2E/%2E%2E/x", &req), None);
    }

    #[test]
    fn urls_with_secrets_are_refused_and_redacted() {
        assert!(Base::new("https://u:p@door/").is_err());
        assert!(Base::new("https://door/?token=x").is_err());
        let u = Url::parse("https://pool:1234/a?dcache-http-uuid=secret").unwrap();
        assert_eq!(redact(&u), "https://pool:1234/a");
    }

    #[test]
    fn origins() {
        let b = Base::new("https://door:2880").unwrap();
        assert!(b.same_origin(&Url::parse("https://door:2880/x").unwrap()));
        assert!(!b.same_origin(&Url::parse("https://pool:2880/x").unwrap()));
        assert!(!b.same_origin(&Url::parse("http://door:2880/x").unwrap()));
        assert!(!b.same_origin(&Url::parse("https://door:2881/x").unwrap()));
        assert!(Base::new("http://example.org")
            .unwrap()
            .is_insecure_remote());
        assert!(!Base::new("http://127.0.0.1:8080")
            .unwrap()
            .is_insecure_remote());
    }
}
