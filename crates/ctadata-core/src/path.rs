//! Remote paths: normalised, relative to the storage root, never escaping it.

use std::fmt;

use crate::error::{Error, Result};

/// A normalised path on the storage, relative to the door's (or service's) root.
///
/// `"/lst/DL1/x.h5"`, `"lst/DL1/x.h5"` and `"lst/DL1/x.h5/"` are the same path, as in the
/// old `ctadata` client. `..`, `.` inside a path, empty segments (`a//b`), NUL and
/// control characters are refused with an error that names the path, so a path can never
/// climb above the root whatever the user or a server says.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RemotePath {
    inner: String,
}

impl RemotePath {
    /// The storage root.
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses and normalises a user- or server-supplied path.
    pub fn parse(raw: &str) -> Result<Self> {
        let trimmed = raw.trim_start_matches('/');
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() || trimmed == "." {
            return Ok(Self::root());
        }
        let bad = |why: &str| Error::InvalidPath {
            path: raw.to_string(),
            reason: why.to_string(),
        };
        for seg in trimmed.split('/') {
            match seg {
                "" => return Err(bad("it has an empty segment ('//')")),
                "." => return Err(bad("it has a '.' segment")),
                ".." => return Err(bad("'..' is not allowed: paths start at the storage root")),
                s if s.chars().any(|c| c == '\0' || c.is_control()) => {
                    return Err(bad("it contains a control character"))
                }
                _ => {}
            }
        }
        Ok(Self {
            inner: trimmed.to_string(),
        })
    }

    /// True for the storage root.
    pub fn is_root(&self) -> bool {
        self.inner.is_empty()
    }

    /// The path without a leading `/` (`""` for the root).
    pub fn as_str(&self) -> &str {
        &self.inner
    }

    /// The last segment (`""` for the root).
    pub fn name(&self) -> &str {
        self.inner.rsplit('/').next().unwrap_or("")
    }

    /// The parent directory, or `None` for the root.
    pub fn parent(&self) -> Option<RemotePath> {
        if self.is_root() {
            return None;
        }
        Some(match self.inner.rfind('/') {
            Some(i) => Self {
                inner: self.inner[..i].to_string(),
            },
            None => Self::root(),
        })
    }

    /// Appends one segment or a relative sub-path, with the same checks as [`RemotePath::parse`].
    pub fn join(&self, rel: &str) -> Result<RemotePath> {
        let rel_path = RemotePath::parse(rel)?;
        if rel_path.is_root() {
            return Ok(self.clone());
        }
        if self.is_root() {
            return Ok(rel_path);
        }
        Ok(Self {
            inner: format!("{}/{}", self.inner, rel_path.inner),
        })
    }

    /// The segments from the root down.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.inner.split('/').filter(|s| !s.is_empty())
    }

    /// Every ancestor from the first level down to the parent (not the root, not self).
    pub fn ancestors(&self) -> Vec<RemotePath> {
        let mut out = Vec::new();
        let mut cur = self.parent();
        while let Some(p) = cur {
            if p.is_root() {
                break;
            }
            cur = p.parent();
            out.push(p);
        }
        out.reverse();
        out
    }

    /// The part of `self` below `base`, if `self` is `base` or lies under it.
    pub fn strip_prefix(&self, base: &RemotePath) -> Option<&str> {
        if base.is_root() {
            return Some(&self.inner);
        }
        if self.inner == base.inner {
            return Some("");
        }
        self.inner
            .strip_prefix(base.inner.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
    }

    /// True when `self` is `base` or lies below it.
    pub fn starts_with(&self, base: &RemotePath) -> bool {
        self.strip_prefix(base).is_some()
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.inner)
    }
}

impl fmt::Debug for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemotePath({:?})", self.to_string())
    }
}

impl std::str::FromStr for RemotePath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl serde::Serialize for RemotePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_and_trailing_slashes_are_optional() {
        let a = RemotePath::parse("/lst/DL1/x.h5").unwrap();
        let b = RemotePath::parse("lst/DL1/x.h5").unwrap();
        let c = RemotePath::parse("lst/DL1/x.h5/").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.as_str(), "lst/DL1/x.h5");
        assert_eq!(a.to_string(), "/lst/DL1/x.h5");
    }

    #[test]
    fn root_forms() {
        for r in ["", "/", ".", "//"] {
            // "//" trims to "" after the leading slashes go
            assert!(RemotePath::parse(r).unwrap().is_root(), "{r:?}");
        }
        assert_eq!(RemotePath::root().to_string(), "/");
        assert_eq!(RemotePath::root().parent(), None);
    }

    #[test]
    fn dotdot_and_empty_segments_are_refused_with_the_path_named() {
        for bad in [
            "a/../b", "..", "/../etc", "a//b", "a/./b", "a/b\0c", "a/\nb",
        ] {
            let err = RemotePath::parse(bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&bad.escape_debug().to_string()), "{msg}");
            assert!(matches!(err, Error::InvalidPath { .. }));
        }
    }

    #[test]
    fn names_parents_joins() {
        let p = RemotePath::parse("lst/DL1/20241114/x.h5").unwrap();
        assert_eq!(p.name(), "x.h5");
        assert_eq!(p.parent().unwrap().as_str(), "lst/DL1/20241114");
        assert_eq!(
            p.ancestors()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect::<Vec<_>>(),
            vec!["lst", "lst/DL1", "lst/DL1/20241114"]
        );
        let d = RemotePath::parse("lst").unwrap();
        assert_eq!(d.join("a b/c+d").unwrap().as_str(), "lst/a b/c+d");
        assert!(d.join("../x").is_err());
        assert_eq!(RemotePath::root().join("x").unwrap().as_str(), "x");
        assert_eq!(p.strip_prefix(&d), Some("DL1/20241114/x.h5"));
        assert_eq!(
            RemotePath::parse("lstx").unwrap().strip_prefix(&d),
            None,
            "a sibling with a common prefix is not below"
        );
        assert!(p.starts_with(&RemotePath::root()));
    }

    #[test]
    fn unicode_and_spaces_are_kept() {
        let p = RemotePath::parse("/données/run 1/ε.fits").unwrap();
        assert_eq!(p.name(), "ε.fits");
    }
}
