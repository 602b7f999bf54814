//! `cp SRC DST`: copies done by the servers (WebDAV `COPY` on one door, HTTP third-party
//! copy between doors), streaming through the client only when the servers refuse.
//!
//! An end is a path of the current profile, `PROFILE:PATH` (only when PROFILE is a known
//! profile name, so a path holding `:` stays a path), or a door's URL (the profile that
//! has that door, else the current profile's credential on that door). Between two doors
//! the order is pull (`COPY` to the destination with `Source:`), push (`COPY` to the
//! source with `Destination:`), then a read from the source written to the destination;
//! a refusal (403, 405, 501 before any marker) moves on to the next mode, a failure does
//! not. Checksums (adler32) of both sides are compared at the end; a destination left
//! by a failed or mismatched copy is removed.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctadata::config::{self, BackendKind, EnvSnapshot, LoadOptions};
use ctadata::tpc::{CopyMode, TpcOutcome, TpcRequest};
use ctadata::transfer::{human_bytes, Progress};
use ctadata::{
    unsupported, Checksum, Entry, Error, GetOptions, OpenOptions, PutOptions, RemotePath,
    ResolvedProfile, Result, RetryPolicy, ServerCopyOps, StorageBackend, Upload,
};
use futures::{StreamExt, TryStreamExt};

use super::{emit_json, remote, rp};
use crate::cli::{CopyModeArg, Global};
use crate::progress::{eprint_line, Display};

/// How long a credential handed to the other end of a third-party copy lives.
const HANDOVER_VALIDITY: Duration = Duration::from_secs(3600);

/// The arguments of `cp`.
pub(crate) struct CpArgs<'a> {
    /// Source as typed.
    pub from: &'a str,
    /// Destination as typed.
    pub to: &'a str,
    /// `-r`.
    pub recursive: bool,
    /// `--mode`.
    pub mode: CopyModeArg,
    /// `-f`.
    pub force: bool,
    /// `-j`.
    pub jobs: Option<u16>,
}

/// One end of a copy: its profile, backend and path.
struct End {
    profile: String,
    backend: Arc<dyn StorageBackend>,
    path: RemotePath,
}

impl End {
    fn copier(&self) -> Option<&dyn ServerCopyOps> {
        self.backend.server_copy()
    }

    /// The end for messages: its URL (never a credential), else `profile:path`.
    fn shown(&self, path: &RemotePath) -> String {
        match self.copier() {
            Some(c) => c.url_of(path),
            None => format!("{}:{path}", self.profile),
        }
    }
}

fn open(g: &Global, r: &ResolvedProfile) -> Result<Arc<dyn StorageBackend>> {
    ctadata::open(
        r,
        &OpenOptions::default()
            .with_insecure(g.insecure)
            .with_retry(RetryPolicy::attempts(g.retries.saturating_add(1))),
    )
}

/// Another profile of the same configuration (no `--url` or `--token-file`: those are the
/// current profile's).
fn load_other(g: &Global, name: &str, url: Option<String>) -> Result<ResolvedProfile> {
    let opts = LoadOptions::default()
        .with_config_file(g.config.clone())
        .with_profile(Some(name.to_string()))
        .with_url(url)
        .with_ca_file(g.ca_file.clone())
        .with_system_file(None);
    config::load(&opts, &EnvSnapshot::from_process())
}

/// `scheme://authority` of a URL as typed.
fn origin(arg: &str) -> Option<String> {
    let (scheme, rest) = arg.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "davs" => "https".to_string(),
        "dav" => "http".to_string(),
        s => s.to_string(),
    };
    Some(format!("{scheme}://{}", &rest[..end]))
}

/// Resolves SRC or DST to an end.
fn endpoint(
    g: &Global,
    r: &ResolvedProfile,
    current: &Arc<dyn StorageBackend>,
    arg: &str,
) -> Result<End> {
    let here = |path: RemotePath| End {
        profile: r.name.clone(),
        backend: current.clone(),
        path,
    };
    if arg.contains("://") {
        match r.remote_arg(arg) {
            Ok(p) => return Ok(here(rp(&p)?)),
            Err(e) => {
                let plain = !arg.contains(['?', '#'])
                    && !arg
                        .split("://")
                        .nth(1)
                        .unwrap_or("")
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .contains('@')
                    && matches!(
                        arg.split("://")
                            .next()
                            .map(str::to_ascii_lowercase)
                            .as_deref(),
                        Some("https" | "http" | "davs" | "dav")
                    );
                if !plain || !matches!(r.backend(), BackendKind::Dcache | BackendKind::X509) {
                    return Err(e);
                }
            }
        }
        // A profile that has this door.
        for name in r.profile_names() {
            if name == r.name {
                continue;
            }
            let Ok(other) = load_other(g, &name, None) else {
                continue;
            };
            if !matches!(other.backend(), BackendKind::Dcache | BackendKind::X509) {
                continue;
            }
            if let Ok(p) = other.remote_arg(arg) {
                return Ok(End {
                    profile: name,
                    backend: open(g, &other)?,
                    path: rp(&p)?,
                });
            }
        }
        // Else the current profile's credential on that door.
        let o = origin(arg).ok_or_else(|| {
            Error::usage(
                format!("cannot read the URL '{arg}'"),
                "give https://host:port/path",
            )
        })?;
        let other = load_other(g, &r.name, Some(o.clone()))?;
        let p = other.remote_arg(arg)?;
        tracing::info!(door = %o, profile = %r.name, "a door of no profile: using the current profile's credential there");
        return Ok(End {
            profile: format!("{} at {o}", r.name),
            backend: open(g, &other)?,
            path: rp(&p)?,
        });
    }
    if let Some((name, rest)) = arg.split_once(':') {
        if !name.is_empty() && !name.contains('/') && r.profile_names().iter().any(|n| n == name) {
            if name == r.name {
                return Ok(here(remote(r, rest)?));
            }
            let other = load_other(g, name, None)?;
            let path = rp(&other.remote_arg(rest)?)?;
            return Ok(End {
                profile: name.to_string(),
                backend: open(g, &other)?,
                path,
            });
        }
    }
    Ok(here(remote(r, arg)?))
}

/// What one file's copy came to.
#[derive(Debug, Clone)]
struct Copied {
    from: RemotePath,
    to: RemotePath,
    mode: CopyMode,
    bytes: Option<u64>,
    checksum: Option<Checksum>,
}

/// Shared state of one `cp` run.
struct Run<'a> {
    src: &'a End,
    dst: &'a End,
    force: bool,
    asked: CopyModeArg,
    quiet: bool,
    /// The first mode worth trying for the next file (refusals are remembered).
    first: AtomicU8,
    display: Arc<Display>,
}

const PULL: u8 = 0;
const PUSH: u8 = 1;
const STREAM: u8 = 2;

impl Run<'_> {
    fn note(&self, line: &str) {
        if !self.quiet {
            eprint_line(line);
        }
    }

    /// The modes to try, in order.
    fn plan(&self, same_door: bool) -> Vec<CopyMode> {
        match self.asked {
            CopyModeArg::Pull => vec![CopyMode::Pull],
            CopyModeArg::Push => vec![CopyMode::Push],
            CopyModeArg::Stream => vec![CopyMode::Stream],
            CopyModeArg::Auto if same_door => vec![CopyMode::Within],
            CopyModeArg::Auto => {
                let all = [CopyMode::Pull, CopyMode::Push, CopyMode::Stream];
                all[self.first.load(Ordering::Relaxed) as usize..].to_vec()
            }
        }
    }

    /// Copies one file (or, on one door, a whole tree with one `COPY`).
    async fn one(&self, from: &RemotePath, to: &RemotePath, entry: &Entry) -> Result<Copied> {
        let (sc, dc) = (self.src.copier(), self.dst.copier());
        let same_door = match (sc, dc) {
            (Some(s), Some(d)) => s.same_door(&d.url_of(to)),
            _ => false,
        };
        let name = from.to_string();
        let size = entry.size;
        if let Some(s) = size {
            self.display.started(&name, Some(s), 0);
        }
        let seen = AtomicU64::new(0);
        let hook = |n: u64| {
            let before = seen.swap(n, Ordering::Relaxed);
            if n > before {
                self.display.advanced(&name, n - before);
            }
        };
        let (src_url, dst_url) = (self.src.shown(from), self.dst.shown(to));
        let mut refusals: Vec<String> = Vec::new();
        for mode in self.plan(same_door) {
            let outcome = match mode {
                CopyMode::Within => {
                    let c = sc.ok_or_else(|| {
                        unsupported("cp", self.src.backend.capabilities().backend)
                    })?;
                    c.copy_within(from, to, self.force).await?;
                    TpcOutcome::Done { bytes: size }
                }
                CopyMode::Pull | CopyMode::Push => {
                    let (Some(s), Some(d)) = (sc, dc) else {
                        let b = if sc.is_none() { &self.src } else { &self.dst };
                        return Err(unsupported("cp", b.backend.capabilities().backend));
                    };
                    let r = if mode == CopyMode::Pull {
                        let cred = s
                            .transfer_credential(from, false, HANDOVER_VALIDITY)
                            .await?;
                        let url = s.url_of(from);
                        let req = TpcRequest {
                            remote_url: &url,
                            remote_authorization: cred.as_ref(),
                            overwrite: self.force,
                        };
                        d.pull(to, &req, &hook).await
                    } else {
                        let cred = d.transfer_credential(to, true, HANDOVER_VALIDITY).await?;
                        let url = d.url_of(to);
                        let req = TpcRequest {
                            remote_url: &url,
                            remote_authorization: cred.as_ref(),
                            overwrite: self.force,
                        };
                        s.push(from, &req, &hook).await
                    };
                    match r {
                        Ok(o) => o,
                        Err(e) => {
                            let removed = self.remove_partial(to).await;
                            return Err(after_failure(e, removed));
                        }
                    }
                }
                CopyMode::Stream => {
                    let bytes = self.stream(from, to, entry, &name).await?;
                    TpcOutcome::Done { bytes: Some(bytes) }
                }
            };
            match outcome {
                TpcOutcome::Done { bytes } => {
                    if let Some(b) = bytes {
                        hook(b);
                    }
                    let checksum = self.verify(from, to, entry).await?;
                    return Ok(Copied {
                        from: from.clone(),
                        to: to.clone(),
                        mode,
                        // The source's size (checked against the copy's in `verify`):
                        // XRootD's last marker may predate the last bytes.
                        bytes: size.or(bytes),
                        checksum,
                    });
                }
                TpcOutcome::Refused { status, reason } => {
                    let who = if mode == CopyMode::Pull {
                        format!("the destination {dst_url} refused to pull from {src_url}")
                    } else {
                        format!("the source {src_url} refused to push to {dst_url}")
                    };
                    let words = if reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {reason}")
                    };
                    let line = format!("{who} (HTTP {status}{words})");
                    if self.asked == CopyModeArg::Auto {
                        // Later files go straight to the next mode.
                        let next = if mode == CopyMode::Pull { PUSH } else { STREAM };
                        self.first.fetch_max(next, Ordering::Relaxed);
                        self.note(&format!("{line}; trying the next mode"));
                    }
                    refusals.push(line);
                }
            }
        }
        let hint = match self.asked {
            CopyModeArg::Auto => "check both ends' credentials (a token needs storage.read at the source and storage.create at the destination), or copy with --mode stream".to_string(),
            m => format!(
                "leave out --mode {} to let cta-data try the other modes",
                match m {
                    CopyModeArg::Pull => "pull",
                    CopyModeArg::Push => "push",
                    _ => "stream",
                }
            ),
        };
        Err(Error::PermissionDenied {
            path: to.to_string(),
            message: format!(
                "no server would copy {src_url} to {dst_url}: {}; {hint}",
                refusals.join("; ")
            ),
        })
    }

    /// Reads the source and writes the destination through this client.
    async fn stream(
        &self,
        from: &RemotePath,
        to: &RemotePath,
        entry: &Entry,
        name: &str,
    ) -> Result<u64> {
        let size = match entry.size {
            Some(s) => s,
            None => self.src.backend.stat(from).await?.size.unwrap_or(0),
        };
        let src = self.src.backend.clone();
        let path = from.clone();
        let display = self.display.clone();
        let shown = name.to_string();
        let upload = Upload::from_factory(
            size,
            Arc::new(move || {
                let src = src.clone();
                let path = path.clone();
                Box::pin(async move { Ok(src.get(&path, GetOptions::default()).await?.stream) })
            }),
        )
        .with_read_hook(Arc::new(move |n| display.advanced(&shown, n)));
        let put = self
            .dst
            .backend
            .put(
                to,
                upload,
                PutOptions::default()
                    .with_overwrite(self.force)
                    .with_create_parents(true),
            )
            .await;
        match put {
            Ok(o) => Ok(o.size),
            Err(e) => {
                self.remove_partial(to).await;
                Err(e)
            }
        }
    }

    /// Removes what a failed copy left at `to` (best effort: the error that matters is the
    /// copy's).
    /// Returns whether a file was there and is gone.
    async fn remove_partial(&self, to: &RemotePath) -> bool {
        if let Ok(e) = self.dst.backend.stat(to).await {
            if !e.is_dir() {
                match self.dst.backend.delete(to, false).await {
                    Ok(()) => {
                        tracing::info!(path = %to, "removed the partial destination");
                        return true;
                    }
                    Err(err) => self.note(&format!(
                        "could not remove the partial destination {}: {err}",
                        self.dst.shown(to)
                    )),
                }
            }
        }
        false
    }

    /// Compares both sides: adler32 when both give one, else sizes. A mismatch removes the
    /// destination.
    async fn verify(
        &self,
        from: &RemotePath,
        to: &RemotePath,
        entry: &Entry,
    ) -> Result<Option<Checksum>> {
        if entry.is_dir() {
            return Ok(None);
        }
        let (s, d) = futures::join!(
            self.src.backend.checksums(from),
            self.dst.backend.checksums(to)
        );
        let s = s.unwrap_or_default();
        let d = d?;
        let adler = |l: &[Checksum]| l.iter().find(|c| c.algorithm.name() == "adler32").cloned();
        if let (Some(a), Some(b)) = (adler(&s), adler(&d)) {
            if a != b {
                self.remove_partial(to).await;
                return Err(Error::integrity(
                    to,
                    format!(
                        "the copy's {b} differs from the source's {a} ({}); the copy was removed",
                        self.src.shown(from)
                    ),
                ));
            }
            return Ok(Some(b));
        }
        let got = self.dst.backend.stat(to).await?;
        if let (Some(a), Some(b)) = (entry.size, got.size) {
            if a != b {
                self.remove_partial(to).await;
                return Err(Error::integrity(
                    to,
                    format!("the copy has {b} bytes, the source {a}; the copy was removed"),
                ));
            }
        }
        Ok(None)
    }
}

/// A third-party copy's failure with what follows from it: the partial destination's fate
/// and what to try next.
fn after_failure(e: Error, removed: bool) -> Error {
    match e {
        Error::Transport {
            target,
            message,
            temporary,
            retry_after,
            source,
        } => Error::Transport {
            target,
            message: format!(
                "{message}; {}: run the same command again, or copy through this client with --mode stream",
                if removed {
                    "the partial destination was removed"
                } else {
                    "no destination file was left"
                }
            ),
            temporary,
            retry_after,
            source,
        },
        other => other,
    }
}

/// Lists a source tree: directories first (parents before children), then files.
async fn walk(src: &End) -> Result<(Vec<RemotePath>, Vec<Entry>)> {
    let mut dirs = vec![src.path.clone()];
    let mut files = Vec::new();
    let mut i = 0;
    while i < dirs.len() {
        let d = dirs[i].clone();
        i += 1;
        let mut s = src.backend.list(&d).await?;
        while let Some(e) = s.try_next().await? {
            if e.path == d {
                continue;
            }
            if e.is_dir() {
                dirs.push(e.path.clone());
            } else {
                files.push(e);
            }
        }
    }
    Ok((dirs, files))
}

/// `to` + the part of `p` below `base`.
fn rebase(p: &RemotePath, base: &RemotePath, to: &RemotePath) -> Result<RemotePath> {
    let rel = p
        .as_str()
        .strip_prefix(base.as_str())
        .unwrap_or(p.as_str())
        .trim_start_matches('/');
    if rel.is_empty() {
        return Ok(to.clone());
    }
    rp(&format!("{}/{rel}", to.as_str().trim_end_matches('/')))
}

/// `cta-data cp SRC DST`.
pub(super) async fn cp(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    a: &CpArgs<'_>,
) -> Result<()> {
    let started = Instant::now();
    let src = endpoint(g, r, &backend, a.from)?;
    let mut dst = endpoint(g, r, &backend, a.to)?;
    for e in [&src, &dst] {
        if e.copier().is_none() {
            return Err(unsupported("cp", e.backend.capabilities().backend));
        }
    }
    let same_door = match (src.copier(), dst.copier()) {
        (Some(s), Some(d)) => s.same_door(&d.url_of(&dst.path)),
        _ => false,
    };
    if same_door && src.path == dst.path {
        return Err(Error::usage(
            format!(
                "the source and the destination are the same file ({})",
                src.shown(&src.path)
            ),
            "give another destination",
        ));
    }
    if src.path.is_root() {
        return Err(Error::usage(
            "the storage root cannot be copied",
            "name a directory below the root, with -r",
        ));
    }
    let entry = src.backend.stat(&src.path).await?;
    if entry.is_dir() && !a.recursive {
        return Err(Error::usage(
            format!("{} is a directory", src.shown(&src.path)),
            format!(
                "use 'cta-data cp -r {} {}' to copy it with its contents",
                a.from, a.to
            ),
        ));
    }
    // A destination ending in '/' or naming a directory receives the source's name.
    let existing = dst.backend.stat(&dst.path).await.ok();
    if a.to.ends_with('/')
        || existing
            .as_ref()
            .is_some_and(|e| e.is_dir() && !entry.is_dir())
    {
        dst.path = dst.path.join(src.path.name())?;
    }
    if same_door && (src.path == dst.path || (entry.is_dir() && dst.path.starts_with(&src.path))) {
        return Err(Error::usage(
            format!(
                "cannot copy {} onto or into itself ({})",
                src.shown(&src.path),
                dst.shown(&dst.path)
            ),
            "choose a destination outside the source",
        ));
    }
    let jobs = a
        .jobs
        .map(usize::from)
        .or(r.profile.jobs.map(|j| j as usize))
        .unwrap_or(backend.capabilities().default_jobs)
        .max(1);
    let display = Display::new(g.quiet || g.json, false, false);
    let run = Run {
        src: &src,
        dst: &dst,
        force: a.force,
        asked: a.mode,
        quiet: g.quiet || g.json,
        first: AtomicU8::new(PULL),
        display: display.clone(),
    };
    let from_shown = src.shown(&src.path);
    let to_shown = dst.shown(&dst.path);
    let result = if !entry.is_dir() || (same_door && a.mode == CopyModeArg::Auto) {
        one_file(&run, &entry, a.force).await.map(|c| vec![c])
    } else {
        tree(&run, jobs).await
    };
    display.finish();
    let copied = result?;
    let bytes: u64 = copied.iter().filter_map(|c| c.bytes).sum();
    let mut modes: Vec<&str> = copied.iter().map(|c| c.mode.as_str()).collect();
    modes.sort_unstable();
    modes.dedup();
    let mode = modes.join(",");
    if g.json {
        let files: Vec<serde_json::Value> = copied
            .iter()
            .map(|c| {
                serde_json::json!({
                    "from": c.from.to_string(),
                    "to": c.to.to_string(),
                    "mode": c.mode.as_str(),
                    "bytes": c.bytes,
                    "checksum": c.checksum.as_ref().map(|s| s.to_string()),
                })
            })
            .collect();
        return emit_json(&serde_json::json!({
            "command": "cp",
            "from": from_shown,
            "to": to_shown,
            "mode": mode,
            "files": files,
            "bytes": bytes,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    }
    if !g.quiet {
        let how = match mode.as_str() {
            "copy" => "WebDAV COPY on one door".to_string(),
            "pull" => {
                "third-party copy, pull mode (the destination fetched the source)".to_string()
            }
            "push" => {
                "third-party copy, push mode (the source sent to the destination)".to_string()
            }
            "stream" => "streamed through this client".to_string(),
            m => format!("modes {m}"),
        };
        let verified = match copied.as_slice() {
            [c] => match &c.checksum {
                Some(s) => format!(", verified by {s}"),
                None if c.mode == CopyMode::Within && entry.is_dir() => String::new(),
                None => ", verified by size only".to_string(),
            },
            many => format!(
                ", {} of {} verified by adler32",
                many.iter().filter(|c| c.checksum.is_some()).count(),
                many.len()
            ),
        };
        let size = if copied.len() == 1 && entry.is_dir() {
            String::new()
        } else {
            format!(
                "{} file{}, {}",
                copied.len(),
                if copied.len() == 1 { "" } else { "s" },
                human_bytes(bytes)
            )
        };
        let sep = if size.is_empty() { "" } else { "; " };
        eprintln!("copied {from_shown} -> {to_shown} ({size}{sep}mode: {how}{verified})");
    }
    Ok(())
}

async fn one_file(run: &Run<'_>, entry: &Entry, force: bool) -> Result<Copied> {
    let to = &run.dst.path;
    if !entry.is_dir() {
        if let Ok(existing) = run.dst.backend.stat(to).await {
            if existing.is_dir() {
                return Err(Error::conflict(
                    to,
                    "a directory is there",
                    "remove it, or give a destination inside it ending in '/'",
                ));
            }
            if !force {
                return Err(Error::conflict(
                    to,
                    "the destination exists",
                    "pass -f to replace it, or remove it first",
                ));
            }
            // Files are write-once on dCache: the old one goes first.
            run.dst.backend.delete(to, false).await?;
        } else if let Some(parent) = to.parent().filter(|p| !p.is_root()) {
            run.dst.backend.mkdir(&parent, true).await?;
        }
    }
    run.one(&run.src.path, to, entry).await
}

async fn tree(run: &Run<'_>, jobs: usize) -> Result<Vec<Copied>> {
    let (dirs, files) = walk(run.src).await?;
    for d in &dirs {
        let target = rebase(d, &run.src.path, &run.dst.path)?;
        run.dst.backend.mkdir(&target, true).await?;
    }
    let total_bytes: u64 = files.iter().filter_map(|e| e.size).sum();
    run.display.discovered(files.len() as u64, total_bytes);
    let results: Vec<(Entry, Result<Copied>)> = futures::stream::iter(files)
        .map(|e| async move {
            let to = match rebase(&e.path, &run.src.path, &run.dst.path) {
                Ok(t) => t,
                Err(err) => return (e, Err(err)),
            };
            let r = async {
                if let Ok(existing) = run.dst.backend.stat(&to).await {
                    if !run.force || existing.is_dir() {
                        return Err(Error::conflict(
                            &to,
                            "the destination exists",
                            "pass -f to replace it, or remove it first",
                        ));
                    }
                    run.dst.backend.delete(&to, false).await?;
                }
                run.one(&e.path, &to, &e).await
            }
            .await;
            (e, r)
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    let total = results.len();
    let mut done = Vec::new();
    let mut failed = 0;
    for (e, r) in results {
        match r {
            Ok(c) => done.push(c),
            Err(err) => {
                failed += 1;
                eprint_line(&format!("failed {}: {err}", e.path));
                if let Some(h) = err.hint() {
                    eprint_line(&format!("  hint: {h}"));
                }
            }
        }
    }
    if failed > 0 {
        return Err(Error::Partial {
            failed,
            total,
            retry: false,
        });
    }
    Ok(done)
}
