//! `get` and `put`: targets, options, and the summary of what moved.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctadata::config::ResolvedProfile;
use ctadata::transfer::{
    self, FileOutcome, Filter, Progress, StageOptions, Summary, TransferOptions,
};
use ctadata::{Error, RemotePath, Result, StorageBackend};

use super::rp;
use crate::cli::{Global, StageArgs, StreamArgs, TransferArgs};
use crate::progress::Display;

// ---- tape (issue 14, tape) ----
/// The progress of `get --stage`: the transfer's display, and a line on stderr each time
/// the staging count moves (`staging: 3 of 5 on disk`).
struct StagingLine {
    inner: Arc<Display>,
    quiet: bool,
    last: Mutex<Option<(usize, usize)>>,
}

impl Progress for StagingLine {
    fn discovered(&self, files: u64, bytes: u64) {
        self.inner.discovered(files, bytes)
    }
    fn started(&self, name: &str, size: Option<u64>, offset: u64) {
        self.inner.started(name, size, offset)
    }
    fn advanced(&self, name: &str, bytes: u64) {
        self.inner.advanced(name, bytes)
    }
    fn finished(&self, name: &str, outcome: &FileOutcome) {
        self.inner.finished(name, outcome)
    }
    fn staging(&self, request: &str, on_disk: usize, failed: usize, total: usize) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if self.quiet || *last == Some((on_disk, failed)) {
            return;
        }
        let first = last.is_none();
        *last = Some((on_disk, failed));
        if first {
            crate::progress::eprint_line(&format!(
                "stage request {request} for {total} file(s) on tape"
            ));
        }
        crate::progress::eprint_line(&super::tape::staging_line(on_disk, failed, total));
    }
}
// ---- end of tape ----

/// The target of a copy: an existing directory or a path ending in '/' receives `name` inside.
/// Where a download lands. A LOCAL ending in '/' receives the remote name inside it; so
/// does an existing directory when a *file* is fetched. A directory is mirrored onto LOCAL
/// itself, so that running the same `get -r` again resumes or skips instead of nesting.
pub(crate) fn local_target(local: Option<&Path>, name: &str, remote_is_dir: bool) -> PathBuf {
    match local {
        None => PathBuf::from(name),
        Some(l) => {
            let ends_with_slash = l.as_os_str().to_string_lossy().ends_with('/');
            if ends_with_slash || (!remote_is_dir && l.is_dir()) {
                l.join(name)
            } else {
                l.to_path_buf()
            }
        }
    }
}

/// Where uploads take their per-destination locks: the runtime directory, private to the
/// user.
fn lock_dir(r: &ResolvedProfile) -> PathBuf {
    match r.env().get("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("cta-data/locks"),
        None => std::env::temp_dir()
            .join(format!("cta-data-{}", ctadata::config::current_uid()))
            .join("locks"),
    }
}

pub(crate) fn transfer_options(
    g: &Global,
    r: &ResolvedProfile,
    backend: &dyn StorageBackend,
    t: &TransferArgs,
    single: bool,
    upload: bool,
) -> Result<(TransferOptions, Arc<Display>)> {
    let jobs = t
        .jobs
        .map(usize::from)
        .or(r.profile.jobs.map(|j| j as usize))
        .unwrap_or(backend.capabilities().default_jobs)
        .max(1);
    // A single file has its own line at the end: no per-file line besides.
    let display = Display::new(
        g.quiet || g.json,
        g.verbose > 0 && !single,
        !g.json && !single,
    );
    let mut opts = TransferOptions::default();
    opts.jobs = jobs;
    opts.fail_fast = t.fail_fast;
    // A download replaces what differs; an upload only with --force.
    opts.overwrite = !upload || t.force;
    opts.force = t.force;
    opts.skip_existing = t.ignore_existing;
    opts.update = t.update;
    opts.dry_run = t.dry_run;
    opts.keep_files = g.json;
    let scope = r
        .profile
        .url
        .clone()
        .or_else(|| r.profile.root.as_ref().map(|p| p.display().to_string()))
        .unwrap_or_else(|| r.name.clone());
    opts.upload_locks = Some((lock_dir(r), scope));
    opts.filter = Filter::new(&t.include, &t.exclude)?;
    opts.progress = display.clone();
    Ok((opts, display))
}

/// Prints the summary (JSON on stdout with `--json`, else a line on stderr; failures even
/// with `-q`) and turns failures into the exit status.
pub(crate) fn finish(g: &Global, what: &str, display: &Display, summary: Summary) -> Result<()> {
    display.finish();
    if g.json {
        super::emit_json(&summary)?;
        return summary.into_result().map(|_| ());
    }
    if !summary.failures.is_empty() {
        eprintln!("{} failed:", summary.failures.len());
    }
    for f in &summary.failures {
        eprintln!("  {}: {}", f.path, f.reason);
    }
    if !g.quiet {
        let resumed = if summary.resumed_bytes > 0 {
            format!(
                " (+{} resumed)",
                transfer::human_bytes(summary.resumed_bytes)
            )
        } else {
            String::new()
        };
        let planned = if summary.planned > 0 {
            format!("{} would be transferred, ", count(summary.planned, "file"))
        } else {
            String::new()
        };
        let verified = match summary.verification() {
            v if v.is_empty() => v,
            v => format!("; {v}"),
        };
        eprintln!(
            "{what}: {planned}{} ({}{resumed}), {}, {} skipped, {} failed in {:.1} s ({}){verified}",
            count(summary.transferred, "file"),
            transfer::human_bytes(summary.bytes),
            count(summary.directories, "directory"),
            summary.skipped,
            summary.failures.len(),
            summary.seconds,
            transfer::human_rate(summary.bytes, Duration::from_secs_f64(summary.seconds)),
        );
    }
    summary.into_result().map(|_| ())
}

/// `1 file`, `2 files`; `1 directory`, `0 directories`.
fn count(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn get(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    remote: &RemotePath,
    local: Option<&Path>,
    recursive: bool,
    t: &TransferArgs,
    s: &StreamArgs,
    stage: &StageArgs,
) -> Result<()> {
    let started = Instant::now();
    // ---- tape (issue 14, tape) ----
    if stage.stage && backend.tape().is_none() {
        return Err(ctadata::unsupported(
            "get --stage",
            backend.capabilities().backend,
        ));
    }
    // ---- end of tape ----
    let mut entry = backend.stat(remote).await?;
    let name = if remote.is_root() {
        "storage-root"
    } else {
        remote.name()
    };
    let target = local_target(local, name, entry.is_dir());
    let (mut opts, display) = transfer_options(g, r, backend.as_ref(), t, !entry.is_dir(), false)?;
    opts.streams = s
        .streams
        .map(usize::from)
        .or(r.profile.streams.map(|n| n.clamp(1, 64) as usize));
    if let Some(cut) = s.stream_cutoff.or(r.profile.stream_cutoff) {
        opts.stream_cutoff = cut;
    }
    // ---- tape (issue 14, tape): `get --stage` ----
    if stage.stage {
        opts.stage = Some(StageOptions::default().with_timeout(stage.stage_timeout));
        opts.progress = Arc::new(StagingLine {
            inner: display.clone(),
            quiet: g.quiet || g.json,
            last: Mutex::new(None),
        });
    }
    // ---- end of tape ----
    if entry.is_dir() {
        if !recursive {
            return Err(Error::usage(
                format!("{remote} is a directory"),
                format!(
                    "use 'cta-data get -r {}' to download it with its contents",
                    remote.as_str()
                ),
            ));
        }
        let summary = transfer::download_tree(backend, remote, &target, &opts).await?;
        return finish(g, "downloaded", &display, summary);
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(Error::NotFound {
                path: parent.display().to_string(),
                detail: Some("local path; the target's directory does not exist".into()),
            });
        }
    }
    opts.progress.discovered(1, entry.size.unwrap_or(0));
    // ---- tape (issue 14, tape): a single file on tape is staged first with --stage ----
    if let Some(so) = opts.stage.clone().filter(|_| {
        transfer::needs_staging(&entry)
            && !opts.dry_run
            && !(opts.skip_existing && target.is_file())
    }) {
        match transfer::stage_one(backend.clone(), entry.clone(), so, opts.progress.clone()).await {
            Ok(e) => entry = e,
            Err(e) => {
                let summary = Summary::new("get", &opts);
                let dst = target.display().to_string();
                return report_single(
                    g,
                    &display,
                    summary,
                    remote.to_string(),
                    dst,
                    entry.size,
                    Err(e),
                    started,
                );
            }
        }
    }
    // ---- end of tape ----
    let outcome =
        transfer::download_file(backend.as_ref(), remote, Some(&entry), &target, &opts).await;
    let summary = Summary::new("get", &opts);
    let dst = target.display().to_string();
    report_single(
        g,
        &display,
        summary,
        remote.to_string(),
        dst,
        entry.size,
        outcome,
        started,
    )
}

pub(crate) async fn put(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    local: &Path,
    remote_raw: &str,
    recursive: bool,
    t: &TransferArgs,
) -> Result<()> {
    let started = Instant::now();
    let md = std::fs::metadata(local).map_err(|e| Error::local("read", local, e))?;
    let mut remote = rp(remote_raw)?;
    let existing = backend.stat(&remote).await.ok();
    // A REMOTE ending in '/' takes the local name (the old client's rule); so does an
    // existing remote directory when a *file* is sent. A directory is mirrored onto REMOTE
    // itself, so that the same `put -r` run again skips or replaces instead of nesting.
    let into_dir = remote_raw.ends_with('/')
        || remote.is_root()
        || (!md.is_dir() && existing.as_ref().is_some_and(|e| e.is_dir()));
    let mut existing = if into_dir { None } else { existing };
    if into_dir {
        // Only needed here: `put -r . dest` names the remote in full.
        let local_name = local.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            Error::usage(
                format!("cannot take a remote name from {}", local.display()),
                "give the remote path in full",
            )
        })?;
        remote = remote.join(local_name)?;
        if !md.is_dir() {
            existing = backend.stat(&remote).await.ok();
        }
    }
    let (opts, display) = transfer_options(g, r, backend.as_ref(), t, !md.is_dir(), true)?;
    if md.is_dir() {
        if !recursive {
            return Err(Error::usage(
                format!("{} is a directory", local.display()),
                format!(
                    "use 'cta-data put -r {} {remote_raw}' to upload it with its contents",
                    local.display()
                ),
            ));
        }
        let summary = transfer::upload_tree(backend, local, &remote, &opts).await?;
        return finish(g, "uploaded", &display, summary);
    }
    opts.progress.discovered(1, md.len());
    let outcome = transfer::upload_one(
        backend.as_ref(),
        local,
        &remote,
        existing.as_ref(),
        true,
        &opts,
    )
    .await;
    let summary = Summary::new("put", &opts);
    let src = local.display().to_string();
    report_single(
        g,
        &display,
        summary,
        src,
        remote.to_string(),
        Some(md.len()),
        outcome,
        started,
    )
}

/// One file's outcome: a line on stderr (or the JSON summary, the same shape as a tree's),
/// and its error, if any, as the exit status.
#[allow(clippy::too_many_arguments)]
fn report_single(
    g: &Global,
    display: &Display,
    mut summary: Summary,
    src: String,
    dst: String,
    size: Option<u64>,
    outcome: Result<FileOutcome>,
    started: Instant,
) -> Result<()> {
    display.finish();
    let result = match &outcome {
        Ok(o) => {
            summary.count(src.clone(), dst.clone(), size, o);
            Ok(())
        }
        Err(e) => {
            summary.fail(src.clone(), dst.clone(), e);
            Err(())
        }
    };
    summary.seconds = started.elapsed().as_secs_f64();
    if g.json {
        super::emit_json(&summary)?;
    } else if let Ok(FileOutcome::Planned { bytes }) = &outcome {
        let size = bytes
            .map(|b| format!(" ({})", transfer::human_bytes(b)))
            .unwrap_or_default();
        // The plan goes to stdout (nothing else is printed there without --json).
        crate::progress::print_line(&format!("would transfer {src} -> {dst}{size}"));
    } else if !g.quiet {
        match &outcome {
            Ok(FileOutcome::Done(d)) => {
                let what = if d.upload { "uploaded" } else { "downloaded" };
                let resumed = if d.resumed_from > 0 {
                    format!(", resumed at {}", transfer::human_bytes(d.resumed_from))
                } else {
                    String::new()
                };
                let (from, to) = d.endpoints();
                eprintln!(
                    "{what} {from} -> {to} ({}{resumed}, {})",
                    transfer::human_bytes(d.size),
                    crate::progress::verified_text(d),
                );
            }
            Ok(FileOutcome::Skipped { reason }) => eprintln!("skipped {src}: {reason}"),
            _ => {}
        }
    }
    match (outcome, result) {
        (Err(e), _) => Err(e),
        _ => Ok(()),
    }
}
