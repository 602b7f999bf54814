//! PROPFIND: the request body cta-data sends and a streaming parser of `207 Multi-Status`.
//!
//! Namespaces are matched by URI, never by prefix; of several `propstat` blocks only the
//! `200` one counts; each `<response>` is handed to the caller as soon as it ends, so a
//! listing of 100,000 entries never sits in memory as XML.

use std::time::SystemTime;

use ctadata_core::{Checksum, Locality};
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;
use tokio::io::AsyncBufRead;

use crate::digest::parse_digest;

const DAV: &[u8] = b"DAV:";
const DCACHE: &[u8] = b"http://www.dcache.org/2013/webdav";
const SRM: &[u8] = b"http://srm.lbl.gov/StorageResourceManager";

/// The PROPFIND body: exactly the properties cta-data uses (never `allprop`).
pub const PROPFIND_BODY: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<d:propfind xmlns:d="DAV:" xmlns:dc="http://www.dcache.org/2013/webdav" xmlns:srm="http://srm.lbl.gov/StorageResourceManager">"#,
    r#"<d:prop><d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/><dc:Checksums/><srm:FileLocality/></d:prop>"#,
    r#"</d:propfind>"#
);

/// One `<response>` of a multistatus answer, with the properties of its `200` propstat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawResponse {
    /// The href as sent (still percent-encoded).
    pub href: String,
    /// `resourcetype` holds `collection`.
    pub is_collection: bool,
    /// `getcontentlength`.
    pub size: Option<u64>,
    /// `getlastmodified`.
    pub mtime: Option<SystemTime>,
    /// `getetag`.
    pub etag: Option<String>,
    /// dCache's `Checksums`.
    pub checksums: Vec<Checksum>,
    /// SRM `FileLocality`.
    pub locality: Option<Locality>,
    /// A response-level status that is not 200 (the entry is then unusable).
    pub bad_status: bool,
}

/// Why a multistatus body could not be read.
#[derive(Debug)]
pub struct ParseError(pub String);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    None,
    Href,
    Status,
    ResponseStatus,
    Length,
    Modified,
    Etag,
    Checksums,
    Locality,
}

#[derive(Default)]
struct Props {
    is_collection: bool,
    size: Option<u64>,
    mtime: Option<SystemTime>,
    etag: Option<String>,
    checksums: Vec<Checksum>,
    locality: Option<Locality>,
}

fn ns_is(ns: &ResolveResult<'_>, uri: &[u8]) -> bool {
    matches!(ns, ResolveResult::Bound(Namespace(n)) if *n == uri)
}

fn status_ok(s: &str) -> bool {
    // "HTTP/1.1 200 OK"
    s.split_whitespace()
        .nth(1)
        .is_some_and(|code| code == "200")
}

/// Resolves the XML entities quick-xml reports separately.
fn resolve_entity(name: &str) -> Option<String> {
    Some(match name {
        "amp" => "&".into(),
        "lt" => "<".into(),
        "gt" => ">".into(),
        "quot" => "\"".into(),
        "apos" => "'".into(),
        n if n.starts_with("#x") || n.starts_with("#X") => {
            char::from_u32(u32::from_str_radix(&n[2..], 16).ok()?)?.to_string()
        }
        n if n.starts_with('#') => char::from_u32(n[1..].parse().ok()?)?.to_string(),
        _ => return None,
    })
}

/// Reads a multistatus body, calling `on_response` for each `<response>` in order.
pub async fn parse_multistatus<R, F>(reader: R, mut on_response: F) -> Result<usize, ParseError>
where
    R: AsyncBufRead + Unpin,
    F: FnMut(RawResponse),
{
    let mut xml = NsReader::from_reader(reader);
    xml.config_mut().trim_text(false);
    let mut buf = Vec::with_capacity(4096);
    let mut count = 0usize;
    let mut saw_multistatus = false;

    let mut in_response = false;
    let mut in_propstat = false;
    let mut in_resourcetype = false;
    let mut field = Field::None;
    let mut text = String::new();
    let mut href = String::new();
    let mut resp_bad = false;
    let mut good = Props::default();
    let mut cur = Props::default();
    let mut cur_status = String::new();

    loop {
        buf.clear();
        let (ns, ev) = match xml.read_resolved_event_into_async(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                let at = xml.buffer_position();
                return Err(ParseError(format!("malformed XML at byte {at}: {e}")));
            }
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = e.local_name();
                let local = local.as_ref();
                if ns_is(&ns, DAV) {
                    match local {
                        b"multistatus" => saw_multistatus = true,
                        b"response" => {
                            in_response = true;
                            href.clear();
                            resp_bad = false;
                            good = Props::default();
                        }
                        b"href" if in_response && !in_propstat => field = Field::Href,
                        b"propstat" if in_response => {
                            in_propstat = true;
                            cur = Props::default();
                            cur_status.clear();
                        }
                        b"status" if in_propstat => field = Field::Status,
                        b"status" if in_response => field = Field::ResponseStatus,
                        b"resourcetype" if in_propstat => in_resourcetype = !empty,
                        b"collection" if in_resourcetype => cur.is_collection = true,
                        b"getcontentlength" if in_propstat => field = Field::Length,
                        b"getlastmodified" if in_propstat => field = Field::Modified,
                        b"getetag" if in_propstat => field = Field::Etag,
                        _ => {}
                    }
                } else if ns_is(&ns, DCACHE) && local == b"Checksums" && in_propstat {
                    field = Field::Checksums;
                } else if ns_is(&ns, SRM) && local == b"FileLocality" && in_propstat {
                    field = Field::Locality;
                }
                if empty {
                    // An empty element ends at once: nothing to collect.
                    if field != Field::None {
                        finish_field(
                            field,
                            "",
                            &mut href,
                            &mut cur,
                            &mut cur_status,
                            &mut resp_bad,
                        );
                        field = Field::None;
                    }
                } else {
                    text.clear();
                }
            }
            Event::Text(t) if field != Field::None => {
                text.push_str(
                    &t.decode()
                        .map_err(|e| ParseError(format!("bad text: {e}")))?,
                );
            }
            Event::CData(t) if field != Field::None => {
                text.push_str(&String::from_utf8_lossy(&t));
            }
            Event::GeneralRef(r) if field != Field::None => {
                let name = r
                    .decode()
                    .map_err(|e| ParseError(format!("bad entity: {e}")))?;
                match resolve_entity(&name) {
                    Some(s) => text.push_str(&s),
                    None => return Err(ParseError(format!("unknown entity &{name};"))),
                }
            }
            Event::End(ref e) => {
                let local = e.local_name();
                let local = local.as_ref();
                if field != Field::None {
                    finish_field(
                        field,
                        &text,
                        &mut href,
                        &mut cur,
                        &mut cur_status,
                        &mut resp_bad,
                    );
                    field = Field::None;
                    text.clear();
                }
                if ns_is(&ns, DAV) {
                    match local {
                        b"resourcetype" => in_resourcetype = false,
                        b"propstat" if in_propstat => {
                            in_propstat = false;
                            // A propstat without status is taken as 200 (lenient servers).
                            if cur_status.is_empty() || status_ok(&cur_status) {
                                merge(&mut good, std::mem::take(&mut cur));
                            }
                        }
                        b"response" if in_response => {
                            in_response = false;
                            let g = std::mem::take(&mut good);
                            count += 1;
                            on_response(RawResponse {
                                href: std::mem::take(&mut href),
                                is_collection: g.is_collection,
                                size: g.size,
                                mtime: g.mtime,
                                etag: g.etag,
                                checksums: g.checksums,
                                locality: g.locality,
                                bad_status: resp_bad,
                            });
                        }
                        _ => {}
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_multistatus {
        return Err(ParseError(
            "the answer is not a WebDAV multistatus document".into(),
        ));
    }
    if in_response {
        return Err(ParseError(
            "the answer ended in the middle of a <response>".into(),
        ));
    }
    Ok(count)
}

fn finish_field(
    field: Field,
    text: &str,
    href: &mut String,
    cur: &mut Props,
    status: &mut String,
    resp_bad: &mut bool,
) {
    let t = text.trim();
    match field {
        Field::Href => *href = t.to_string(),
        Field::Status => *status = t.to_string(),
        Field::ResponseStatus => *resp_bad = !status_ok(t),
        Field::Length => cur.size = t.parse().ok(),
        Field::Modified => cur.mtime = httpdate::parse_http_date(t).ok(),
        Field::Etag => cur.etag = (!t.is_empty()).then(|| t.to_string()),
        Field::Checksums => cur.checksums = parse_digest(t),
        Field::Locality => cur.locality = Locality::parse(t),
        Field::None => {}
    }
}

fn merge(into: &mut Props, from: Props) {
    into.is_collection |= from.is_collection;
    if from.size.is_some() {
        into.size = from.size;
    }
    if from.mtime.is_some() {
        into.mtime = from.mtime;
    }
    if from.etag.is_some() {
        into.etag = from.etag;
    }
    if !from.checksums.is_empty() {
        into.checksums = from.checksums;
    }
    if from.locality.is_some() {
        into.locality = from.locality;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(xml: &str) -> Result<Vec<RawResponse>, ParseError> {
        let mut v = Vec::new();
        parse_multistatus(tokio::io::BufReader::new(xml.as_bytes()), |r| v.push(r)).await?;
        Ok(v)
    }

    #[tokio::test]
    async fn dcache_style_answer() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<d:multistatus xmlns:d="DAV:" xmlns:ns1="http://www.dcache.org/2013/webdav" xmlns:ns2="http://srm.lbl.gov/StorageResourceManager">
<d:response><d:href>/lst/DL1/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype>
<d:getlastmodified>Thu, 14 Nov 2024 10:00:00 GMT</d:getlastmodified></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/lst/DL1/run%201&amp;2.h5</d:href>
<d:propstat><d:prop><d:resourcetype/><d:getcontentlength>1234</d:getcontentlength><d:getetag>"0000A"</d:getetag>
<ns1:Checksums>adler32=0a1b2c3d</ns1:Checksums><ns2:FileLocality>NEARLINE</ns2:FileLocality></d:prop>
<d:status>HTTP/1.1 200 OK</d:status></d:propstat>
<d:propstat><d:prop><d:getcontentlength>999</d:getcontentlength></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
</d:response></d:multistatus>"#;
        let v = parse(xml).await.unwrap();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_collection);
        assert!(v[0].mtime.is_some());
        assert_eq!(v[1].href, "/lst/DL1/run%201&2.h5");
        assert!(!v[1].is_collection);
        assert_eq!(v[1].size, Some(1234), "only the 200 propstat counts");
        assert_eq!(v[1].etag.as_deref(), Some("\"0000A\""));
        assert_eq!(v[1].checksums[0].value, "0a1b2c3d");
        assert_eq!(v[1].locality, Some(Locality::Nearline));
    }

    #[tokio::test]
    async fn namespaces_by_uri_not_prefix() {
        // Default namespace and odd prefixes (as nginx and Apache write them).
        let xml = r#"<multistatus xmlns="DAV:"><response><href>/a/</href><propstat><prop>
<resourcetype><collection/></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat></response>
<response><href>/a/x</href><propstat><prop><lp1:getcontentlength xmlns:lp1="DAV:">7</lp1:getcontentlength>
<fake:getcontentlength xmlns:fake="urn:other">99</fake:getcontentlength></prop>
<status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;
        let v = parse(xml).await.unwrap();
        assert_eq!(v[1].size, Some(7));
    }

    #[tokio::test]
    async fn malformed_and_truncated_answers_are_errors() {
        assert!(
            parse("<d:multistatus xmlns:d=\"DAV:\"><d:response><d:href>/x</d:hr")
                .await
                .is_err()
        );
        assert!(parse("<html><body>login</body></html>").await.is_err());
        assert!(parse(
            "<d:multistatus xmlns:d=\"DAV:\"><d:response><d:href>/x</d:href></d:multistatus>"
        )
        .await
        .is_err());
    }

    #[tokio::test]
    async fn a_huge_listing_streams() {
        let mut xml = String::from("<d:multistatus xmlns:d=\"DAV:\">");
        for i in 0..20_000 {
            xml.push_str(&format!("<d:response><d:href>/d/f{i}</d:href><d:propstat><d:prop><d:getcontentlength>{i}</d:getcontentlength></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"));
        }
        xml.push_str("</d:multistatus>");
        let mut n = 0u64;
        let mut sum = 0u64;
        parse_multistatus(tokio::io::BufReader::new(xml.as_bytes()), |r| {
            n += 1;
            sum += r.size.unwrap();
        })
        .await
        .unwrap();
        assert_eq!(n, 20_000);
        assert_eq!(sum, (0..20_000u64).sum::<u64>());
    }
}
