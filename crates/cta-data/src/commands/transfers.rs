//! `get` and `put`: targets, options, and the summary of what moved.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctadata::config::ResolvedProfile;
use ctadata::transfer::{self, FileOutcome, Filter, Summary, TransferOptions};
use ctadata::{Error, PutOptions, RemotePath, Result, StorageBackend};

use super::rp;
use crate::cli::{Global, TransferArgs};
use crate::progress::Display;

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

pub(crate) fn transfer_options(
    g: &Global,
    r: &ResolvedProfile,
    backend: &dyn StorageBackend,
    t: &TransferArgs,
    overwrite: bool,
) -> Result<(TransferOptions, Arc<Display>)> {
    let jobs = t
        .jobs
        .map(usize::from)
        .or(r.profile.jobs.map(|j| j as usize))
        .unwrap_or(backend.capabilities().default_jobs)
        .max(1);
    let display = Display::new(g.quiet || g.json, g.verbose > 0);
    let mut opts = TransferOptions::default();
    opts.jobs = jobs;
    opts.fail_fast = t.fail_fast;
    opts.overwrite = overwrite;
    opts.skip_existing = t.skip_existing;
    opts.update = t.update;
    opts.dry_run = t.dry_run;
    opts.filter = Filter::new(&t.include, &t.exclude)?;
    opts.progress = display.clone();
    Ok((opts, display))
}

pub(crate) fn finish(g: &Global, what: &str, display: &Display, summary: Summary) -> Result<()> {
    display.finish();
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else if !g.quiet {
        if !summary.failures.is_empty() {
            eprintln!("{} failed:", summary.failures.len());
        }
        for f in &summary.failures {
            eprintln!("  {}: {}", f.path, f.reason);
        }
        let resumed = if summary.resumed_bytes > 0 {
            format!(
                " (+{} resumed)",
                transfer::human_bytes(summary.resumed_bytes)
            )
        } else {
            String::new()
        };
        let planned = if summary.planned > 0 {
            format!("{} files would be transferred, ", summary.planned)
        } else {
            String::new()
        };
        eprintln!(
            "{what}: {planned}{} files ({}{resumed}), {} directories, {} skipped, {} failed in {:.1} s ({})",
            summary.transferred,
            transfer::human_bytes(summary.bytes),
            summary.directories,
            summary.skipped,
            summary.failures.len(),
            summary.seconds,
            transfer::human_rate(summary.bytes, Duration::from_secs_f64(summary.seconds)),
        );
    }
    summary.into_result().map(|_| ())
}

/// One file's outcome as a summary, so single files and trees report alike.
pub(crate) fn single(outcome: FileOutcome, started: Instant) -> Summary {
    let mut s = Summary::default();
    match &outcome {
        FileOutcome::Done(d) => {
            s.transferred = 1;
            s.bytes = d.bytes;
            s.resumed_bytes = d.resumed_from;
        }
        FileOutcome::Skipped { .. } => s.skipped = 1,
        FileOutcome::Planned { .. } => s.planned = 1,
        FileOutcome::Failed { .. } => {}
    }
    s.seconds = started.elapsed().as_secs_f64();
    s
}

pub(crate) async fn get(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    remote: &RemotePath,
    local: Option<&Path>,
    recursive: bool,
    t: &TransferArgs,
) -> Result<()> {
    let started = Instant::now();
    let entry = backend.stat(remote).await?;
    let name = if remote.is_root() {
        "storage-root"
    } else {
        remote.name()
    };
    let target = local_target(local, name, entry.is_dir());
    let (opts, display) = transfer_options(g, r, backend.as_ref(), t, true)?;
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
    let outcome =
        transfer::download_file(backend.as_ref(), remote, Some(&entry), &target, &opts).await;
    display.finish();
    let outcome = outcome?;
    report_single(g, "downloaded", &outcome, started)
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn put(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    local: &Path,
    remote_raw: &str,
    recursive: bool,
    force: bool,
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
    let (opts, display) = transfer_options(g, r, backend.as_ref(), t, force)?;
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
    // The same rules as a tree upload, for one file.
    let skip = match &existing {
        Some(e) if e.is_file() && t.skip_existing && e.size == Some(md.len()) => {
            Some("same size".to_string())
        }
        Some(e)
            if e.is_file()
                && t.update
                && e.mtime.zip(md.modified().ok()).is_some_and(|(r, l)| r >= l) =>
        {
            Some("the remote copy is as new or newer".to_string())
        }
        _ => None,
    };
    let outcome = match skip {
        Some(reason) => FileOutcome::Skipped { reason },
        None => {
            let put = PutOptions::default()
                .with_overwrite(force || t.update)
                .with_create_parents(true);
            opts.progress.discovered(1, md.len());
            let r = transfer::upload_file(backend.as_ref(), local, &remote, put, &opts).await;
            display.finish();
            r?
        }
    };
    report_single(g, "uploaded", &outcome, started)
}

pub(crate) fn report_single(
    g: &Global,
    what: &str,
    outcome: &FileOutcome,
    started: Instant,
) -> Result<()> {
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(outcome).unwrap_or_default()
        );
        return single(outcome.clone(), started).into_result().map(|_| ());
    }
    if !g.quiet {
        match outcome {
            FileOutcome::Done(d) => {
                let check = d
                    .verified
                    .as_deref()
                    .map(|c| format!(", {c}"))
                    .unwrap_or_default();
                let resumed = if d.resumed_from > 0 {
                    format!(", resumed at {}", transfer::human_bytes(d.resumed_from))
                } else {
                    String::new()
                };
                let (from, to) = if what == "uploaded" {
                    (d.local.display().to_string(), d.remote.clone())
                } else {
                    (d.remote.clone(), d.local.display().to_string())
                };
                eprintln!(
                    "{what} {from} -> {to} ({}{resumed}{check})",
                    transfer::human_bytes(d.size)
                );
            }
            FileOutcome::Skipped { reason } => eprintln!("skipped: {reason}"),
            FileOutcome::Planned { .. } | FileOutcome::Failed { .. } => {}
        }
    }
    Ok(())
}
