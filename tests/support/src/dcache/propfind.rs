//! PROPFIND request parsing and `207 Multi-Status` rendering in dCache's style.

use super::paths::xml_escape;
use super::Locality;
use std::fmt::Write as _;
use std::time::SystemTime;

pub(crate) const DAV: &str = "DAV:";
pub(crate) const DCACHE_NS: &str = "http://www.dcache.org/2013/webdav";
pub(crate) const SRM_NS: &str = "http://srm.lbl.gov/StorageResourceManager";

/// What the client asked for.
#[derive(Debug, Clone)]
pub(crate) enum PropRequest {
    /// `<allprop/>`, `<propname/>` or an empty body.
    AllProp,
    /// An explicit `<prop>` list of (namespace, local name).
    Props(Vec<(String, String)>),
}

impl PropRequest {
    /// Parses a PROPFIND body; an empty body means `allprop` (RFC 4918 9.1).
    pub(crate) fn parse(body: &[u8]) -> Result<PropRequest, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(PropRequest::AllProp);
        }
        let root = xmltree::Element::parse(body).map_err(|e| format!("bad XML: {e}"))?;
        if root.name != "propfind" || root.namespace.as_deref() != Some(DAV) {
            return Err("the root element is not DAV:propfind".into());
        }
        for child in root.children.iter().filter_map(|n| n.as_element()) {
            if child.namespace.as_deref() != Some(DAV) {
                continue;
            }
            match child.name.as_str() {
                "allprop" | "propname" => return Ok(PropRequest::AllProp),
                "prop" => {
                    let props = child
                        .children
                        .iter()
                        .filter_map(|n| n.as_element())
                        .map(|e| (e.namespace.clone().unwrap_or_default(), e.name.clone()))
                        .collect();
                    return Ok(PropRequest::Props(props));
                }
                _ => {}
            }
        }
        Err("no prop, allprop or propname in propfind".into())
    }

    /// Whether the adler32 of files is needed to answer.
    pub(crate) fn wants_checksums(&self) -> bool {
        match self {
            PropRequest::AllProp => false,
            PropRequest::Props(p) => p.iter().any(|(ns, n)| ns == DCACHE_NS && n == "Checksums"),
        }
    }
}

/// One resource in a multistatus answer.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The href exactly as it goes on the wire (before XML escaping).
    pub(crate) href: String,
    pub(crate) name: String,
    pub(crate) is_dir: bool,
    pub(crate) size: u64,
    pub(crate) mtime: SystemTime,
    pub(crate) etag: String,
    /// adler32 as 8 hex digits, when computed.
    pub(crate) adler32: Option<String>,
    pub(crate) locality: Locality,
}

/// The opening of a multistatus document, with dCache-like prefixes.
pub(crate) fn header() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<d:multistatus xmlns:d=\"{DAV}\" xmlns:ns1=\"{DCACHE_NS}\" xmlns:ns2=\"{SRM_NS}\">\n"
    )
}

/// The end of a multistatus document.
pub(crate) fn footer() -> &'static str {
    "</d:multistatus>\n"
}

fn known_prefix(ns: &str) -> Option<&'static str> {
    match ns {
        DAV => Some("d"),
        DCACHE_NS => Some("ns1"),
        SRM_NS => Some("ns2"),
        _ => None,
    }
}

/// An empty element for a property, declaring its namespace when it has no known prefix.
fn empty_element(ns: &str, name: &str) -> String {
    match known_prefix(ns) {
        Some(p) => format!("<{p}:{name}/>"),
        None if ns.is_empty() => format!("<{name} xmlns=\"\"/>"),
        None => format!("<x:{name} xmlns:x=\"{}\"/>", xml_escape(ns)),
    }
}

/// The value of a property of `e`, or `None` when `e` has no such property (then 404).
fn value(e: &Entry, ns: &str, name: &str, corrupt: bool) -> Option<String> {
    let text = |p: &str, v: &str| Some(format!("<{p}:{name}>{}</{p}:{name}>", xml_escape(v)));
    match (ns, name) {
        (DAV, "getcontentlength") if !e.is_dir => text("d", &e.size.to_string()),
        (DAV, "getlastmodified") => text("d", &httpdate::fmt_http_date(e.mtime)),
        (DAV, "getetag") => text("d", &e.etag),
        (DAV, "displayname") => text("d", &e.name),
        (DAV, "getcontenttype") => text(
            "d",
            if e.is_dir {
                "text/html; charset=utf-8"
            } else {
                "application/octet-stream"
            },
        ),
        (DAV, "resourcetype") => Some(if e.is_dir {
            "<d:resourcetype><d:collection/></d:resourcetype>".to_string()
        } else {
            "<d:resourcetype/>".to_string()
        }),
        (DCACHE_NS, "Checksums") if !e.is_dir => {
            let v = e.adler32.clone().unwrap_or_else(|| "00000001".into());
            let v = if corrupt {
                crate::checksum::corrupt(crate::checksum::DigestAlgo::Adler32, &v)
            } else {
                v
            };
            text("ns1", &format!("adler32={v}"))
        }
        (SRM_NS, "FileLocality") if !e.is_dir => text("ns2", e.locality.as_str()),
        (SRM_NS, "AccessLatency") if !e.is_dir => text(
            "ns2",
            match e.locality {
                Locality::Nearline => "NEARLINE",
                _ => "ONLINE",
            },
        ),
        (SRM_NS, "RetentionPolicy") if !e.is_dir => text(
            "ns2",
            match e.locality {
                Locality::Online => "REPLICA",
                _ => "CUSTODIAL",
            },
        ),
        _ => None,
    }
}

/// The DAV: properties `allprop` returns.
const ALLPROP: [&str; 6] = [
    "getcontentlength",
    "getlastmodified",
    "resourcetype",
    "getetag",
    "displayname",
    "getcontenttype",
];

/// Appends one `<d:response>` for `e`.
pub(crate) fn render(out: &mut String, e: &Entry, req: &PropRequest, corrupt: bool) {
    let mut found = String::new();
    let mut missing = String::new();
    match req {
        PropRequest::AllProp => {
            for name in ALLPROP {
                if let Some(v) = value(e, DAV, name, corrupt) {
                    found.push_str(&v);
                }
            }
            if !e.is_dir {
                // As seen on dCache: with allprop a file gets a second propstat with 404s.
                missing.push_str("<d:quota-available-bytes/><d:quota-used-bytes/>");
            }
        }
        PropRequest::Props(props) => {
            for (ns, name) in props {
                match value(e, ns, name, corrupt) {
                    Some(v) => found.push_str(&v),
                    None => missing.push_str(&empty_element(ns, name)),
                }
            }
        }
    }
    let _ = write!(out, "<d:response><d:href>{}</d:href>", xml_escape(&e.href));
    if !found.is_empty() || missing.is_empty() {
        let _ = write!(
            out,
            "<d:propstat><d:prop>{found}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
        );
    }
    if !missing.is_empty() {
        let _ = write!(
            out,
            "<d:propstat><d:prop>{missing}</d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>"
        );
    }
    out.push_str("</d:response>\n");
}

/// A body that is not well-formed XML (for `malformed_propfind`).
pub(crate) fn malformed(href: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<d:multistatus xmlns:d=\"DAV:\">\n<d:response><d:href>{}</d:href><d:propstat><d:prop><d:getcontentlength>12</d:getcontentl",
        xml_escape(href)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_prop_list() {
        let body = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:X="http://www.dcache.org/2013/webdav"><D:prop><D:getcontentlength/><X:Checksums/><Y:foo xmlns:Y="urn:y"/></D:prop></D:propfind>"#;
        let PropRequest::Props(p) = PropRequest::parse(body).unwrap() else {
            panic!("not props")
        };
        assert_eq!(
            p,
            vec![
                (DAV.to_string(), "getcontentlength".to_string()),
                (DCACHE_NS.to_string(), "Checksums".to_string()),
                ("urn:y".to_string(), "foo".to_string()),
            ]
        );
        assert!(matches!(
            PropRequest::parse(b"").unwrap(),
            PropRequest::AllProp
        ));
        assert!(PropRequest::parse(b"<propfind/>").is_err());
    }
}
