//! `--include` / `--exclude` glob filters.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// Which files take part in a transfer.
///
/// A pattern without `/` matches a name at any depth (`*.h5`); a pattern with `/` matches
/// the path relative to the transfer's root (`run1/**/*.fits`). A file takes part when it
/// matches an include (or there are none) and no exclude. Excludes also prune directories.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Option<(GlobSet, GlobSet)>,
    exclude: Option<(GlobSet, GlobSet)>,
    patterns: Vec<String>,
}

fn build(patterns: &[String]) -> Result<Option<(GlobSet, GlobSet)>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut by_name = GlobSetBuilder::new();
    let mut by_path = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p.trim_start_matches('/')).map_err(|e| {
            Error::usage(
                format!("bad pattern '{p}': {e}"),
                "use shell globs such as '*.h5' or 'run1/**/*.fits'",
            )
        })?;
        if p.contains('/') {
            by_path.add(glob);
        } else {
            by_name.add(glob);
        }
    }
    let done = |b: GlobSetBuilder| {
        b.build()
            .map_err(|e| Error::usage(format!("bad patterns: {e}"), "check --include/--exclude"))
    };
    Ok(Some((done(by_name)?, done(by_path)?)))
}

fn matches(set: &(GlobSet, GlobSet), rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    set.0.is_match(name) || set.1.is_match(rel)
}

impl Filter {
    /// A filter from `--include` and `--exclude` patterns.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(Self {
            include: build(include)?,
            exclude: build(exclude)?,
            patterns: include.iter().chain(exclude).cloned().collect(),
        })
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Does the file at `rel` (relative to the transfer's root) take part?
    pub fn file(&self, rel: &str) -> bool {
        if self.exclude.as_ref().is_some_and(|x| matches(x, rel)) {
            return false;
        }
        self.include.as_ref().is_none_or(|i| matches(i, rel))
    }

    /// Is the directory at `rel` walked into?
    pub fn dir(&self, rel: &str) -> bool {
        !self.exclude.as_ref().is_some_and(|x| matches(x, rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn names_and_paths() {
        let f = Filter::new(&v(&["*.h5"]), &v(&["*_bad.h5", "tmp"])).unwrap();
        assert!(f.file("a.h5") && f.file("run1/deep/b.h5"));
        assert!(!f.file("c.fits") && !f.file("run1/x_bad.h5"));
        assert!(!f.dir("run1/tmp") && f.dir("run1"));
        let p = Filter::new(&v(&["run1/**/*.fits"]), &[]).unwrap();
        assert!(p.file("run1/a/b.fits") && !p.file("run2/a/b.fits"));
        assert!(Filter::default().file("anything"));
        assert!(Filter::new(&v(&["a[b"]), &[]).is_err());
    }
}
