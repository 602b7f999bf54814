//! What the client learns of a server from its answers ([`ServerNotes`]): its name, whether
//! listings and HEAD carry ETags and checksums, and whether it is dCache (whose namespace
//! refuses an existing target of a `MOVE` with `Overwrite: F` in one operation).
//!
//! Nothing here changes what a request does; it is what `stat -v` and the object_store
//! adapter report, so that they never claim what the server lacks.

use std::sync::Mutex;

use ctadata_core::{Entry, ServerNotes, Support};
use reqwest::header::{HeaderMap, ETAG, SERVER};

/// Counts of what the server's answers carried.
#[derive(Debug, Default)]
struct Seen {
    server: Option<String>,
    listed_files: u64,
    listed_etags: u64,
    listed_sums: u64,
    heads: u64,
    head_etags: u64,
    digest_heads: u64,
    digest_sums: u64,
    /// A listing carried dCache's own properties (tape locality).
    dcache_props: bool,
}

/// What has been learned of one server, shared by the backend's requests.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    seen: Mutex<Seen>,
}

impl Learned {
    fn with(&self, f: impl FnOnce(&mut Seen)) {
        let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
    }

    /// Any answer: its `Server` header (the first one seen is kept).
    pub(crate) fn answer(&self, headers: &HeaderMap) {
        if let Some(s) = headers.get(SERVER).and_then(|v| v.to_str().ok()) {
            let s = s.trim();
            if !s.is_empty() {
                self.with(|g| {
                    g.server.get_or_insert_with(|| s.to_string());
                });
            }
        }
    }

    /// An entry as a listing (PROPFIND) gave it, before any HEAD filled it in.
    pub(crate) fn listed(&self, e: &Entry) {
        self.with(|g| {
            if e.locality.is_some() {
                g.dcache_props = true;
            }
            if e.is_file() {
                g.listed_files += 1;
                g.listed_etags += u64::from(e.etag.is_some());
                g.listed_sums += u64::from(!e.checksums.is_empty());
            }
        });
    }

    /// A successful HEAD of a file (asked without `Want-Digest`).
    pub(crate) fn head(&self, headers: &HeaderMap) {
        self.with(|g| {
            g.heads += 1;
            g.head_etags += u64::from(headers.contains_key(ETAG));
        });
    }

    /// A successful HEAD with `Want-Digest`: whether it carried a checksum asked for.
    pub(crate) fn digest_head(&self, had_sum: bool) {
        self.with(|g| {
            g.digest_heads += 1;
            g.digest_sums += u64::from(had_sum);
        });
    }

    /// The notes so far.
    pub(crate) fn notes(&self) -> ServerNotes {
        let g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let named = |what: &str| {
            g.server
                .as_deref()
                .is_some_and(|s| s.to_ascii_lowercase().contains(what))
        };
        ServerNotes {
            server: g.server.clone(),
            etags_in_listings: Support::from_counts(g.listed_etags, g.listed_files),
            etags_on_head: Support::from_counts(g.head_etags, g.heads),
            checksums_in_listings: Support::from_counts(g.listed_sums, g.listed_files),
            checksums_on_head: Support::from_counts(g.digest_sums, g.digest_heads),
            // Only dCache is known to refuse an existing MOVE target in one namespace
            // operation; XRootD (5.5.3) ignores `Overwrite: F`; others may check, then
            // rename, or not check at all.
            atomic_create: if g.dcache_props || named("dcache") {
                Support::Yes
            } else if named("xrootd") {
                Support::No
            } else {
                Support::Unknown
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctadata_core::{EntryKind, Locality, RemotePath};

    fn file(etag: bool, locality: bool) -> Entry {
        let mut e = Entry::new(RemotePath::parse("/d/f").unwrap(), EntryKind::File);
        e.etag = etag.then(|| "\"x\"".to_string());
        e.locality = locality.then_some(Locality::Online);
        e
    }

    #[test]
    fn notes_follow_what_was_seen() {
        let l = Learned::default();
        assert_eq!(l.notes().etags_in_listings, Support::Unknown);
        assert_eq!(l.notes().atomic_create, Support::Unknown);
        l.listed(&file(false, false));
        let n = l.notes();
        assert_eq!(n.etags_in_listings, Support::No);
        assert_eq!(n.checksums_in_listings, Support::No);
        l.listed(&file(true, false));
        assert_eq!(l.notes().etags_in_listings, Support::Partly);
        l.listed(&file(true, true));
        assert_eq!(l.notes().atomic_create, Support::Yes);
        let mut h = HeaderMap::new();
        h.insert(SERVER, "XrootD/v5.5.3".parse().unwrap());
        l.answer(&h);
        l.head(&h);
        l.digest_head(true);
        let n = l.notes();
        assert_eq!(n.server.as_deref(), Some("XrootD/v5.5.3"));
        // The dCache properties seen above win over the name (one server per backend).
        assert_eq!(n.atomic_create, Support::Yes);
        let x = Learned::default();
        x.answer(&h);
        assert_eq!(x.notes().atomic_create, Support::No);
        assert_eq!(n.etags_on_head, Support::No);
        assert_eq!(n.checksums_on_head, Support::Yes);
    }
}
