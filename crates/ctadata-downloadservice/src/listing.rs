//! The JSON answer of `list/<path>`: one object per PROPFIND response of the storage.
//!
//! `href` is the path from the storage root, still percent-encoded, directories ending in
//! `/` (the root's own entry is `""`); `size` (files) and `mtime` come as strings and may be
//! missing; `url` is unreliable and ignored.

use std::time::SystemTime;

use ctadata_core::RemotePath;
use percent_encoding::percent_decode_str;

/// One object of a `list` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem {
    /// The href as sent.
    pub href: String,
    /// The decoded path, or `None` when the href is not a usable path.
    pub path: Option<RemotePath>,
    /// A directory (`type` is `directory`, or the href ends in `/`, or it is the root).
    pub is_dir: bool,
    /// `size`, when present and a whole number.
    pub size: Option<u64>,
    /// `mtime`, when present and an HTTP date.
    pub mtime: Option<SystemTime>,
}

/// Why a `list` answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAListing(pub String);

/// The percent-decoded path of an href (`None` when it is not valid UTF-8 or not a path).
pub fn href_path(href: &str) -> Option<RemotePath> {
    let decoded = percent_decode_str(href.trim()).decode_utf8().ok()?;
    RemotePath::parse(&decoded).ok()
}

fn text_or_number(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a whole `list` answer.
pub fn parse_list(body: &[u8]) -> Result<Vec<ListItem>, NotAListing> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        let start: String = String::from_utf8_lossy(&body[..body.len().min(60)])
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        NotAListing(format!("it is not JSON ({e}); it starts with '{start}'"))
    })?;
    let serde_json::Value::Array(items) = v else {
        return Err(NotAListing(format!(
            "it is JSON but not a list of entries: {}",
            v.to_string().chars().take(80).collect::<String>()
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let serde_json::Value::Object(o) = item else {
            return Err(NotAListing(format!(
                "an element is not an object: {}",
                item.to_string().chars().take(80).collect::<String>()
            )));
        };
        let Some(href) = o.get("href").and_then(|h| h.as_str()).map(str::to_string) else {
            tracing::warn!("ignoring a list entry without href: {:?}", o);
            continue;
        };
        let path = href_path(&href);
        let is_dir = match o.get("type").and_then(|t| t.as_str()) {
            Some("directory") => true,
            // The root's own entry says "file" for the href "".
            _ => href.ends_with('/') || href.trim().is_empty(),
        };
        let size = text_or_number(o.get("size")).and_then(|s| match s.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                tracing::debug!(href = %href, size = %s, "unreadable size");
                None
            }
        });
        let mtime = text_or_number(o.get("mtime")).and_then(|s| httpdate::parse_http_date(&s).ok());
        out.push(ListItem {
            href,
            path,
            is_dir,
            size: if is_dir { None } else { size },
            mtime,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_answer() {
        let body = br#"[
          {"href": "lst/DL1/", "type": "directory", "mtime": "Thu, 14 Nov 2024 10:00:00 GMT", "url": "x"},
          {"href": "lst/DL1/run%201%2Bx.h5", "type": "file", "size": "1234", "mtime": "Thu, 14 Nov 2024 10:00:00 GMT", "url": "https://h/lst/DL1/lst/DL1/run 1+x.h5"},
          {"href": "lst/DL1/%CE%B5/", "type": "directory"},
          {"href": "lst/DL1/nosize", "type": "file"},
          {"href": "lst/DL1/badsize", "type": "file", "size": "many"}
        ]"#;
        let v = parse_list(body).unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(v[0].path, Some(RemotePath::parse("lst/DL1").unwrap()));
        assert!(v[0].is_dir);
        assert_eq!(
            v[1].path,
            Some(RemotePath::parse("lst/DL1/run 1+x.h5").unwrap())
        );
        assert_eq!(v[1].size, Some(1234));
        assert!(v[1].mtime.is_some());
        assert_eq!(v[2].path, Some(RemotePath::parse("lst/DL1/ε").unwrap()));
        assert_eq!((v[3].size, v[3].mtime), (None, None));
        assert_eq!(v[4].size, None);
    }

    #[test]
    fn the_root_entry_is_a_directory() {
        let v =
            parse_list(br#"[{"href": "", "type": "file"}, {"href": "lst/", "type": "directory"}]"#)
                .unwrap();
        assert!(v[0].is_dir);
        assert_eq!(v[0].path, Some(RemotePath::root()));
    }

    #[test]
    fn not_a_listing() {
        let e = parse_list(b"<html>login</html>").unwrap_err();
        assert!(e.0.contains("not JSON") && e.0.contains("<html>"), "{e:?}");
        let e = parse_list(br#"{"message": "x"}"#).unwrap_err();
        assert!(e.0.contains("not a list"), "{e:?}");
        assert_eq!(
            href_path("lst/%2E%2E/x"),
            None,
            "a climbing href is not a path"
        );
    }
}
