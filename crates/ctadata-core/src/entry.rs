//! What a listing or a stat returns about one file or directory.

use std::time::SystemTime;

use serde::Serialize;

use crate::checksum::Checksum;
use crate::path::RemotePath;

/// File or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory (a WebDAV collection).
    Directory,
}

/// Where a file's data is on a tape-backed storage (dCache's `FileLocality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Locality {
    /// On disk: reads start at once.
    Online,
    /// Only on tape: a read blocks until it is staged.
    Nearline,
    /// On disk and on tape.
    OnlineAndNearline,
    /// Lost or unavailable.
    Unavailable,
}

impl Locality {
    /// Parses dCache's spelling (`ONLINE`, `NEARLINE`, `ONLINE_AND_NEARLINE`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ONLINE" => Some(Self::Online),
            "NEARLINE" => Some(Self::Nearline),
            "ONLINE_AND_NEARLINE" => Some(Self::OnlineAndNearline),
            "UNAVAILABLE" | "LOST" => Some(Self::Unavailable),
            _ => None,
        }
    }

    /// dCache's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Online => "ONLINE",
            Self::Nearline => "NEARLINE",
            Self::OnlineAndNearline => "ONLINE_AND_NEARLINE",
            Self::Unavailable => "UNAVAILABLE",
        }
    }
}

/// One file or directory, as the storage describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The full path from the storage root.
    pub path: RemotePath,
    /// The last segment of the path.
    pub name: String,
    /// File or directory.
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Size in bytes, when known (files).
    pub size: Option<u64>,
    /// Last modification time, when known.
    #[serde(serialize_with = "ser_mtime")]
    pub mtime: Option<SystemTime>,
    /// The server's entity tag, when it gives one (used to detect changes for resume).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Checksums the server knows, normalised to lower-case hex.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<Checksum>,
    /// Tape state, when the storage has tape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<Locality>,
}

impl Entry {
    /// A bare entry of the given kind at `path`; other fields unknown.
    pub fn new(path: RemotePath, kind: EntryKind) -> Self {
        let name = path.name().to_string();
        Self {
            path,
            name,
            kind,
            size: None,
            mtime: None,
            etag: None,
            checksums: Vec::new(),
            locality: None,
        }
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Directory
    }

    /// True for a file.
    pub fn is_file(&self) -> bool {
        self.kind == EntryKind::File
    }
}

fn ser_mtime<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// Formats a time as RFC 3339 in UTC, second precision (`2024-11-14T10:00:00Z`).
pub fn format_rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    dt.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_has_the_documented_keys() {
        let mut e = Entry::new(RemotePath::parse("lst/a.h5").unwrap(), EntryKind::File);
        e.size = Some(42);
        e.mtime = Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_731_578_400));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["path"], "/lst/a.h5");
        assert_eq!(v["name"], "a.h5");
        assert_eq!(v["type"], "file");
        assert_eq!(v["size"], 42);
        assert_eq!(v["mtime"], "2024-11-14T10:00:00Z");
    }

    #[test]
    fn locality_round_trips() {
        for s in ["ONLINE", "NEARLINE", "ONLINE_AND_NEARLINE"] {
            assert_eq!(Locality::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(Locality::parse("online"), Some(Locality::Online));
        assert_eq!(Locality::parse("whatever"), None);
    }
}
