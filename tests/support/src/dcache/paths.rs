//! Request paths of the dCache double: decoding, normalising, encoding hrefs.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::path::{Path, PathBuf};

/// Characters left raw in a path segment of an href (RFC 3986 `pchar` minus the unreserved
/// ones, which are never encoded): like dCache, `+`, `&`, `(` ... stay as they are, a space
/// becomes `%20`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// A normalised namespace path: no empty, `.` or `..` segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct DPath {
    pub(crate) segs: Vec<String>,
}

impl DPath {
    /// Parses a percent-encoded request path (no query). `..` is refused, not resolved.
    pub(crate) fn from_request(raw: &str) -> Result<DPath, &'static str> {
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| "path is not UTF-8")?;
        Self::from_decoded(&decoded)
    }

    /// Parses a percent-encoded request path as XRootD 5.5.3 does: decoded, then cut at
    /// the first `?` (so `/a/r%3Fx` is `/a/r`).
    pub(crate) fn from_request_cut(raw: &str) -> Result<DPath, &'static str> {
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| "path is not UTF-8")?;
        Self::from_decoded(decoded.split('?').next().unwrap_or(""))
    }

    /// Parses an already decoded path such as `a/b/c` or `/a/b/`.
    pub(crate) fn from_decoded(path: &str) -> Result<DPath, &'static str> {
        let mut segs = Vec::new();
        for seg in path.split('/') {
            match seg {
                "" | "." => {}
                ".." => return Err("'..' in path"),
                s if s.contains('\0') => return Err("NUL in path"),
                s => segs.push(s.to_string()),
            }
        }
        Ok(DPath { segs })
    }

    pub(crate) fn is_root(&self) -> bool {
        self.segs.is_empty()
    }

    /// `a/b/c` (no leading slash); empty for the root.
    pub(crate) fn rel(&self) -> String {
        self.segs.join("/")
    }

    /// `/a/b/c`; `/` for the root.
    pub(crate) fn abs(&self) -> String {
        format!("/{}", self.rel())
    }

    pub(crate) fn fs(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for s in &self.segs {
            p.push(s);
        }
        p
    }

    pub(crate) fn parent(&self) -> Option<DPath> {
        if self.segs.is_empty() {
            None
        } else {
            Some(DPath {
                segs: self.segs[..self.segs.len() - 1].to_vec(),
            })
        }
    }

    pub(crate) fn child(&self, name: &str) -> DPath {
        let mut segs = self.segs.clone();
        segs.push(name.to_string());
        DPath { segs }
    }

    pub(crate) fn name(&self) -> &str {
        self.segs.last().map(String::as_str).unwrap_or("")
    }

    pub(crate) fn starts_with(&self, prefix: &DPath) -> bool {
        self.segs.len() >= prefix.segs.len() && self.segs[..prefix.segs.len()] == prefix.segs[..]
    }

    /// The percent-encoded absolute path, with a trailing `/` for directories.
    pub(crate) fn href(&self, is_dir: bool) -> String {
        let mut out = String::from("/");
        for (i, s) in self.segs.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.extend(utf8_percent_encode(s, SEGMENT));
        }
        if is_dir && !self.segs.is_empty() {
            out.push('/');
        }
        out
    }
}

/// Escapes text for XML content and attribute values.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
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
    out
}

/// Percent-encodes a whole query parameter value.
pub(crate) fn encode_query_value(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_encode() {
        let p = DPath::from_request("/cta/a%20b/c+d&e").unwrap();
        assert_eq!(p.segs, vec!["cta", "a b", "c+d&e"]);
        assert_eq!(p.href(false), "/cta/a%20b/c+d&e");
        assert_eq!(p.href(true), "/cta/a%20b/c+d&e/");
        assert_eq!(DPath::default().href(true), "/");
        assert!(DPath::from_request("/a/../b").is_err());
        assert!(DPath::from_request("/a/%2e%2e/b").is_err());
        assert_eq!(DPath::from_request("//a/./b/").unwrap().rel(), "a/b");
        assert_eq!(DPath::from_request("/a/r%3Fx").unwrap().rel(), "a/r?x");
        assert_eq!(DPath::from_request_cut("/a/r%3Fx/y").unwrap().rel(), "a/r");
        let pct = DPath::from_decoded("100%/é").unwrap();
        assert_eq!(pct.href(false), "/100%25/%C3%A9");
    }
}
